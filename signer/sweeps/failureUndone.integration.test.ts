/**
 * A sweep settled `failed` (its request failed at a final block by a cancel: gas booked, addresses
 * freed) whose final block an accepted deep reorg then undid: the signer follows the request again
 * (signer/broadcaster/undone.ts; its own run on anvil is signer/failedDeepReorg.integration.test.ts)
 * and finds its payment mined, or fails it again. Here the sweep really mines on anvil (its Swept
 * events are what settlement books) and the real signer finds it paid again; the failure, its
 * undoing and a second failure are written to the request row as the tracker and undone.ts write
 * them (with the signer stopped), and the real sweeper and ledger follow.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { getTxOutcomes, type TxOutcome } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { setTxRequestFailureUndone, setTxRequestState } from "../testing/txRequestState.js";
import { hotAccount } from "./bookings.js";
import { CHAIN_ID, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";
import { sweepableDrift } from "./testing/sweepable.js";

const GWEI = 10n ** 9n;
const CANCEL = `0x${"c1".repeat(32)}`;
const CANCEL_B = `0x${"c2".repeat(32)}`;
const CANCEL_AGAIN = `0x${"c3".repeat(32)}`;

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
});

afterAll(async () => {
  await s?.close();
});

afterEach(async () => {
  const { drift } = await sweepableDrift(s.ctx.db.pool);
  expect(drift).toEqual([]);
});

async function sweepRow(id: string) {
  const { rows } = await s.ctx.db.pool.query(
    "SELECT status, tx_hash, final_at IS NOT NULL AS final FROM custody.sweeps WHERE id = $1",
    [id],
  );
  return rows[0] as { status: string; tx_hash: string | null; final: boolean };
}

async function ledgerRows(id: string) {
  const { rows } = await s.ctx.db.pool.query(
    `SELECT kind, count(*)::int AS n FROM ledger.transfers
      WHERE memo LIKE $1 GROUP BY kind ORDER BY kind`,
    [`%sweep ${id}%`],
  );
  return rows;
}

const gas = () => s.balanceOf(NATIVE, "fees:gas");

/**
 * A sweep started and mined at a final block, not settled yet: its real outcome. The signer is
 * stopped then, so that only the test moves the request until it starts it again.
 */
async function sweepPaid(customer: string, amount: bigint) {
  s.startSigner();
  await s.creditedDeposit(customer, amount);
  const tick = await s.sweeper.tick(CHAIN_ID);
  expect(tick.started).toHaveLength(1);
  const id = tick.started[0]!.id;
  const paid = await waitFor(
    "sweep final on chain",
    async () => {
      const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [id] });
      if (o!.status === "finalized") return o;
      await s.mine(1);
      return undefined;
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
  await s.signer!.stop();
  s.signer = undefined;
  return { id, paid: paid as TxOutcome };
}

/** Failed by a cancel at a final block (as the tracker records it), then settled `failed`. */
async function failedByCancel(id: string, nonce: bigint, cancel = CANCEL) {
  await setTxRequestState(s.ctx.db.pool, id, {
    status: "failed",
    txHash: cancel,
    fee: 21_000n * GWEI,
    nonce: Number(nonce),
    block: 40,
    finalized: true,
    errorCode: "CANCELLED",
  });
  await s.sweeper.settle(CHAIN_ID);
  expect(await sweepRow(id)).toMatchObject({ status: "failed", tx_hash: cancel, final: true });
}

describe("a failed sweep whose failure a deep reorg undid", () => {
  it("is open again while followed (its addresses out of planning), then booked once when paid", async () => {
    const amount = 9n * 10n ** 17n;
    const { id, paid } = await sweepPaid("undone-paid", amount);
    await failedByCancel(id, paid.nonce!);
    expect(await gas()).toBe(21_000n * GWEI + s.deployGas);

    await setTxRequestFailureUndone(s.ctx.db.pool, id);
    await s.sweeper.settle(CHAIN_ID);
    // before the fix: expected { status: 'failed', tx_hash: '0xc1c1…', final: true } to match
    // object { status: 'open', tx_hash: null, final: false } (the sweep stayed failed)
    expect(await sweepRow(id)).toMatchObject({ status: "open", tx_hash: null, final: false });
    // The failure's gas is reversed: that block is gone.
    expect(await gas()).toBe(s.deployGas);
    // Open, its addresses wait for it: nothing planned past the failed-sweep back-off (1.5 s).
    await new Promise((r) => setTimeout(r, 1_600));
    expect((await s.sweeper.tick(CHAIN_ID)).started).toEqual([]);

    // The signer follows the request again and finds its payment mined (failed_request_paid).
    s.startSigner();
    await waitFor(
      "sweep booked and final",
      async () => {
        await s.mine(1);
        await s.sweeper.settle(CHAIN_ID);
        return (await sweepRow(id)).final;
      },
      { timeoutMs: 60_000, everyMs: 200 },
    );
    await s.signer!.stop();
    s.signer = undefined;
    expect(await sweepRow(id)).toMatchObject({ status: "booked", tx_hash: paid.txHash });
    const { rows: paidEvents } = await s.ctx.db.pool.query(
      "SELECT 1 FROM custody.tx_request_events WHERE request_id = $1 AND event = 'failed_request_paid'",
      [id],
    );
    expect(paidEvents).toHaveLength(1);
    for (let i = 0; i < 2; i++) await s.sweeper.settle(CHAIN_ID);

    // Swept once and its own gas once; the failure's gas booked and reversed.
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    expect(await gas()).toBe(paid.fee! + s.deployGas);
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(amount - paid.fee! - s.deployGas);
    expect(await ledgerRows(id)).toEqual([
      { kind: "compensation", n: 1 },
      { kind: "fee", n: 2 },
      { kind: "sweep", n: 1 },
    ]);
  });

  it("failed again by another cancel: the old gas reversed, the new booked, once", async () => {
    const { id, paid } = await sweepPaid("undone-failed-again", 8n * 10n ** 17n);
    await failedByCancel(id, paid.nonce!, CANCEL_B);
    const before = await gas();
    await setTxRequestFailureUndone(s.ctx.db.pool, id);
    // Failed again at the final block of another cancel before a sweeper pass looked.
    await setTxRequestState(s.ctx.db.pool, id, {
      status: "failed",
      txHash: CANCEL_AGAIN,
      fee: 30_000n * GWEI,
      nonce: Number(paid.nonce),
      block: 44,
      finalized: true,
      reorgs: 1,
      errorCode: "CANCELLED",
    });
    for (let i = 0; i < 3; i++) await s.sweeper.settle(CHAIN_ID);
    // before the fix: expected { status: 'failed', tx_hash: '0xc2c2…' } to match { …, tx_hash: '0xc3c3…' } (the old cancel's gas stood)
    expect(await sweepRow(id)).toMatchObject({ status: "failed", tx_hash: CANCEL_AGAIN });
    expect(await gas()).toBe(before - 21_000n * GWEI + 30_000n * GWEI);
    expect(await ledgerRows(id)).toEqual([
      { kind: "compensation", n: 1 },
      { kind: "fee", n: 2 },
    ]);
  });
});
