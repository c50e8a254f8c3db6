/**
 * `treasury unbook` decides from the indexer's facts of a transaction: every one orphaned and the
 * orphaned height final. The same transaction mined again on the canonical chain is a new fact the
 * indexer stores in its batch's transaction; read while that batch is uncommitted, the facts still
 * said "gone", and the booking was reversed although the transaction was back. The check and the
 * reversal now hold off the indexer's writes of the chain's facts (indexers' `holdFactWrites`, the
 * checkpoint row every fact-writing transaction locks first), so the batch in flight commits
 * first and the unbook reads its fact and is refused. Deterministic: the test is the indexer,
 * its batch (lockTip, insertFacts: the indexer's own writes) held open on a second connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Fact } from "../indexers/extractFacts.js";
import { insertFacts, loadTip, lockTip } from "../indexers/store.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { doneOrWaitingForALock } from "./testing/gatedCrediting.js";
import { startTreasuryTest, type TreasuryTest, ZERO } from "./testing/treasury.js";
import { bookTreasuryMove, unbookTreasuryMove } from "./treasury.js";

const CHAIN = 31337;
const HOT = `0x${"a4".repeat(20)}`;
const OPERATOR = `0x${"0f".repeat(20)}`;
const TX = `0x${"d1".repeat(32)}`;
let ctx: TestContext;
let t: TreasuryTest;

beforeAll(async () => {
  ctx = await createTestContext();
  t = await startTreasuryTest(ctx, HOT, CHAIN);
});
afterAll(async () => {
  await t?.close();
  await ctx?.cleanup();
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
    await t.fact({
      tx: TX,
      position: "tx",
      kind: "native",
      from: OPERATOR,
      to: HOT,
      amount: 5_000n,
      status: "orphaned",
      block: 10,
    });
    await ctx.db.pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
       VALUES ($1, 60, $2, 50, $3)`,
      [CHAIN, `0x${"60".repeat(32)}`, `0x${"50".repeat(32)}`],
    );
    const before = await t.written();
    expect(before.hot).toBe(5_000n);

    // The indexer's batch storing the transaction mined again at block 61, not committed yet.
    const indexer = await ctx.db.pool.connect();
    try {
      await indexer.query("BEGIN");
      await lockTip(indexer, CHAIN, await loadTip(indexer, CHAIN));
      const again: Fact = {
        blockNumber: 61n,
        blockHash: `0x${"61".repeat(32)}`,
        txHash: TX,
        txIndex: 0,
        position: "tx",
        kind: "native",
        asset: ZERO,
        from: OPERATOR,
        to: HOT,
        amount: 5_000n,
      };
      await insertFacts(indexer, CHAIN, [again], null);

      const unbooking = unbookTreasuryMove(t.deps, {
        chainId: CHAIN,
        txHash: TX,
        by: "ops",
        reason: "the funding was reorged out",
      }).then(
        (ok) => ({ ok }),
        (err: unknown) => ({ err }),
      );
      // Either it finished (reading the facts without the batch's) or it waits for the batch.
      await doneOrWaitingForALock(ctx.db.pool, unbooking);
      await indexer.query("COMMIT");
      const outcome = await unbooking;
      expect(outcome).toEqual({
        err: expect.objectContaining({
          code: "TREASURY_MOVE_REFUSED",
          message: expect.stringMatching(
            /is on the chain \(a seen fact at block 61\).*its booking stands/,
          ),
        }),
      });
    } finally {
      await indexer.query("ROLLBACK").catch(() => {});
      indexer.release();
    }
    expect(await t.written()).toEqual(before);
  });
});
