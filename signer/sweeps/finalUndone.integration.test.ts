/**
 * A sweep booked and final (its request finalized) whose final block an accepted deep reorg then
 * undid: the signer takes the request back to `broadcast` and sends its stored bytes again
 * (signer/broadcaster/undone.ts; its own run on anvil is signer/finalizedDeepReorg.integration.test.ts).
 * Here the sweep really mines on anvil; the undoing and a revert on the new branch are written to
 * the request row as undone.ts and the tracker write them (the signer stopped), and the real
 * sweeper and ledger follow: the booking is reversed and the sweep fails, its addresses free again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxOutcomes, type TxOutcome } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { setTxRequestFinalUndone, setTxRequestState } from "../testing/txRequestState.js";
import { CHAIN_ID, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

const GWEI = 10n ** 9n;
let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
});
afterAll(async () => {
  await s?.close();
});

async function sweepRow(id: string) {
  const { rows } = await s.ctx.db.pool.query(
    "SELECT status, final_at IS NOT NULL AS final FROM custody.sweeps WHERE id = $1",
    [id],
  );
  return rows[0] as { status: string; final: boolean };
}

describe("a final sweep whose final block a deep reorg undid", () => {
  it("is followed again: unbooked, and failed when it reverts on the new branch", async () => {
    const amount = 9n * 10n ** 17n;
    s.startSigner();
    await s.creditedDeposit("final-undone", amount);
    const id = (await s.sweeper.tick(CHAIN_ID)).started[0]!.id;
    const paid = (await waitFor(
      "sweep booked and final",
      async () => {
        await s.mine(1);
        await s.sweeper.settle(CHAIN_ID);
        const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [id] });
        return o!.status === "finalized" && (await sweepRow(id)).final ? o : undefined;
      },
      { timeoutMs: 60_000, everyMs: 200 },
    )) as TxOutcome;
    await s.signer!.stop();
    s.signer = undefined;
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);

    await setTxRequestFinalUndone(s.ctx.db.pool, id);
    await setTxRequestState(s.ctx.db.pool, id, {
      status: "failed",
      txHash: paid.txHash,
      fee: 30_000n * GWEI,
      nonce: Number(paid.nonce),
      block: 44,
      finalized: true,
      reorgs: 1,
      errorCode: "REVERTED",
    });
    for (let i = 0; i < 3; i++) await s.sweeper.settle(CHAIN_ID);
    // old code: expected { status: 'booked', final: true } to match object { status: 'failed', …(1) }
    // (final was never followed again: the sweep stayed booked while the chain held no sweep)
    expect(await sweepRow(id)).toMatchObject({ status: "failed", final: true });
    // The deposit is in the deposit address again, as the ledger now says.
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(amount);
  });
});
