/**
 * For reorg-receivable tests without a node, on the test context's one chain (31337): the ledger
 * and the deposit crediting with the hot wallet and the deposit addresses registered, and the chain
 * side written as the indexer leaves it: a confirmed native deposit, the same deposit orphaned by a
 * reorg past the confirmation rule (with the reorg recorded), the checkpoint's finalized height.
 * `owed` reads what a customer owes on `receivable:reorg:<owner>`. Test-only.
 */
import type { Pool } from "../../foundation/db.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../depositCrediting.js";

export const RECEIVABLE_CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const ETH = `${RECEIVABLE_CHAIN_ID}:${ZERO}`;

export type ReceivableLedger = { ctx: TestContext; ledger: Ledger; crediting: DepositCrediting };

export async function startReceivableLedger({
  hot,
  deposits,
}: {
  hot: string;
  deposits: { address: string; owner: string }[];
}): Promise<ReceivableLedger> {
  const ctx = await createTestContext();
  const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  try {
    await ledger.ensureAssetsFromConfig(ctx.config.chains);
    await ctx.db.pool.query(
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
       SELECT $1, a, k, o FROM unnest($2::text[], $3::text[], $4::text[]) AS x(a, k, o)`,
      [
        RECEIVABLE_CHAIN_ID,
        [hot, ...deposits.map((d) => d.address)],
        ["hot", ...deposits.map(() => "deposit")],
        ["hot-1", ...deposits.map((d) => d.owner)],
      ],
    );
  } catch (error) {
    await ledger.close();
    await ctx.cleanup();
    throw error;
  }
  return {
    ctx,
    ledger,
    crediting: createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger }),
  };
}

/** A confirmed native deposit of `amount` to `to` in transaction `tx` of block `block` (`number`). */
export async function confirmedDeposit(
  pool: Pool,
  f: { tx: string; block: string; number: number; to: string; amount: bigint },
): Promise<void> {
  await pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
       from_address, to_address, amount, status, orphaned_after_confirmation)
     VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, $8, 'confirmed', false)`,
    [
      RECEIVABLE_CHAIN_ID,
      f.number,
      f.block,
      f.tx,
      ZERO,
      `0x${"ee".repeat(20)}`,
      f.to,
      f.amount.toString(),
    ],
  );
}

/** The deposit of `tx` in `blockHash` orphaned after its confirmation, and that reorg recorded. */
export async function orphanAfterConfirmation(
  pool: Pool,
  tx: string,
  blockHash: string,
): Promise<void> {
  await pool.query(
    "UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true WHERE tx_hash = $1 AND block_hash = $2",
    [tx, blockHash],
  );
  await pool.query(
    `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
       new_tip_number, new_tip_hash, beyond_window)
     SELECT $1, 1, min(block_number) - 1, min(block_number), $2, min(block_number), '0xnew', false
       FROM chain.transfers WHERE tx_hash = $3 AND block_hash = $2`,
    [RECEIVABLE_CHAIN_ID, blockHash, tx],
  );
}

/** The chain's finalized height at `n` (the checkpoint's tip at `tip` when there is none yet). */
export async function setFinalized(pool: Pool, n: number, { tip }: { tip: number }): Promise<void> {
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
     VALUES ($1, $3, '0xtip', $2, '0xfinal')
     ON CONFLICT (chain_id) DO UPDATE SET finalized_number = $2`,
    [RECEIVABLE_CHAIN_ID, n, tip],
  );
}

/** What `owner` owes in ether on `receivable:reorg:<owner>`: posted, and still pending. */
export async function owed(
  ledger: Ledger,
  owner: string,
): Promise<{ posted: bigint; pending: bigint }> {
  const r = await ledger.balance({ assetId: ETH, name: `receivable:reorg:${owner}` });
  return { posted: r.debitsPosted - r.creditsPosted, pending: r.debitsPending };
}
