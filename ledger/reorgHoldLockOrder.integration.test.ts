/**
 * A reorg orphans a customer's deposits of two assets of a chain, and another worker credits new
 * deposits of both assets while the reorg-hold pass runs. Crediting locks its accounts in id order
 * (the ledger's lock order); the hold pass locked each credit's accounts as it came to it (oldest
 * credit first), so a token credit older than a native one took the token's accounts (higher ids)
 * before the native ones: the two transactions waited on each other and Postgres aborted one of
 * them (a whole pass thrown away, retried on the next tick). Every pass that books many credits in
 * one transaction takes their accounts in id order first.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createDepositCrediting } from "./depositCrediting.js";
import { doneOrWaitingForALock, gatedCrediting } from "./testing/gatedCrediting.js";

const CHAIN = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const TOKEN = `0x${"77".repeat(20)}`;
const ETH = `${CHAIN}:${ZERO}`;
const TT = `${CHAIN}:${TOKEN}`;
const DEPOSIT = `0x${"d1".repeat(20)}`;
let ctx: TestContext;
let ledger: Ledger;
let txs = 0;

/** A confirmed deposit to alice of `asset` in `block` (number `n`); returns its tx hash. */
async function confirmedFact(
  block: string,
  n: number,
  asset: string,
  amount: bigint,
  tx = `0x${(++txs).toString(16).padStart(64, "0")}`,
) {
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
       asset, from_address, to_address, amount, status)
     VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, 'confirmed')`,
    [
      CHAIN,
      n,
      block,
      tx,
      asset === ZERO ? "tx" : "transfer:0",
      asset === ZERO ? "native" : "erc20",
      asset,
      `0x${"ee".repeat(20)}`,
      DEPOSIT,
      amount.toString(),
    ],
  );
  return tx;
}

/** As the indexer's rollback: the block's facts orphaned and the reorg recorded, in one transaction. */
async function orphan(block: string, n: number) {
  await ctx.db.pool.query(
    `WITH o AS (UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true
                 WHERE chain_id = $1 AND block_hash = $2)
     INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
       new_tip_number, new_tip_hash, beyond_window)
     VALUES ($1, 1, $3::bigint - 1, $3, $2, $3, '0xnew', false)`,
    [CHAIN, block, n],
  );
}

/** A crediting worker stopping before its `stopAt`-th ledger write (1-based, 0: never) until released. */
const countingWorker = (stopAt: number) =>
  gatedCrediting({ common: ctx.common, pool: ctx.db.pool, ledger }, (_t, n) => n === stopAt);

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await ledger.ensureAsset({
    chainId: CHAIN,
    token: TOKEN as `0x${string}`,
    symbol: "TT",
    decimals: 18,
  });
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     VALUES ($1, $2, 'deposit', 'alice')`,
    [CHAIN, DEPOSIT],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("passes over credits of two assets, concurrently", () => {
  it("a reorg-hold pass and crediting of new deposits both complete (no deadlock abort)", async () => {
    const crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    // The native accounts first (lower ids), then a token credit older than a native one.
    await confirmedFact("0xa1", 11, ZERO, 5n);
    expect(await crediting.creditConfirmed({ chainId: CHAIN })).toBe(1);
    await confirmedFact("0xb1", 12, TOKEN, 50n);
    expect(await crediting.creditConfirmed({ chainId: CHAIN })).toBe(1);
    await confirmedFact("0xb1", 12, ZERO, 50n);
    expect(await crediting.creditConfirmed({ chainId: CHAIN })).toBe(1);
    const ids = await ctx.db.pool.query<{ asset_id: string }>(
      "SELECT asset_id FROM ledger.accounts WHERE name IN ('user:alice', 'custody:deposits') ORDER BY id",
    );
    expect(ids.rows.map((r) => r.asset_id)).toEqual([ETH, ETH, TT, TT]);
    await orphan("0xb1", 12);
    // New deposits of both assets, confirmed at block 13, for the other worker to credit.
    await confirmedFact("0xc1", 13, ZERO, 7n);
    await confirmedFact("0xc1", 13, TOKEN, 70n);

    // Worker A's hold pass stops at the token credit's hold (the older), its accounts locked …
    const a = countingWorker(1);
    const holding = a.worker.holdOrphaned({ chainId: CHAIN });
    await a.reached;
    // … while worker B credits the new deposits (a doorbell's range, or parked ones retried).
    const b = countingWorker(0);
    const creditingNew = b.worker.creditConfirmed({ chainId: CHAIN });
    await doneOrWaitingForALock(ctx.db.pool, creditingNew);
    a.release();
    const [held, credited] = await Promise.allSettled([holding, creditingNew]);
    expect(held).toEqual({ status: "fulfilled", value: 2 });
    expect(credited).toEqual({ status: "fulfilled", value: 2 });
    // Neither transaction was aborted and run again: one write per hold, one for the credits.
    expect({ a: a.writes.n, b: b.writes.n }).toEqual({ a: 2, b: 1 });

    const balance = async (assetId: string) =>
      (await ledger.balance({ assetId, name: "user:alice" })).available;
    expect(await balance(ETH)).toBe(12n);
    expect(await balance(TT)).toBe(70n);
    expect((await ledger.check()).ok).toBe(true);
  });

  it("a restore pass voiding holds of both assets and crediting of new deposits both complete", async () => {
    const crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    // A token deposit and a native one, credited, each reorged out and held (the token's first) …
    const token = await confirmedFact("0xd1", 21, TOKEN, 30n);
    const native = await confirmedFact("0xd2", 22, ZERO, 3n);
    expect(await crediting.creditConfirmed({ chainId: CHAIN })).toBe(2);
    await orphan("0xd1", 21);
    expect(await crediting.holdOrphaned({ chainId: CHAIN })).toBe(1);
    await orphan("0xd2", 22);
    expect(await crediting.holdOrphaned({ chainId: CHAIN })).toBe(1);
    // … and both re-mined and confirmed at block 23; new deposits of both assets at block 24.
    await confirmedFact("0xd3", 23, TOKEN, 30n, token);
    await confirmedFact("0xd3", 23, ZERO, 3n, native);
    await confirmedFact("0xd4", 24, ZERO, 9n);
    await confirmedFact("0xd4", 24, TOKEN, 90n);

    // Worker A's restore pass has voided the token's hold (the older) and stops at the native one's …
    const a = countingWorker(2);
    const restoring = a.worker.restoreReconfirmed({ chainId: CHAIN });
    await a.reached;
    // … while worker B credits the new deposits.
    const b = countingWorker(0);
    const creditingNew = b.worker.creditConfirmed({ chainId: CHAIN });
    await doneOrWaitingForALock(ctx.db.pool, creditingNew);
    a.release();
    const [restored, credited] = await Promise.allSettled([restoring, creditingNew]);
    expect(restored).toEqual({ status: "fulfilled", value: 2 });
    expect(credited).toEqual({ status: "fulfilled", value: 2 });
    expect({ a: a.writes.n, b: b.writes.n }).toEqual({ a: 2, b: 1 });

    const balance = async (assetId: string) =>
      (await ledger.balance({ assetId, name: "user:alice" })).available;
    expect(await balance(ETH)).toBe(12n + 3n + 9n);
    expect(await balance(TT)).toBe(70n + 30n + 90n);
    expect((await ledger.check()).ok).toBe(true);
  });
});
