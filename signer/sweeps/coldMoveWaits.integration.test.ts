/**
 * A failed cold move whose failure a deep reorg undid cannot open beside another open move of its
 * asset (one open move per asset): it waits until that one settles. The wait is expected and ends
 * on its own; logged at error on every pass (each second) it buried real errors, so it is logged
 * once, at warn, when it begins. Real anvil, Postgres, Redis, KMS emulator, indexer; no signer
 * runs: the failures and the undoing are written to the request rows as the tracker and undone.ts
 * write them (signer/testing/txRequestState.ts).
 */
import { type Address, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setTxRequestFailureUndone, setTxRequestState } from "../testing/txRequestState.js";
import { CHAIN_ID, fundHotWalletFinal, type SweepStack, startSweepStack } from "./testing/stack.js";

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

async function status(id: string) {
  const { rows } = await s.ctx.db.pool.query<{ status: string }>(
    "SELECT status FROM custody.cold_moves WHERE id = $1",
    [id],
  );
  return rows[0]?.status;
}

/** Failed at a final block by a cancel (as the tracker records it), then settled `failed`. */
async function failByCancel(id: string, txHash: string) {
  await setTxRequestState(s.ctx.db.pool, id, {
    status: "failed",
    txHash,
    block: 60,
    finalized: true,
    errorCode: "CANCELLED",
  });
  await s.sweeper.settle(CHAIN_ID);
  expect(await status(id)).toBe("failed");
}

describe("a reopened cold move waiting behind another open move", () => {
  it("is logged once, at warn, however many passes it waits", async () => {
    await fundHotWalletFinal(s, REORG_WINDOW);
    // Move A fails; past the retry window (1.5 s) move B of the same excess is requested.
    const a = (await s.sweeper.tick(CHAIN_ID)).coldStarted[0]!.id;
    await failByCancel(a, `0x${"a1".repeat(32)}`);
    await new Promise((r) => setTimeout(r, 1_600));
    const b = (await s.sweeper.tick(CHAIN_ID)).coldStarted[0]!.id;
    expect(await status(b)).toBe("open");

    // A deep reorg took the block A failed at: A is followed again, but B is open.
    await setTxRequestFailureUndone(s.ctx.db.pool, a);
    const { sweeper, lines } = s.loggedSweeper();
    for (let i = 0; i < 4; i++) await sweeper.settle(CHAIN_ID);
    await sweeper.tick(CHAIN_ID);
    expect(await status(a)).toBe("failed");
    const waits = lines.filter((l) => l.msg.includes("waits: another move of its asset is open"));
    // old code: expected [ 50, 50, 50, 50, 50 ] to deeply equal [ 40 ] (an error line each pass)
    expect(waits.map((l) => l.level)).toEqual([40]);
    expect(waits[0]).toMatchObject({ cold_move_id: a, open_cold_move_id: b });
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);

    // B settles (fails too): A is held again and open, once.
    await setTxRequestState(s.ctx.db.pool, b, {
      status: "failed",
      txHash: `0x${"b1".repeat(32)}`,
      block: 61,
      finalized: true,
      errorCode: "CANCELLED",
    });
    for (let i = 0; i < 2; i++) await sweeper.settle(CHAIN_ID);
    expect(await status(b)).toBe("failed");
    expect(await status(a)).toBe("open");
    expect(lines.filter((l) => l.msg.startsWith("failed cold move whose failure"))).toHaveLength(1);
    expect(lines.filter((l) => l.msg.includes("waits: another move"))).toHaveLength(1);
  });
});
