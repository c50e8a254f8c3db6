/**
 * Who may decide on a withdrawal through the console (inject, real Postgres and Redis, the real
 * app with /v1 and the console): the requester signed in with a key of their own cannot approve
 * it; one person's API key and console sessions are one approver, and so are keys of different
 * owners carrying that person's email (nor can that person approve what they requested under
 * another of their keys); a session's form without its
 * CSRF token, a signed-out session and a session without `withdrawals:approve` change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, type Scope } from "../apiKeys.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { SESSION_COOKIE } from "./plugin.js";
import { csrfTokenOf } from "./sessions.js";
import { consoleSignIn } from "./testing/inject.js";

const ETH = 10n ** 18n;

let t: WithdrawalApiTestContext;
let requester: string;
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
  requester = await t.newKey("dora", ["withdrawals:write"]);
});
afterAll(async () => {
  await t?.cleanup();
});

const session = async (key: string) => {
  const { session } = await consoleSignIn(t.app, key);
  if (!session) throw new Error("no session");
  return session;
};
/** A console form posted with the session's cookie (and its CSRF token unless `csrf` is false). */
const consolePost = (s: string, url: string, csrf = true) =>
  t.app.inject({
    method: "POST",
    url,
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      cookie: `${SESSION_COOKIE}=${encodeURIComponent(s)}`,
    },
    payload: new URLSearchParams({
      ...(csrf ? { _csrf: csrfTokenOf(s) } : {}),
      _idem: `approvers-${++n}`,
    }).toString(),
  });
const approvers = async (id: string) =>
  (
    await t.ctx.db.pool.query<{ approver: string }>(
      "SELECT approver FROM api.withdrawal_approvals WHERE withdrawal_id = $1 ORDER BY approver",
      [id],
    )
  ).rows.map((r) => r.approver);
const statusOf = async (id: string) =>
  (await t.ctx.db.pool.query("SELECT status FROM api.withdrawals WHERE id = $1", [id])).rows[0]
    .status;

describe("console approvals", () => {
  it("the requester signed in with an approving key of their own cannot approve or reject", async () => {
    const w = await t.withdrawNative(requester, "alice", 2n * ETH);
    expect(w.status).toBe("pending_approval");
    const mine = await session(await t.newKey(" DORA ", ["withdrawals:approve"]));
    for (const action of ["approve", "reject"]) {
      const res = await consolePost(mine, `/console/withdrawals/${w.id}/${action}`);
      expect(res.statusCode, action).toBe(403);
      expect(res.body).toContain("APPROVER_IS_REQUESTER");
    }
    expect(await approvers(w.id)).toEqual([]);
    expect(await statusOf(w.id)).toBe("pending_approval");
  });

  it("one person's API key and two console sessions count as one approver", async () => {
    const w = await t.withdrawNative(requester, "alice", 2n * ETH);
    const annaKey = await t.newKey("anna", ["withdrawals:approve"]);
    const viaApi = await t.call(annaKey, {
      method: "POST",
      url: `/v1/withdrawals/${w.id}/approve`,
      headers: { "idempotency-key": `approvers-${++n}` },
      payload: {},
    });
    expect(viaApi.statusCode).toBe(200);
    for (const key of [annaKey, await t.newKey("Anna", ["withdrawals:approve", "admin"])]) {
      const res = await consolePost(await session(key), `/console/withdrawals/${w.id}/approve`);
      expect(res.statusCode).toBe(409);
      expect(res.body).toContain("ALREADY_DECIDED");
    }
    expect(await approvers(w.id)).toEqual(["anna"]);
    expect(await statusOf(w.id)).toBe("pending_approval");
    // a second person completes it
    const ben = await session(await t.newKey("ben", ["withdrawals:approve"]));
    const done = await consolePost(ben, `/console/withdrawals/${w.id}/approve`);
    expect(done.statusCode).toBe(303);
    expect(await approvers(w.id)).toEqual(["anna", "ben"]);
    expect(await statusOf(w.id)).not.toBe("pending_approval");
  });

  it("keys of different owners carrying one person's email are one approver, and not the requester's", async () => {
    const keyOf = async (owner: string, email: string, scopes: Scope[]) =>
      (await createApiKey(t.ctx.db.pool, { owner, email, scopes })).plaintext;
    const w = await t.withdrawNative(requester, "alice", 2n * ETH);
    const annaOps = await keyOf("anna-ops", "Anna@Example.com ", ["withdrawals:approve"]);
    const viaApi = await t.call(annaOps, {
      method: "POST",
      url: `/v1/withdrawals/${w.id}/approve`,
      headers: { "idempotency-key": `approvers-${++n}` },
      payload: {},
    });
    expect(viaApi.statusCode).toBe(200);
    const annaAdmin = await session(await keyOf("anna-admin", "anna@example.com", ["admin"]));
    const twice = await consolePost(annaAdmin, `/console/withdrawals/${w.id}/approve`);
    expect(twice.statusCode).toBe(409);
    expect(twice.body).toContain("ALREADY_DECIDED");
    expect(await approvers(w.id)).toEqual(["anna-ops"]);
    expect(await statusOf(w.id)).toBe("pending_approval");

    // Anna requests under a backend key of hers: none of her keys may decide on it.
    const annaBackend = await keyOf("anna-backend", "anna@example.com", ["withdrawals:write"]);
    const mine = await t.withdrawNative(annaBackend, "alice", 2n * ETH);
    for (const action of ["approve", "reject"]) {
      const res = await consolePost(annaAdmin, `/console/withdrawals/${mine.id}/${action}`);
      expect(res.statusCode, action).toBe(403);
      expect(res.body).toContain("APPROVER_IS_REQUESTER");
    }
    expect(await approvers(mine.id)).toEqual([]);
  });

  it("a form without the CSRF token, a signed-out session and a session without the scope change nothing", async () => {
    const w = await t.withdrawNative(requester, "alice", 2n * ETH);
    const carl = await session(await t.newKey("carl", ["withdrawals:approve"]));
    const forged = await consolePost(carl, `/console/withdrawals/${w.id}/approve`, false);
    expect(forged.statusCode).toBe(403);
    expect(forged.body).toContain("CONSOLE_CSRF");

    const out = await consolePost(carl, "/console/sign-out");
    expect(out.statusCode).toBe(303);
    const after = await consolePost(carl, `/console/withdrawals/${w.id}/approve`);
    expect(after.statusCode).toBe(401);
    const direct = await t.call(carl, {
      method: "POST",
      url: `/v1/withdrawals/${w.id}/approve`,
      headers: { "idempotency-key": `approvers-${++n}` },
      payload: {},
    });
    expect(direct.statusCode).toBe(401);

    const writer = await session(await t.newKey("erin", ["withdrawals:write", "deposits:read"]));
    const noScope = await consolePost(writer, `/console/withdrawals/${w.id}/approve`);
    expect(noScope.statusCode).toBe(403);
    expect(await approvers(w.id)).toEqual([]);
    expect(await statusOf(w.id)).toBe("pending_approval");
  });
});
