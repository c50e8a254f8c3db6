/**
 * One person stays one person for a withdrawal waiting for approvals when the key that tied their
 * identities together goes away: Anna's key owned `anna` with no email and her key owned
 * `anna.smith` carrying anna@example.com are one person only through a third key (`anna` with
 * anna@example.com). Revoking that key, before or after she requested, or changing its email
 * after she requested (or approved), must not let her approve her own request, or approve it twice. Real Postgres, Redis and anvil,
 * the real app through /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, revokeApiKey, type Scope, setApiKeyEmail } from "../apiKeys.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";

const ETH = 10n ** 18n;

let t: WithdrawalApiTestContext;
let n = 0;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    policy: {
      perTransaction: 10n * ETH,
      rolling24h: 100n * ETH,
      approvalThreshold: ETH,
      requiredApprovals: 2,
    },
    fund: { customers: ["alice"], amount: 50n * ETH },
  });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
}, 180_000);

const keyOf = (owner: string, email: string | null, scopes: Scope[]) =>
  createApiKey(t.ctx.db.pool, { owner, email, scopes });
const decide = (key: string, id: string, action: "approve" | "reject" = "approve") =>
  t.call(key, {
    method: "POST",
    url: `/v1/withdrawals/${id}/${action}`,
    headers: { "idempotency-key": `bridges-${++n}` },
    payload: {},
  });
const statusOf = async (id: string) =>
  (await t.ctx.db.pool.query("SELECT status FROM api.withdrawals WHERE id = $1", [id])).rows[0]
    .status;

describe("a person's identities joined through another key", () => {
  it("revoking the joining key after the request does not let the requester approve it", async () => {
    const backend = await keyOf("anna", null, ["withdrawals:write"]);
    const bridge = await keyOf("anna", "anna@example.com", ["withdrawals:approve"]);
    const other = await keyOf("anna.smith", "anna@example.com", ["withdrawals:approve"]);
    const w = await t.withdrawNative(backend.plaintext, "alice", 2n * ETH);
    const before = await decide(other.plaintext, w.id);
    expect(before.statusCode, before.body).toBe(403);
    expect(before.json().code).toBe("APPROVER_IS_REQUESTER");

    // Key rotation: Anna's old approving key is revoked; she keeps her anna.smith key.
    await revokeApiKey(t.ctx.db.pool, bridge.key.id);
    const after = await decide(other.plaintext, w.id);
    expect(after.statusCode, after.body).toBe(403);
    expect(after.json().code).toBe("APPROVER_IS_REQUESTER");
    expect(await statusOf(w.id)).toBe("pending_approval");
  }, 120_000);

  it("a joining key revoked before the request still joins the person", async () => {
    // before the fix: expected 200 to be 403 (only keys revoked since the request joined: Dora
    // approved, under her dora.smith key, what she requested under her dora key)
    const backend = await keyOf("dora", null, ["withdrawals:write"]);
    const bridge = await keyOf("dora", "dora@example.com", ["withdrawals:approve"]);
    const other = await keyOf("dora.smith", "dora@example.com", ["withdrawals:approve"]);
    // Dora's key that tied `dora` to her email is rotated out before she requests.
    await revokeApiKey(t.ctx.db.pool, bridge.key.id);
    const w = await t.withdrawNative(backend.plaintext, "alice", 2n * ETH);
    const res = await decide(other.plaintext, w.id);
    expect(res.statusCode, res.body).toBe(403);
    expect(res.json().code).toBe("APPROVER_IS_REQUESTER");
    expect(await statusOf(w.id)).toBe("pending_approval");
  }, 120_000);

  it("revoking the joining key between two approvals does not count one person twice", async () => {
    const requester = await keyOf("exchange-backend", null, ["withdrawals:write"]);
    const old = await keyOf("bob", null, ["withdrawals:approve"]);
    const bridge = await keyOf("bob", "bob@example.com", ["withdrawals:approve"]);
    const renamed = await keyOf("robert", "bob@example.com", ["withdrawals:approve"]);
    const w = await t.withdrawNative(requester.plaintext, "alice", 2n * ETH);
    const first = await decide(old.plaintext, w.id);
    expect(first.statusCode, first.body).toBe(200);

    await revokeApiKey(t.ctx.db.pool, bridge.key.id);
    const second = await decide(renamed.plaintext, w.id);
    expect(second.statusCode, second.body).toBe(409);
    expect(second.json().code).toBe("ALREADY_DECIDED");
    expect(await statusOf(w.id)).toBe("pending_approval");
  }, 120_000);

  it("set-email refuses to re-point the joining key while its person's request waits", async () => {
    const backend = await keyOf("cleo", null, ["withdrawals:write"]);
    const bridge = await keyOf("cleo", "cleo@example.com", ["withdrawals:approve"]);
    const other = await keyOf("cleo.ops", "cleo@example.com", ["withdrawals:approve"]);
    const w = await t.withdrawNative(backend.plaintext, "alice", 2n * ETH);
    await expect(
      setApiKeyEmail(t.ctx.db.pool, {
        id: bridge.key.id,
        email: "cleo@new.example.com",
        by: "ops-carol",
        reason: "cleo's address changed",
      }),
    ).rejects.toMatchObject({
      code: "APIKEY_EMAIL_CHANGE_REFUSED",
      message: expect.stringContaining(w.id),
    });
    const res = await decide(other.plaintext, w.id);
    expect(res.statusCode, res.body).toBe(403);
    expect(res.json().code).toBe("APPROVER_IS_REQUESTER");
    expect(await statusOf(w.id)).toBe("pending_approval");
  }, 120_000);
});
