/**
 * A customer whose withdrawals a reorg shortfall blocked (DESIGN "Money flows": the reorg hold could
 * not be covered) cannot have a withdrawal handed to the signer by approving one that was waiting for
 * approvals when the deposit paying for it was reorged out: the approval is refused (422
 * CUSTOMER_WITHDRAWALS_BLOCKED) and changes nothing; the withdrawal keeps its hold and can still be
 * rejected or cancelled. Real Postgres, ledger and deposit crediting; the indexer's rows are written
 * as the indexer writes them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDepositCrediting, isWithdrawalBlocked } from "../../ledger/index.js";
import {
  createTwoApproverTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";

const CHAIN = 31337;
const ETH = 10n ** 18n;
const NATIVE = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const DEPOSIT = `0x${"d1".repeat(20)}`;
const TX = `0x${"ab".repeat(32)}`;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let requester: string;
let anna: string;
let ben: string;
let n = 0;

beforeAll(async () => {
  ({ t, requester, anna, ben } = await createTwoApproverTestContext({
    policy: { perTransaction: 10n * ETH, rolling24h: 20n * ETH, approvalThreshold: ETH },
    fund: { customers: [], amount: 0n },
  }));
  await t.ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     VALUES ($1, $2, 'deposit', 'alice')`,
    [CHAIN, DEPOSIT],
  );
});
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object = {}) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": `ba-${++n}` }, payload });

describe("a withdrawal awaiting approval when a reorg blocks its customer", () => {
  it("is not handed to the signer by the last approval; reject still releases its hold", async () => {
    const crediting = createDepositCrediting({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      ledger: t.ledger,
    });
    // A 5 ETH deposit to alice, confirmed and credited.
    await t.ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       VALUES ($1, 11, '0xb1', $2, 0, 'tx', 'native', $3, $4, $5, $6, 'confirmed')`,
      [CHAIN, TX, ZERO, `0x${"ee".repeat(20)}`, DEPOSIT, (5n * ETH).toString()],
    );
    expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(1);

    // alice asks for all of it: above the threshold, so it waits for two approvers (held).
    const res = await post(requester, "/v1/withdrawals", {
      customerId: "alice",
      chain: "local-a",
      asset: "native",
      to: DEST,
      amount: (5n * ETH).toString(),
    });
    expect(res.statusCode).toBe(201);
    const w = res.json();
    expect(w.status).toBe("pending_approval");

    // A reorg takes the deposit out; its hold finds nothing available: shortfall, alice blocked.
    await t.ctx.db.pool.query(
      `UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true
        WHERE tx_hash = $1`,
      [TX],
    );
    await t.ctx.db.pool.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       VALUES ($1, 1, 10, 11, '0xb1', 11, '0xnew', false)`,
      [CHAIN],
    );
    expect((await crediting.sweep({ chainId: CHAIN })).held).toBe(1);
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "alice")).toBe(true);

    // Two approvers approve: the money the reorg took must not leave the hot wallet.
    const first = await post(anna, `/v1/withdrawals/${w.id}/approve`);
    const second = await post(ben, `/v1/withdrawals/${w.id}/approve`);
    const requests = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_requests WHERE id = $1",
      [`withdrawal:${w.id}`],
    );
    expect(requests.rows[0].n, "a signer request was made for the blocked customer").toBe(0);
    for (const refused of [first, second]) {
      expect(refused.statusCode).toBe(422);
      expect(refused.headers["content-type"]).toContain("application/problem+json");
      expect(refused.json()).toMatchObject({ code: "CUSTOMER_WITHDRAWALS_BLOCKED" });
    }
    const approvals = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM api.withdrawal_approvals WHERE withdrawal_id = $1",
      [w.id],
    );
    expect(approvals.rows[0].n).toBe(0);
    const got = await t.call(anna, { method: "GET", url: `/v1/withdrawals/${w.id}` });
    expect(got.json().status).toBe("pending_approval");

    // Rejecting it still works and releases the hold (what it held goes to the reorg's shortfall).
    const rejected = await post(ben, `/v1/withdrawals/${w.id}/reject`, {
      reason: "deposit reorged",
    });
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json().status).toBe("rejected");
    const balance = await t.ledger.balance({ assetId: NATIVE, name: "user:alice" });
    expect(balance.debitsPending).toBe(0n);
  });
});
