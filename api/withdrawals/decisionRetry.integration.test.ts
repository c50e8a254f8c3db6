/**
 * Approve, reject and cancel retried with the same Idempotency-Key after their stored answer was
 * lost (a crash before it was stored, or a 5xx after the decision committed, leaves it unanswered;
 * an older revision's 5xx deleted it): the retry gets the decision's result, as a create's retry
 * gets its withdrawal, never ALREADY_DECIDED or WITHDRAWAL_INVALID_STATE, and the decision is made
 * once. The same key with another body or on another withdrawal is IDEMPOTENCY_KEY_REUSED. Real
 * Postgres and ledger, through /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTwoApproverTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { answerLost } from "../testing/lostAnswer.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let requester: string;
let anna: string;
let ben: string;
let n = 0;

beforeAll(async () => {
  ({ t, requester, anna, ben } = await createTwoApproverTestContext({
    policy: { perTransaction: 10n * ETH, rolling24h: 50n * ETH, approvalThreshold: ETH / 10n },
    fund: { customers: ["alice", "bob", "carol"], amount: 20n * ETH },
  }));
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object, idem = `dr-${++n}`) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": idem }, payload });

async function awaitingApproval(customerId: string): Promise<string> {
  const res = await post(requester, "/v1/withdrawals", {
    customerId,
    chain: "local-a",
    asset: "native",
    to: DEST,
    amount: ETH.toString(),
  });
  expect(res.statusCode, res.body).toBe(201);
  expect(res.json().status).toBe("pending_approval");
  return res.json().id;
}

/**
 * The stored record of `idem` is gone, as a 5xx after the commit left it on a revision before
 * api/idempotency.ts kept a 5xx's key (a rolling deploy runs both): only the decision's own
 * record is left to answer.
 */
async function answerLostTo5xx(idem: string) {
  await t.ctx.db.pool.query("DELETE FROM api.idempotency_keys WHERE idempotency_key = $1", [idem]);
}
/** The process died after the commit, before storing the answer; its lease has lapsed. */
const answerLostToCrash = (idem: string) => answerLost(t.ctx.db.pool, idem);

async function audit(id: string, action: string) {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT 1 FROM audit.audit_log WHERE entity_type = 'withdrawal' AND entity_id = $1 AND action = $2",
    [id, action],
  );
  return rows.length;
}
const balance = (customer: string) =>
  t.ledger.balance({ assetId: NATIVE, name: `user:${customer}` });
const count = async (sql: string, params: unknown[]) =>
  (await t.ctx.db.pool.query<{ n: number }>(sql, params)).rows[0]!.n;
const withdrawalsUnder = (idem: string) =>
  count("SELECT count(*)::int AS n FROM api.withdrawals WHERE idempotency_key = $1", [idem]);

describe("a decision retried after its answer was lost", () => {
  it("approve: the retry gets the withdrawal, one approval counted; the last approver's retry too", async () => {
    const id = await awaitingApproval("alice");
    const url = `/v1/withdrawals/${id}/approve`;
    const first = await post(anna, url, { reason: "checked" }, "approve-anna");
    expect(first.statusCode, first.body).toBe(200);
    await answerLostTo5xx("approve-anna");
    const retry = await post(anna, url, { reason: "checked" }, "approve-anna");
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toMatchObject({
      status: "pending_approval",
      approvals: [{ approver: "ops-anna" }],
    });
    expect(await audit(id, "withdrawal.approved_by")).toBe(1);

    const last = await post(ben, url, {}, "approve-ben");
    expect(last.json().status).toBe("signing");
    await answerLostToCrash("approve-ben");
    const again = await post(ben, url, {}, "approve-ben");
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().status).toBe("signing");
    expect(again.json().approvals).toHaveLength(2);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_requests WHERE id = $1",
      [`withdrawal:${id}`],
    );
    expect(rows[0].n).toBe(1);
    // A new request (another key) by the same approver is still a second decision: refused.
    const other = await post(anna, url, { reason: "checked" });
    expect(other.statusCode).toBe(409);
    expect(other.json().code).toBe("WITHDRAWAL_INVALID_STATE");
  });

  it("reject and cancel: the retry gets the rejected / cancelled withdrawal; the hold voided once", async () => {
    const rejected = await awaitingApproval("bob");
    const cancelled = await awaitingApproval("bob");
    expect((await balance("bob")).debitsPending).toBe(2n * ETH);
    const r = await post(anna, `/v1/withdrawals/${rejected}/reject`, { reason: "no" }, "rej-1");
    expect(r.json().status).toBe("rejected");
    const c = await post(requester, `/v1/withdrawals/${cancelled}/cancel`, {}, "can-1");
    expect(c.json().status).toBe("cancelled");
    await answerLostToCrash("rej-1");
    await answerLostTo5xx("can-1");

    const r2 = await post(anna, `/v1/withdrawals/${rejected}/reject`, { reason: "no" }, "rej-1");
    expect(r2.statusCode, r2.body).toBe(200);
    expect(r2.json()).toMatchObject({ id: rejected, status: "rejected", failureReason: "no" });
    const c2 = await post(requester, `/v1/withdrawals/${cancelled}/cancel`, {}, "can-1");
    expect(c2.statusCode, c2.body).toBe(200);
    expect(c2.json()).toMatchObject({ id: cancelled, status: "cancelled" });
    expect(await audit(rejected, "withdrawal.rejected")).toBe(1);
    expect(await audit(cancelled, "withdrawal.cancelled")).toBe(1);
    const bob = await balance("bob");
    expect(bob.debitsPending).toBe(0n);
    expect(bob.available).toBe(20n * ETH);
  });

  it("the same key with another body, or on another withdrawal, is IDEMPOTENCY_KEY_REUSED; nothing changes", async () => {
    const id = await awaitingApproval("carol");
    const elsewhere = await awaitingApproval("carol");
    const ok = await post(anna, `/v1/withdrawals/${id}/approve`, { reason: "a" }, "reuse-1");
    expect(ok.statusCode).toBe(200);
    await answerLostTo5xx("reuse-1");
    for (const [url, body] of [
      [`/v1/withdrawals/${id}/approve`, { reason: "b" }],
      [`/v1/withdrawals/${id}/reject`, { reason: "a" }],
      [`/v1/withdrawals/${elsewhere}/approve`, { reason: "a" }],
    ] as const) {
      const res = await post(anna, url, body, "reuse-1");
      expect(res.statusCode, res.body).toBe(409);
      expect(res.headers["content-type"]).toContain("application/problem+json");
      // Refused by the decision's own record: the HTTP one was lost, and a refusal keeps none.
      expect(res.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    }
    const seen = await t.call(anna, { method: "GET", url: `/v1/withdrawals/${elsewhere}` });
    expect(seen.json()).toMatchObject({ status: "pending_approval", approvals: [] });
    expect(await audit(id, "withdrawal.approved_by")).toBe(1);
  });
});

describe("a key first used for another operation, its answer lost", () => {
  const decisionsUnder = (idem: string) =>
    count("SELECT count(*)::int AS n FROM api.withdrawal_decisions WHERE idempotency_key = $1", [
      idem,
    ]);

  it("a create's key reused for a cancel or an approve is IDEMPOTENCY_KEY_REUSED; nothing changes", async () => {
    // A key that may both create and decide (a backend that also approves others' requests).
    const both = await t.newKey("ops-backend", ["withdrawals:write", "withdrawals:approve"]);
    const pending = await awaitingApproval("alice"); // the requester's, to approve
    for (const lose of [answerLostTo5xx, answerLostToCrash]) {
      const idem = `create-then-decide-${lose.name}`;
      const created = await post(
        both,
        "/v1/withdrawals",
        { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: "1000" },
        idem,
      );
      expect(created.statusCode, created.body).toBe(201);
      const own = created.json().id;
      await lose(idem);
      for (const url of [
        `/v1/withdrawals/${own}/cancel`,
        `/v1/withdrawals/${pending}/cancel`,
        `/v1/withdrawals/${pending}/approve`,
      ]) {
        const res = await post(both, url, {}, idem);
        expect(res.statusCode, `${url}: ${res.body}`).toBe(409);
        expect(res.headers["content-type"]).toContain("application/problem+json");
        expect(res.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
      }
      expect(await decisionsUnder(idem)).toBe(0);
      // Below the approval threshold: handed to the signer, where it stays.
      const seen = await t.call(both, { method: "GET", url: `/v1/withdrawals/${own}` });
      expect(seen.json().status).toBe("signing");
    }
    const seen = await t.call(anna, { method: "GET", url: `/v1/withdrawals/${pending}` });
    expect(seen.json()).toMatchObject({ status: "pending_approval", approvals: [] });
  });

  it("a decision's key reused for a create is IDEMPOTENCY_KEY_REUSED; no withdrawal, no hold", async () => {
    const id = await awaitingApproval("bob");
    const c = await post(requester, `/v1/withdrawals/${id}/cancel`, {}, "decide-then-create");
    expect(c.json().status).toBe("cancelled");
    await answerLostTo5xx("decide-then-create");
    const before = await balance("bob");
    const res = await post(
      requester,
      "/v1/withdrawals",
      { customerId: "bob", chain: "local-a", asset: "native", to: DEST, amount: "1000" },
      "decide-then-create",
    );
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await withdrawalsUnder("decide-then-create")).toBe(0);
    expect(await balance("bob")).toEqual(before);
  });
});

describe("a decision retried under the rotated key of the same owner (old and new both valid)", () => {
  it("cancel and approve: the retry gets the decision's result, made once; a create under the key is IDEMPOTENCY_KEY_REUSED", async () => {
    // old code: expected 409 to be 200 ({"code":"WITHDRAWAL_INVALID_STATE"}: the cancel decided
    // again under the new key, its result lost to the caller)
    const rotatedRequester = await t.newKey("exchange-backend", ["withdrawals:write"]);
    const rotatedAnna = await t.newKey("ops-anna", ["withdrawals:approve"]);
    const cancelled = await awaitingApproval("alice");
    const c = await post(requester, `/v1/withdrawals/${cancelled}/cancel`, {}, "rot-cancel");
    expect(c.json().status).toBe("cancelled");
    await answerLostTo5xx("rot-cancel");
    const c2 = await post(
      rotatedRequester,
      `/v1/withdrawals/${cancelled}/cancel`,
      {},
      "rot-cancel",
    );
    expect(c2.statusCode, c2.body).toBe(200);
    expect(c2.json()).toMatchObject({ id: cancelled, status: "cancelled" });
    expect(await audit(cancelled, "withdrawal.cancelled")).toBe(1);
    const before = await balance("alice");
    const create = await post(
      rotatedRequester,
      "/v1/withdrawals",
      { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: "1000" },
      "rot-cancel",
    );
    expect(create.statusCode, create.body).toBe(409);
    expect(create.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await withdrawalsUnder("rot-cancel")).toBe(0);
    expect(await balance("alice")).toEqual(before);

    const approved = await awaitingApproval("alice");
    const url = `/v1/withdrawals/${approved}/approve`;
    const a = await post(anna, url, { reason: "checked" }, "rot-approve");
    expect(a.statusCode, a.body).toBe(200);
    await answerLostToCrash("rot-approve");
    const a2 = await post(rotatedAnna, url, { reason: "checked" }, "rot-approve");
    expect(a2.statusCode, a2.body).toBe(200);
    expect(a2.json()).toMatchObject({
      status: "pending_approval",
      approvals: [{ approver: "ops-anna" }],
    });
    expect(await audit(approved, "withdrawal.approved_by")).toBe(1);
  });
});
