/**
 * `treasury unbook` decides from the indexer's facts of a transaction: every one orphaned and the
 * orphaned height final. The same transaction mined again on the canonical chain is a new fact the
 * indexer stores in its batch's transaction; read while that batch is uncommitted, the facts still
 * said "gone", and the booking was reversed although the transaction was back. The check and the
 * reversal now hold off the indexer's writes of the chain's facts (indexers' `holdFactWrites`, the
 * checkpoint row every fact-writing transaction locks first), so the batch in flight commits
 * first and the unbook reads its fact and is refused. Deterministic: the test is the indexer,
 * its batch (lockTip, insertFacts: the indexer's own writes) held open on a second connection
 * (ledger/testing/treasury.ts `whileIndexerStores`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTreasuryFileTest, type TreasuryTest } from "./testing/treasury.js";
import { bookTreasuryMove, unbookTreasuryMove } from "./treasury.js";

const CHAIN = 31337;
const HOT = `0x${"a4".repeat(20)}`;
const OPERATOR = `0x${"0f".repeat(20)}`;
const TX = `0x${"d1".repeat(32)}`;
let t: TreasuryTest;

beforeAll(async () => {
  t = await startTreasuryFileTest(HOT, CHAIN);
});
afterAll(async () => {
  await t?.close();
});

describe("treasury unbook racing the indexer storing the transaction again", () => {
  it("waits for the indexer's batch and sees the transaction back: refused, the booking stands", async () => {
    await bookTreasuryMove(t.deps, {
      move: "fund",
      chainId: CHAIN,
      txHash: TX,
      wallet: HOT,
      amount: 5_000n,
      by: "ops",
      reason: "float",
    });
    // A reorg took it off the chain at block 10, and block 50 is final without it.
    const funding = {
      tx: TX,
      position: "tx",
      kind: "native",
      from: OPERATOR,
      to: HOT,
      amount: 5_000n,
    } as const;
    await t.fact({ ...funding, status: "orphaned", block: 10 });
    await t.checkpoint(60, 50);
    const before = await t.written();
    expect(before.hot).toBe(5_000n);

    // The indexer's batch storing the transaction mined again at block 61, not committed yet.
    const outcome = await t.whileIndexerStores([{ ...funding, block: 61 }], () =>
      unbookTreasuryMove(t.deps, {
        chainId: CHAIN,
        txHash: TX,
        by: "ops",
        reason: "the funding was reorged out",
      }),
    );
    expect(outcome).toEqual({
      err: expect.objectContaining({
        code: "TREASURY_MOVE_REFUSED",
        message: expect.stringMatching(
          /is on the chain \(a seen fact at block 61\).*its booking stands/,
        ),
      }),
    });
    expect(await t.written()).toEqual(before);
  });
});
