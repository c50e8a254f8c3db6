/**
 * A treasury booking (fund, defund, gas) decides from the indexer's facts of its transaction:
 * none yet is "not indexed yet" (the given amounts are booked, reconciliation checks them later),
 * and facts it has are checked (a position it has no fact at, an amount that differs: refused).
 * Read while the indexer's batch storing that transaction was uncommitted, the facts were missed
 * and the unchecked amounts booked: a reverted defund's value (it never left the wallet), gas
 * other than the fee the chain charged. The booking now holds off the indexer's writes of the
 * chain's facts (indexers' `holdFactWrites`) as `treasury unbook` does: the batch in flight commits
 * first, its facts are read, and the booking is refused. Deterministic: the indexer's batch is held
 * open on a second connection (ledger/testing/treasury.ts `whileIndexerStores`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTreasuryFileTest, type TreasuryTest, ZERO } from "./testing/treasury.js";
import { bookTreasuryMove, type TreasuryMoveArgs } from "./treasury.js";

const CHAIN = 31337;
const HOT = `0x${"a5".repeat(20)}`;
let t: TreasuryTest;

const book = (args: Omit<TreasuryMoveArgs, "chainId" | "wallet" | "by" | "reason">) =>
  bookTreasuryMove(t.deps, { chainId: CHAIN, wallet: HOT, by: "ops", reason: "test", ...args });

beforeAll(async () => {
  t = await startTreasuryFileTest(HOT, CHAIN);
  await t.checkpoint(60);
});
afterAll(async () => {
  await t?.close();
});

describe("a treasury booking racing the indexer storing its transaction", () => {
  it("a defund whose transaction is being stored reverted (its fee only) waits for it and is refused", async () => {
    const tx = `0x${"d2".repeat(32)}`;
    const before = await t.written();
    const outcome = await t.whileIndexerStores(
      [{ tx, position: "fee", kind: "fee", from: HOT, to: ZERO, amount: 21n, block: 61 }],
      () => book({ move: "defund", txHash: tx, amount: 1_000n, fee: 21n }),
    );
    expect(outcome).toEqual({
      err: expect.objectContaining({
        code: "TREASURY_MOVE_REFUSED",
        message: expect.stringMatching(/has no fact at tx; it has fee/),
      }),
    });
    expect(await t.written()).toEqual(before);
  });

  it("gas (a deploy's) whose fee fact is being stored waits for it: another amount is refused, not booked", async () => {
    const tx = `0x${"d3".repeat(32)}`;
    const before = await t.written();
    const outcome = await t.whileIndexerStores(
      [{ tx, position: "fee", kind: "fee", from: HOT, to: ZERO, amount: 21n, block: 62 }],
      () => book({ move: "gas", txHash: tx, amount: 25n }),
    );
    expect(outcome).toEqual({
      err: expect.objectContaining({
        code: "TREASURY_MOVE_REFUSED",
        message: expect.stringMatching(/says 21, not 25/),
      }),
    });
    expect(await t.written()).toEqual(before);
  });
});
