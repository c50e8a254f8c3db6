/**
 * Where a run stands: the watermarks it reads at its snapshot (highest fact id of the chain,
 * highest entry seq, the snapshot's time, the entry seq gaps), and the previous completed run an
 * incremental run continues from.
 */
import type { PoolClient } from "../../foundation/db.js";
import type { SeqGap } from "./seqGaps.js";

export type Watermarks = { fact: number; entry: number; snapshotAt: Date; entryGaps: SeqGap[] };

export type PreviousRun = {
  id: number;
  block: number;
  factWatermark: number;
  entryWatermark: number;
  snapshotAt: Date;
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
  const r = await client.query<{ fact: string; entry: string; now: Date }>(
    `SELECT (SELECT COALESCE(max(id), 0) FROM chain.facts WHERE chain_id = $1) AS fact,
            (SELECT COALESCE(max(seq), 0) FROM ledger.journal) AS entry,
            now() AS now`,
    [chainId],
  );
  const row = r.rows[0]!;
  return { fact: Number(row.fact), entry: Number(row.entry), snapshotAt: row.now, entryGaps: [] };
}
