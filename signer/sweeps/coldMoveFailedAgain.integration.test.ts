/**
 * A failed cold move whose failure a deep reorg undid is held again and open (failureUndone.ts);
 * failing again, it is still one failed move: custody_cold_moves_failed_total (the ColdMoveFailed
 * alert) counts it once. Real anvil, Postgres, Redis, KMS emulator, indexer; no signer runs: the
 * failure, its undoing and the second failure are written to the request row as the tracker and
 * undone.ts write them (signer/testing/txRequestState.ts).
 */
import { type Address, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setTxRequestFailureUndone, setTxRequestState } from "../testing/txRequestState.js";
import { coldMoveFailedCounter } from "./coldMoves.js";
import {
  CHAIN_ID,
  fundHotWalletFinal,
  NATIVE,
  type SweepStack,
  startSweepStack,
} from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
const REORG_WINDOW = 8;

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    reorgWindow: REORG_WINDOW,
    nativeHotCeiling: parseEther("0.5").toString(),
    coldAddress: COLD,
  });
});

afterAll(async () => {
  await s?.close();
});

async function moveRow(id: string) {
  const { rows } = await s.ctx.db.pool.query(
    "SELECT status, hold_generation FROM custody.cold_moves WHERE id = $1",
    [id],
  );
  return rows[0];
}

describe("a failed cold move reopened and failed again", () => {
  it("counts one failure in custody_cold_moves_failed_total", async () => {
    // A funding booked and final: its excess over the ceiling is moved.
    await fundHotWalletFinal(s, REORG_WINDOW);
    const [started] = (await s.sweeper.tick(CHAIN_ID)).coldStarted;
    const id = started!.id;
    const counted = async () =>
      (await coldMoveFailedCounter(s.ctx.common).get()).values.find(
        (v) => v.labels.chain_id === String(CHAIN_ID) && v.labels.asset === NATIVE,
      )?.value;
    expect(await counted()).toBe(0);
    // Failed at a final block by a cancel (as the tracker records it), each time by another one.
    const failBy = async (txHash: string) => {
      await setTxRequestState(s.ctx.db.pool, id, {
        status: "failed",
        txHash,
        block: 60,
        finalized: true,
        errorCode: "CANCELLED",
      });
      await s.sweeper.settle(CHAIN_ID);
    };

    await failBy(`0x${"c5".repeat(32)}`);
    expect(await moveRow(id)).toEqual({ status: "failed", hold_generation: 0 });
    expect(await counted()).toBe(1);
    // The deep reorg took that block (undone.ts): held again and open; then it fails again.
    await setTxRequestFailureUndone(s.ctx.db.pool, id);
    await s.sweeper.settle(CHAIN_ID);
    expect(await moveRow(id)).toEqual({ status: "open", hold_generation: 1 });
    await failBy(`0x${"c6".repeat(32)}`);
    expect(await moveRow(id)).toEqual({ status: "failed", hold_generation: 1 });
    // before the fix: expected 2 to be 1 (the same move counted at each failure)
    expect(await counted()).toBe(1);
  });
});
