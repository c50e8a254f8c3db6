/**
 * Everything sharing a chain reference (tx hash, position): the facts at it, the posted entries
 * claiming it (directly or through their hold) and their compensations, and the entries whose fact
 * is only above the run's block.
 */
import type { PoolClient } from "../../foundation/db.js";
import {
  ENTRY_SELECT,
  type EntryRow,
  FACT_COLUMNS,
  type FactRow,
  toEntry,
  toFact,
} from "./factEntryRows.js";
import { factKey } from "./match.js";
import type { ChainFact, LedgerEntry } from "./types.js";

/** A chain reference. */
export type ChainKey = { txHash: string; position: string };

export async function loadFactsByKeys(
  client: PoolClient,
  chainId: number,
  block: number,
  keys: ChainKey[],
): Promise<ChainFact[]> {
  if (keys.length === 0) return [];
  // tx_hash = ANY probes the (chain_id, tx_hash, position) index once per hash; the position is
  // checked here (a tx has few facts).
  const wanted = new Set(keys.map((k) => factKey(k.txHash, k.position)));
  const r = await client.query<FactRow>(
    `SELECT ${FACT_COLUMNS} FROM chain.facts
     WHERE chain_id = $1 AND tx_hash = ANY($3::text[]) AND block_number <= $2`,
    [chainId, block, [...new Set(keys.map((k) => k.txHash))]],
  );
  return r.rows
    .filter((row) => wanted.has(factKey(row.tx_hash, row.position)))
    .map((row) => toFact(chainId, row));
}

/**
 * Posted entries claiming any of `keys` (directly or through their hold), the entries `ids`, and
 * the compensations of all of those. Rows in `known` are not fetched again.
 */
export async function loadEntriesByKeys(
  client: PoolClient,
  chainId: number,
  keys: ChainKey[],
  ids: string[] = [],
  known: ReadonlyMap<string, LedgerEntry> = new Map(),
): Promise<LedgerEntry[]> {
  if (keys.length === 0 && ids.length === 0) return [];
  const wanted = new Set(keys.map((k) => factKey(k.txHash, k.position)));
  const hashes = [...new Set(keys.map((k) => k.txHash))];
  const claims = await client.query<{ id: string; tx_hash: string; position: string }>(
    `SELECT t.id, t.tx_hash, t.position FROM ledger.journal t
      WHERE t.chain_id = $1 AND t.tx_hash = ANY($2::text[])
     UNION ALL
     SELECT t.id, h.tx_hash, h.position FROM ledger.journal h
       JOIN ledger.journal t ON t.pending_id = h.id
      WHERE h.chain_id = $1 AND h.tx_hash = ANY($2::text[])`,
    [chainId, hashes],
  );
  const claimIds = new Set(ids);
  for (const c of claims.rows) if (wanted.has(factKey(c.tx_hash, c.position))) claimIds.add(c.id);
  if (claimIds.size === 0) return [];
  const comp = await client.query<{ id: string }>(
    "SELECT id FROM ledger.journal WHERE reverses_id = ANY($1::uuid[])",
    [[...claimIds]],
  );
  for (const c of comp.rows) claimIds.add(c.id);
  const out: LedgerEntry[] = [];
  const missing: string[] = [];
  for (const id of claimIds) {
    const k = known.get(id);
    if (k) out.push(k);
    else missing.push(id);
  }
  if (missing.length > 0) {
    const r = await client.query<EntryRow>(
      `${ENTRY_SELECT} WHERE e.id = ANY($2::uuid[]) AND e.chain_id = $1`,
      [chainId, missing],
    );
    for (const row of r.rows) out.push(toEntry(row));
  }
  return out;
}

/** Entries whose chain fact is only above the run's block: they belong to a later run. */
export async function loadLateEntries(
  client: PoolClient,
  chainId: number,
  block: number,
): Promise<LedgerEntry[]> {
  const late = await client.query<{ tx_hash: string; position: string }>(
    `SELECT DISTINCT f.tx_hash, f.position FROM chain.facts f
     WHERE f.chain_id = $1 AND f.block_number > $2 AND f.status <> 'orphaned'
       AND NOT EXISTS (
         SELECT 1 FROM chain.facts g
         WHERE g.chain_id = f.chain_id AND g.tx_hash = f.tx_hash AND g.position = f.position
           AND g.block_number <= $2 AND g.status <> 'orphaned')`,
    [chainId, block],
  );
  if (late.rows.length === 0) return [];
  const keys = late.rows.map((r) => ({ txHash: r.tx_hash, position: r.position }));
  return loadEntriesByKeys(client, chainId, keys);
}
