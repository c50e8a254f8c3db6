/**
 * Where a run stands: the watermarks it reads at its snapshot (highest fact id of the chain,
 * highest entry seq, the snapshot's time, the entry seq gaps), and the previous completed run an
 * incremental run continues from.
 */
import type { PoolClient } from "../../foundation/db.js";
import type { SeqGap, SnapshotXids } from "./seqGaps.js";

export type Watermarks = {
  fact: number;
  entry: number;
  /**
   * The chain's highest `chain.reorg_log` id: one indexer writes a chain's reorgs (under its tip
   * lock), so they become visible in id order, and every fact a reorg orphans is orphaned in the
   * transaction that records it (indexers/sync/reorg.ts rollBack).
   */
  reorg: number;
  snapshotAt: Date;
  entryGaps: SeqGap[];
  xids: SnapshotXids;
};

export type PreviousRun = {
  id: number;
  block: number;
  factWatermark: number;
  entryWatermark: number;
  snapshotAt: Date;
  /** Null for runs stored before it was kept (their reorgs are found by `detected_at`). */
  reorgWatermark: number | null;
  /**
   * Chain references and entry ids named by the previous run's breaks and deferred entries, and by
   * every break of the chain still open or acknowledged (store.ts findPreviousRun).
   */
  openKeys: { txHash: string; position: string }[];
  openEntryIds: string[];
  entryGaps: SeqGap[];
};

export async function readWatermarks(client: PoolClient, chainId: number): Promise<Watermarks> {
  // Facts per chain: one indexer writes a chain, so its ids become visible in order.
  const r = await client.query<{
    fact: string;
    entry: string;
    reorg: string;
    now: Date;
    xmin: string;
    next: string;
  }>(
    `SELECT (SELECT COALESCE(max(id), 0) FROM chain.facts WHERE chain_id = $1) AS fact,
            (SELECT COALESCE(max(seq), 0) FROM ledger.journal) AS entry,
            (SELECT COALESCE(max(id), 0) FROM chain.reorg_log WHERE chain_id = $1) AS reorg,
            now() AS now, pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
            pg_current_xact_id()::text AS next`,
    [chainId],
  );
  const row = r.rows[0]!;
  return {
    fact: Number(row.fact),
    entry: Number(row.entry),
    reorg: Number(row.reorg),
    snapshotAt: row.now,
    entryGaps: [],
    xids: { xmin: Number(row.xmin), next: Number(row.next) },
  };
}
