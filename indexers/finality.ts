/**
 * What the indexer publishes about finality (shared contract 1): per chain, the highest stored
 * canonical block that meets the chain's finality rule. The ledger and the signer read it through
 * `readFinalized`; only the ingestor writes it, and it never moves down.
 */

import type { QueryResult, QueryResultRow } from "pg";
import { type ConfirmationRule, finalityRule } from "../chains/index.js";
import type { PoolClient } from "../foundation/db.js";

export type FinalizedBlock = { number: bigint; hash: string };

/** What readFinalized needs: a pool, a client, or any connection that runs SQL (the signer's lease). */
type Queryable = {
  query: <R extends QueryResultRow>(sql: string, params?: unknown[]) => Promise<QueryResult<R>>;
};

/** The chain's published finalized block, or null before the indexer has computed one. */
export async function readFinalized(
  db: Queryable,
  chainId: number,
): Promise<FinalizedBlock | null> {
  const { rows } = await db.query<{
    finalized_number: string | null;
    finalized_hash: string | null;
  }>("SELECT finalized_number, finalized_hash FROM chain.checkpoints WHERE chain_id = $1", [
    chainId,
  ]);
  const row = rows[0];
  if (!row || row.finalized_number === null || row.finalized_hash === null) return null;
  return { number: BigInt(row.finalized_number), hash: row.finalized_hash };
}

/**
 * Publish `candidate` (a block number) as finalized if it is higher than what is stored, with the
 * hash of our canonical block at that height. Runs inside the batch's transaction, after the
 * checkpoint row exists. Returns what is now published.
 */
export async function publishFinalized(
  client: PoolClient,
  chainId: number,
  candidate: bigint | null,
): Promise<FinalizedBlock | null> {
  if (candidate !== null && candidate >= 0n) {
    const { rows } = await client.query<{ finalized_number: string; finalized_hash: string }>(
      `UPDATE chain.checkpoints c
          SET finalized_number = b.number, finalized_hash = b.hash
         FROM chain.blocks b
        WHERE c.chain_id = $1 AND b.chain_id = $1 AND b.canonical AND b.number = $2
          AND (c.finalized_number IS NULL OR c.finalized_number < b.number)
       RETURNING c.finalized_number, c.finalized_hash`,
      [chainId, candidate.toString()],
    );
    const row = rows[0];
    if (row) return { number: BigInt(row.finalized_number), hash: row.finalized_hash };
  }
  return readFinalized(client, chainId);
}

/**
 * Move the checkpoint to `tip` and publish `candidate` as finalized as `publishFinalized` does
 * (only higher, only a stored canonical block, with its hash), in one statement: an ingest
 * batch's last write. Returns what is now published.
 */
export async function saveTipAndPublishFinalized(
  client: PoolClient,
  chainId: number,
  tip: { number: bigint; hash: string },
  candidate: bigint | null,
): Promise<FinalizedBlock | null> {
  const { rows } = await client.query<{
    finalized_number: string | null;
    finalized_hash: string | null;
  }>(
    `INSERT INTO chain.checkpoints AS c
       (chain_id, block_number, block_hash, updated_at, finalized_number, finalized_hash)
     SELECT $1, $2, $3, now(), b.number, b.hash
       FROM (SELECT 1) AS one
       LEFT JOIN chain.blocks b ON b.chain_id = $1 AND b.canonical AND b.number = $4::bigint
     ON CONFLICT (chain_id) DO UPDATE
       SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, updated_at = now(),
           finalized_number = CASE WHEN EXCLUDED.finalized_number > COALESCE(c.finalized_number, -1)
                                   THEN EXCLUDED.finalized_number ELSE c.finalized_number END,
           finalized_hash = CASE WHEN EXCLUDED.finalized_number > COALESCE(c.finalized_number, -1)
                                 THEN EXCLUDED.finalized_hash ELSE c.finalized_hash END
     RETURNING c.finalized_number, c.finalized_hash`,
    [
      chainId,
      tip.number.toString(),
      tip.hash,
      candidate !== null && candidate >= 0n ? candidate.toString() : null,
    ],
  );
  const row = rows[0];
  if (!row || row.finalized_number === null || row.finalized_hash === null) return null;
  return { number: BigInt(row.finalized_number), hash: row.finalized_hash };
}

/**
 * Pure: the finalized height implied by the rule, given the stored tip (never above it: only
 * stored blocks are published). A `blocks` rule counts from the tip, not from a head a node
 * reported: a head is one answer, not a block we fetched and linked, and missing or bogus data is
 * never evidence of finality. `nodeFinalized` is the node's `finalized` tag (null when unknown,
 * checked by the caller against our block at its height), used by the `finalized` rule.
 */
export function finalizedHeight(
  rule: ConfirmationRule,
  { tip, nodeFinalized }: { tip: bigint; nodeFinalized: bigint | null },
): bigint | null {
  let h: bigint | null;
  if (rule.kind === "blocks") h = tip - BigInt(Math.max(rule.blocks, 1)) + 1n;
  else h = nodeFinalized;
  if (h === null || h < 0n) return null;
  return h < tip ? h : tip;
}

export { finalityRule };
