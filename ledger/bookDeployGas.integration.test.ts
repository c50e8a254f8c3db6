/**
 * A hot-wallet deploy on an OP-stack chain (Base, Optimism) costs the wallet gas used × effective
 * gas price plus the L1 data fee its receipt carries; the treasury gas booking must move the same,
 * or custody:hot stays above the wallet's on-chain balance (a balance break on every such chain).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainDataInconsistentError } from "../chains/index.js";
import { withTransaction } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { bookDeployGas } from "./bookDeployGas.js";

const CHAIN = 31337;
const HOT = `0x${"b2".repeat(20)}`;
const TX: Hex = `0x${"cd".repeat(32)}`;
let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES ($1, $2, 'hot', 'hot-1')`,
    [CHAIN, HOT],
  );
});
afterAll(async () => {
  await ctx?.cleanup();
});

describe("bookDeployGas", () => {
  it("books an OP-stack deploy's L1 data fee with its gas", async () => {
    // As viem returns it without the OP formatters: l1Fee stays the node's hex.
    const receipt = {
      transactionHash: TX,
      gasUsed: 500_000n,
      effectiveGasPrice: 3n,
      l1Fee: "0x2710" as Hex,
    };
    await withTransaction(ctx.db.pool, (client) =>
      bookDeployGas({
        common: ctx.common,
        pool: ctx.db.pool,
        chain: ctx.config.chains[0]!,
        client,
        hotWallet: HOT,
        receipt,
        operatorFee: 0n,
        by: "test",
        reason: "deploy gas on an OP-stack chain",
      }),
    );
    const { rows } = await ctx.db.pool.query(
      "SELECT tx_hash, amount FROM ledger.transfers WHERE kind = 'fee'",
    );
    expect(rows.map((r) => ({ tx_hash: r.tx_hash, amount: BigInt(r.amount) }))).toEqual([
      { tx_hash: TX, amount: 500_000n * 3n + 10_000n },
    ]);
  });

  it("refuses a receipt without l1Fee on a chain configured OP-stack, booking nothing", async () => {
    // A node or proxy that dropped the field: gas alone would under-book the deploy.
    const tx: Hex = `0x${"ce".repeat(32)}`;
    const book = (receipt: { l1Fee?: Hex }) =>
      withTransaction(ctx.db.pool, (client) =>
        bookDeployGas({
          common: ctx.common,
          pool: ctx.db.pool,
          chain: { ...ctx.config.chains[0]!, l1DataFee: "op-stack" },
          client,
          hotWallet: HOT,
          receipt: { transactionHash: tx, gasUsed: 500_000n, effectiveGasPrice: 3n, ...receipt },
          operatorFee: 0n,
          by: "test",
          reason: "deploy gas on an OP-stack chain",
        }),
      );
    await expect(book({})).rejects.toThrow(ChainDataInconsistentError);
    const { rows } = await ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM ledger.transfers WHERE tx_hash = $1",
      [tx],
    );
    expect(rows[0].n).toBe(0);
    // The node's whole receipt, asked again: booked.
    await book({ l1Fee: "0x2710" });
    const after = await ctx.db.pool.query(
      "SELECT amount FROM ledger.transfers WHERE tx_hash = $1 AND kind = 'fee'",
      [tx],
    );
    expect(after.rows.map((r) => BigInt(r.amount))).toEqual([500_000n * 3n + 10_000n]);
  });
});
