/**
 * A treasury booking is only as good as the fact it names. Where the indexer has the transaction,
 * a position it does not have is not "not indexed yet": the operator named the wrong thing, and
 * the given amount was booked against nothing. A token funding booked without `--token` credited
 * the hot wallet with native coin it never received; a reverted defund (gas only) booked value
 * that never left; `gas --position tx` booked a defund's value as its gas; `--position TX` booked
 * an already booked funding a second time; a funding a reorg took off the chain was booked from
 * its `--amount`. Each is refused, naming what is wrong, and nothing is written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTreasuryFileTest, type TreasuryTest, ZERO } from "./testing/treasury.js";
import { bookTreasuryMove, type TreasuryMoveArgs } from "./treasury.js";

const CHAIN = 31337;
const HOT = `0x${"a2".repeat(20)}`;
const OPERATOR = `0x${"0e".repeat(20)}`;
const TOKEN = `0x${"70".repeat(20)}`;
let t: TreasuryTest;
let txCounter = 0;
const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "f")}`;
const fact = (f: Parameters<TreasuryTest["fact"]>[0]) => t.fact(f);

const book = (args: Omit<TreasuryMoveArgs, "chainId" | "wallet" | "by" | "reason">) =>
  bookTreasuryMove(t.deps, { chainId: CHAIN, wallet: HOT, by: "ops", reason: "test", ...args });

async function expectRefused(args: Parameters<typeof book>[0], message: RegExp): Promise<void> {
  const before = await t.written();
  await expect(book(args)).rejects.toMatchObject({
    code: "TREASURY_MOVE_REFUSED",
    message: expect.stringMatching(message),
  });
  expect(await t.written()).toEqual(before);
}

beforeAll(async () => {
  t = await startTreasuryFileTest(HOT, CHAIN);
});
afterAll(async () => {
  await t?.close();
});

describe("a treasury booking naming a position the indexed transaction does not have", () => {
  it("a token funding booked as native (no --token) is refused, naming the facts the tx has", async () => {
    const tx = txHash();
    await fact({
      tx,
      position: "transfer:0",
      kind: "erc20",
      asset: TOKEN,
      from: OPERATOR,
      to: HOT,
      amount: 5_000n,
    });
    await expectRefused(
      { move: "fund", txHash: tx, amount: 5_000n },
      new RegExp(`has no fact at tx.*transfer:0 \\(${TOKEN}`),
    );
  });

  it("a reverted defund (its gas only) is refused for its value; its gas books alone", async () => {
    const tx = txHash();
    await fact({ tx, position: "fee", kind: "fee", from: HOT, to: ZERO, amount: 21n });
    await expectRefused({ move: "defund", txHash: tx, amount: 1_000n }, /has no fact at tx/);
    const gas = await book({ move: "gas", txHash: tx });
    expect(gas.transfers.map((t) => `${t.kind} ${t.amount} ${t.status}`)).toEqual([
      "fee 21 created",
    ]);
  });

  it("gas is always the fee fact: another position is refused, not booked as gas", async () => {
    const tx = txHash();
    await fact({ tx, position: "tx", kind: "native", from: HOT, to: OPERATOR, amount: 1_000n });
    await fact({ tx, position: "fee", kind: "fee", from: HOT, to: ZERO, amount: 21n });
    await expectRefused({ move: "gas", txHash: tx, position: "tx" }, /position/);
  });

  it("a position not in the indexer's form (TX) cannot book a funding a second time", async () => {
    const tx = txHash();
    await fact({ tx, position: "tx", kind: "native", from: OPERATOR, to: HOT, amount: 7_000n });
    const first = await book({ move: "fund", txHash: tx });
    expect(first.transfers.map((t) => `${t.amount} ${t.status}`)).toEqual(["7000 created"]);
    await expectRefused({ move: "fund", txHash: tx, position: "TX", amount: 7_000n }, /position/);
    await expectRefused({ move: "fund", txHash: tx, position: "fee", amount: 7_000n }, /position/);
  });

  it("a funding the indexer saw orphaned, not on the chain again, is refused until it is", async () => {
    const tx = txHash();
    await fact({
      tx,
      position: "tx",
      kind: "native",
      from: OPERATOR,
      to: HOT,
      amount: 9_000n,
      status: "orphaned",
    });
    await expectRefused({ move: "fund", txHash: tx, amount: 9_000n }, /orphaned|reorg/);
  });

  it("a transaction the indexer has nothing of still books from the given amount", async () => {
    const booked = await book({ move: "fund", txHash: txHash(), amount: 3_000n });
    expect([booked.factsIndexed, booked.transfers[0]!.status]).toEqual([false, "created"]);
  });
});
