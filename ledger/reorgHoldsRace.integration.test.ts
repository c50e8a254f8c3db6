/**
 * Two crediting workers (production runs at least two) and a second reorg of a re-included deposit:
 * worker A restores a held credit because its deposit is confirmed again, and while A's transaction
 * is open the indexer orphans that confirmation and worker B's hold pass runs. The restore must not
 * leave the credit standing for a deposit that is no longer on the chain: the orphaning waits for
 * the restore (the restore locks the fact it relies on), and the hold pass after it holds the credit
 * again; at finality it is reversed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createDepositCrediting } from "./depositCrediting.js";
import { doneOrWaitingForALock, gatedCrediting } from "./testing/gatedCrediting.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const ZERO = "0x0000000000000000000000000000000000000000";
const DEPOSIT = `0x${"d1".repeat(20)}`;
const TX = `0x${"ab".repeat(32)}`;
let ctx: TestContext;
let ledger: Ledger;

/** The deposit's fact in `block` (number `n`), confirmed. */
async function confirmedFact(block: string, n: number, tx = TX) {
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
       asset, from_address, to_address, amount, status)
     VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, 50, 'confirmed')`,
    [CHAIN, n, block, tx, ZERO, `0x${"ee".repeat(20)}`, DEPOSIT],
  );
}

/** As the indexer's rollback: the block's facts orphaned and the reorg recorded, in one transaction. */
async function orphan(block: string, tx = TX) {
  const c = await ctx.db.pool.connect();
  try {
    await c.query("BEGIN");
    await c.query(
      `UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true
        WHERE tx_hash = $1 AND block_hash = $2`,
      [tx, block],
    );
    await c.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       SELECT $1, 1, min(block_number) - 1, min(block_number), $2, min(block_number), '0xnew', false
         FROM chain.transfers WHERE tx_hash = $3 AND block_hash = $2`,
      [CHAIN, block, tx],
    );
    await c.query("COMMIT");
  } finally {
    c.release();
  }
}

/** A crediting worker stopping at the first ledger write `stopsAt` picks until released. */
const slowWorker = (stopsAt: (transfers: Parameters<Ledger["createTransfers"]>[0]) => boolean) =>
  gatedCrediting({ common: ctx.common, pool: ctx.db.pool, ledger }, stopsAt);

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
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

describe("a restore racing a second reorg of the re-included deposit", () => {
  it("never leaves a credit standing whose deposit is orphaned", async () => {
    const workerB = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    // Worker A's ledger stops at the hold's void until released (a slow round trip, nothing else).
    const a = slowWorker((transfers) => transfers.some((t) => t.type === "void"));

    // Credited at block 11, reorged out (held), re-included and confirmed at block 12.
    await confirmedFact("0xb1", 11);
    expect((await workerB.sweep({ chainId: CHAIN })).credited).toBe(1);
    await orphan("0xb1");
    expect((await workerB.sweep({ chainId: CHAIN })).held).toBe(1);
    await confirmedFact("0xb2", 12);

    // A reads the deposit confirmed at block 12 and starts voiding the hold …
    const restoring = a.worker.restoreReconfirmed({ chainId: CHAIN });
    await a.reached;
    // … the indexer orphans block 12 (it commits, or waits for A's lock on the fact) and worker B's
    // hold pass runs in that window.
    const orphaning = orphan("0xb2");
    await doneOrWaitingForALock(ctx.db.pool, orphaning);
    await workerB.holdOrphaned({ chainId: CHAIN });
    a.release();
    expect(await restoring).toBe(1);
    await orphaning;

    // The passes after it, with the orphaned heights final.
    await ctx.db.pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
       VALUES ($1, 100, '0xtip', 50, '0xfinal')
       ON CONFLICT (chain_id) DO UPDATE SET finalized_number = 50`,
      [CHAIN],
    );
    for (let i = 0; i < 3; i++) await workerB.sweep({ chainId: CHAIN });

    const canonical = await ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM chain.transfers WHERE tx_hash = $1 AND status <> 'orphaned'",
      [TX],
    );
    expect(canonical.rows[0]!.n).toBe(0); // the deposit is nowhere on the chain …
    const credits = await ctx.db.pool.query<{ state: string }>(
      "SELECT state FROM ledger.deposit_credits WHERE tx_hash = $1",
      [TX],
    );
    // … so its credit was held again and, at finality, reversed: nothing left to withdraw.
    expect(credits.rows.map((r) => r.state)).toEqual(["final"]);
    expect((await ledger.balance({ assetId: ETH, name: "user:alice" })).available).toBe(0n);
  });

  it("a copy re-mined while the hold is being posted at finality is credited by the next pass over new blocks", async () => {
    const tx = `0x${"cd".repeat(32)}`;
    const workerB = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });
    // Worker A's ledger stops at its first write (the hold's posting) until released.
    const a = slowWorker(() => true);
    const credits = async () =>
      (
        await ctx.db.pool.query<{ state: string }>(
          "SELECT state FROM ledger.deposit_credits WHERE tx_hash = $1 ORDER BY created_at",
          [tx],
        )
      ).rows.map((r) => r.state);

    // Credited at block 21, reorged out and held; block 21 is final (the first test's checkpoint).
    await confirmedFact("0xc1", 21, tx);
    expect((await workerB.creditNew({ chainId: CHAIN })).credited).toBe(1);
    await orphan("0xc1", tx);
    expect(await workerB.holdOrphaned({ chainId: CHAIN })).toBe(1);

    // A has read the hold as final with the deposit nowhere on the chain, and is posting it …
    const finalizing = a.worker.finalizeHolds({ chainId: CHAIN });
    await a.reached;
    // … when a copy of the deposit is mined (and confirmed) at block 22, and B credits new blocks.
    await confirmedFact("0xc2", 22, tx);
    const crediting = workerB.creditNew({ chainId: CHAIN });
    await doneOrWaitingForALock(
      ctx.db.pool,
      crediting.then(() => {}),
    );
    a.release();
    expect(await finalizing).toBe(1);
    await crediting;
    // The hold posted at finality, and the copy credited as a deposit of its own right away (not
    // left below the watermark for the catch-up rotation).
    expect(await credits()).toEqual(["final", "credited"]);
  });
});
