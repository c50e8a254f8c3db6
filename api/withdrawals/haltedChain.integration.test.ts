/**
 * A withdrawal on a halted chain (a reorg reached a final block: `chain.halts` open, nothing
 * orphaned yet, so balances may still count deposits the chain no longer has) is neither taken nor
 * handed to the signer by an approval: 503 CHAIN_HALTED (problem+json), nothing changed. A waiting
 * one keeps its hold and can still be rejected or cancelled; a retry of a create made before the
 * halt still gets its withdrawal; after the operator resumes the chain, both work again. Real
 * Postgres and ledger; the halt row is written as the indexer writes it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTwoApproverTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";

const CHAIN = 31337;
const ETH = 10n ** 18n;
const NATIVE = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let requester: string;
let anna: string;
let ben: string;
let n = 0;

beforeAll(async () => {
  ({ t, requester, anna, ben } = await createTwoApproverTestContext({
    policy: { perTransaction: 10n * ETH, rolling24h: 50n * ETH, approvalThreshold: ETH },
    fund: { customers: ["alice"], amount: 20n * ETH },
  }));
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object = {}, idem = `hc-${++n}`) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": idem }, payload });
const withdraw = (amount: bigint, idem?: string) =>
  post(
    requester,
    "/v1/withdrawals",
    { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: amount.toString() },
    idem,
  );
const balance = () => t.ledger.balance({ assetId: NATIVE, name: "user:alice" });
const count = async (sql: string, params: unknown[] = []) =>
  (await t.ctx.db.pool.query<{ n: number }>(sql, params)).rows[0]!.n;

function expectHalted(res: Awaited<ReturnType<typeof post>>) {
  expect(res.statusCode, res.body).toBe(503);
  expect(res.headers["content-type"]).toContain("application/problem+json");
  expect(res.json()).toMatchObject({ code: "CHAIN_HALTED", chain_id: CHAIN });
}

describe("withdrawals on a halted chain", () => {
  it("are refused (create, and the approval that would hand one to the signer); nothing changes until the chain is resumed", async () => {
    const small = await withdraw(ETH / 2n, "before-halt");
    expect(small.statusCode, small.body).toBe(201);
    const waiting = await withdraw(2n * ETH);
    expect(waiting.json().status).toBe("pending_approval");
    const waitingId = waiting.json().id as string;
    expect((await post(anna, `/v1/withdrawals/${waitingId}/approve`)).statusCode).toBe(200);
    const rejectable = (await withdraw(3n * ETH)).json().id as string;

    await t.ctx.db.pool.query(
      `INSERT INTO chain.halts (chain_id, reason, details) VALUES ($1, 'reorg below finalized block 90', '{}')`,
      [CHAIN],
    );
    const before = await balance();
    const withdrawals = await count("SELECT count(*)::int AS n FROM api.withdrawals");
    const requests = await count("SELECT count(*)::int AS n FROM custody.tx_requests");

    expectHalted(await withdraw(ETH / 4n));
    expectHalted(await post(ben, `/v1/withdrawals/${waitingId}/approve`));
    // A retry of a create taken before the halt is answered with its withdrawal, not refused.
    await t.ctx.db.pool.query(
      "DELETE FROM api.idempotency_keys WHERE idempotency_key = 'before-halt'",
    );
    const retried = await withdraw(ETH / 2n, "before-halt");
    expect(retried.statusCode, retried.body).toBe(201);
    expect(retried.json().id).toBe(small.json().id);

    expect(await count("SELECT count(*)::int AS n FROM api.withdrawals")).toBe(withdrawals);
    expect(await count("SELECT count(*)::int AS n FROM custody.tx_requests")).toBe(requests);
    expect(await balance()).toEqual(before);
    const stillWaiting = await t.call(anna, { method: "GET", url: `/v1/withdrawals/${waitingId}` });
    expect(stillWaiting.json()).toMatchObject({ status: "pending_approval" });
    expect(stillWaiting.json().approvals).toHaveLength(1);

    // Rejecting or cancelling releases a hold, sends nothing: still allowed.
    const rejected = await post(anna, `/v1/withdrawals/${rejectable}/reject`, { reason: "halt" });
    expect(rejected.json().status).toBe("rejected");
    expect((await balance()).debitsPending).toBe(before.debitsPending - 3n * ETH);

    // The operator resumes the chain: withdrawals are taken and approved again.
    await t.ctx.db.pool.query(
      "UPDATE chain.halts SET resumed_at = now(), resumed_by = 'ops', resume_reason = 'node fixed' WHERE chain_id = $1",
      [CHAIN],
    );
    expect((await withdraw(ETH / 4n)).statusCode).toBe(201);
    const approved = await post(ben, `/v1/withdrawals/${waitingId}/approve`);
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json().status).toBe("signing");
  });
});
