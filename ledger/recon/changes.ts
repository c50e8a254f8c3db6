/**
 * An incremental run's facts and entries: what changed since the previous run (facts above its
 * watermark, at heights it did not cover, or orphaned since; entries above its watermark or in its
 * seq gaps), closed over chain references so that everything sharing a reference with a change or
 * an open item is examined again.
 */
import type { PoolClient } from "../../foundation/db.js";
import { type ChainKey, loadEntriesByKeys, loadFactsByKeys } from "./claimants.js";
import {
  ENTRY_SELECT,
  type EntryRow,
  FACT_COLUMNS,
  type FactRow,
  toEntry,
  toFact,
} from "./factEntryRows.js";
import { factKey } from "./match.js";
import { seqRangeBatches } from "./seqGaps.js";
import type { ChainFact, LedgerEntry } from "./types.js";
import type { PreviousRun } from "./watermarks.js";

/** Facts per page when an incremental run reads the rows above the previous fact watermark. */
const FACT_PAGE = 50_000;

export async function loadChanges(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    previous: PreviousRun;
    lookbackMs: number;
    /** `loadChangedEntries` of the same snapshot, read by the caller on another client. */
    changedEntries?: Promise<LedgerEntry[]> | undefined;
  },
): Promise<{
  /** Changed facts and those sharing a chain reference with a change or an open item. */
  facts: ChainFact[];
  /** Every fact in (previous block, block], rows new since the previous run, rows orphaned since. */
  changedFacts: ChainFact[];
  /** Changed entries and those sharing a chain reference with one, in seq order. */
  entries: LedgerEntry[];
  changedEntries: LedgerEntry[];
}> {
  const { chainId, block, previous } = args;
  const changedFacts = await loadChangedFacts(client, chainId, block, previous, args.lookbackMs);
  const changedEntries = await (args.changedEntries ??
    loadChangedEntries(client, chainId, previous));
  // Close over chain references: every fact and entry sharing a reference with something that
  // changed (or was open) is examined again, so exclusivity holds across runs.
  const keys = new Map<string, ChainKey>();
  const addKey = (txHash: string | null, position: string | null) => {
    if (txHash !== null && position !== null)
      keys.set(factKey(txHash, position), { txHash, position });
  };
  // A new canonical row is the newest of its key (a tx re-included after a reorg is a new row),
  // so its key's facts are all in hand; an orphaned one's canonical copy may be an older row.
  // Only a row that is new since the previous run counts: old rows re-read for a reorg may have
  // claimants from long ago.
  const isNew = (f: ChainFact) => f.id > previous.factWatermark || f.blockNumber > previous.block;
  const newCanonical = changedFacts.filter((f) => f.status !== "orphaned" && isNew(f));
  // Entries claiming a new canonical fact are new themselves, or were deferred or broken in the
  // previous run (their fact was above its block or unknown), so they are open items: only the
  // keys of changed entries with older facts, of newly orphaned facts, and of open items need
  // their other claimants read. Not so for a transaction mined again after a reorg: its new row
  // shares the key of a row the previous run saw (and may have matched, or seen orphaned and
  // held), so the entries claiming it can be old and closed, and are read by key.
  const remined = await loadReminedKeys(client, chainId, newCanonical, previous.factWatermark);
  const canonicalKeys = new Set<string>();
  for (const f of newCanonical) {
    const k = factKey(f.txHash, f.position);
    if (remined.has(k)) addKey(f.txHash, f.position);
    else canonicalKeys.add(k);
  }
  for (const f of changedFacts)
    if (f.status === "orphaned" || !isNew(f)) addKey(f.txHash, f.position);
  for (const e of changedEntries) addKey(e.txHash, e.position);
  for (const k of previous.openKeys) addKey(k.txHash, k.position);
  const lookupKeys = [...keys].filter(([k]) => !canonicalKeys.has(k)).map(([, v]) => v);
  const byFactId = new Map<number, ChainFact>();
  for (const f of changedFacts) byFactId.set(f.id, f);
  for (const f of await loadFactsByKeys(client, chainId, block, lookupKeys)) byFactId.set(f.id, f);
  const facts = [...byFactId.values()];
  const byId = new Map<string, LedgerEntry>();
  for (const e of changedEntries) byId.set(e.id, e);
  const known = new Map(byId);
  for (const e of await loadEntriesByKeys(
    client,
    chainId,
    lookupKeys,
    previous.openEntryIds,
    known,
  ))
    byId.set(e.id, e);
  const entries = [...byId.values()].sort((a, b) => a.seq - b.seq);
  return { facts, changedFacts, entries, changedEntries };
}

/**
 * The keys of `facts` (rows new since the previous run) that an orphaned row the previous run's
 * snapshot already held shares: transactions mined again after a reorg. That row may have been
 * orphaned since the previous run or before it, and may sit above or below this run's block; rows
 * written since need no look, as only entries booked since (read anyway) can claim a row that only
 * they knew. The other row of a re-mined transaction is always orphaned (one key has one canonical
 * row), and orphaned rows are few, indexed apart (transfers_unconfirmed): a hash join of the new
 * keys with them, not a probe of the 10M-row identity index per new fact.
 */
async function loadReminedKeys(
  client: PoolClient,
  chainId: number,
  facts: readonly ChainFact[],
  factWatermark: number,
): Promise<Set<string>> {
  const remined = new Set<string>();
  if (facts.length === 0) return remined;
  const r = await client.query<{ tx_hash: string; position: string }>(
    `SELECT DISTINCT o.tx_hash, o.position
       FROM chain.facts o
       JOIN unnest($2::text[], $3::text[]) AS k(tx_hash, position)
         ON k.tx_hash = o.tx_hash AND k.position = o.position
      WHERE o.chain_id = $1 AND o.status = 'orphaned' AND o.id <= $4`,
    [chainId, facts.map((f) => f.txHash), facts.map((f) => f.position), factWatermark],
  );
  for (const row of r.rows) remined.add(factKey(row.tx_hash, row.position));
  return remined;
}

/**
 * Facts new since the previous run, in blocks it did not cover, or orphaned since; and every fact
 * above the common ancestor of a reorg detected since, because a reorg back revives orphaned rows
 * in place (same id, status changed) at heights the previous run had covered.
 */
async function loadChangedFacts(
  client: PoolClient,
  chainId: number,
  block: number,
  prev: PreviousRun,
  lookbackMs: number,
): Promise<ChainFact[]> {
  // UNION ALL and dedupe here: cheaper than Postgres hashing whole rows.
  const byId = new Map<string, FactRow>();
  // Rows above the previous watermark, in pages along the (chain_id, id) index: the row-value bound
  // and the order are what make the planner take it (with `chain_id = $1 AND id > $2` it took the
  // all-chain primary key, or a bitmap of the whole chain: 0.4-1.2 s at 1M facts). Rows above the
  // block are left out here, not in SQL, so no block index competes.
  let after = prev.factWatermark;
  for (;;) {
    const page = await client.query<FactRow>(
      `SELECT ${FACT_COLUMNS} FROM chain.facts
        WHERE (chain_id, id) > ($1, $2) AND chain_id <= $1
        ORDER BY chain_id, id LIMIT ${FACT_PAGE}`,
      [chainId, after],
    );
    for (const row of page.rows) if (Number(row.block_number) <= block) byId.set(row.id, row);
    if (page.rows.length < FACT_PAGE) break;
    after = Number(page.rows[page.rows.length - 1]!.id);
  }
  // Rows at heights the previous run did not cover (or above a reorg's common ancestor) that were
  // already there at its snapshot; the newer ones came with the pages above. The reorgs are those
  // recorded after the previous run's reorg watermark (by id: a reorg stamped long before its
  // snapshot may have committed after it), or by time for a run stored without one.
  const r = await client.query<FactRow>(
    `SELECT ${FACT_COLUMNS} FROM chain.facts
       WHERE chain_id = $1 AND block_number <= $2 AND id <= $6 AND block_number > LEAST($3::bigint, (
         SELECT min(common_ancestor) FROM chain.reorg_log
         WHERE chain_id = $1 AND (id > $7::bigint OR ($7::bigint IS NULL
           AND detected_at >= $4::timestamptz - make_interval(secs => $5::float8 / 1000)))))
     UNION ALL
     SELECT ${FACT_COLUMNS} FROM chain.facts
       WHERE chain_id = $1 AND status = 'orphaned' AND block_number <= $2
         AND orphaned_at >= $4::timestamptz - make_interval(secs => $5::float8 / 1000)
`,
    [
      chainId,
      block,
      prev.block,
      prev.snapshotAt,
      lookbackMs,
      prev.factWatermark,
      prev.reorgWatermark,
    ],
  );
  for (const row of r.rows) byId.set(row.id, row);
  return [...byId.values()].map((row) => toFact(chainId, row));
}

/**
 * Entries above the previous watermark, and any that filled one of its seq gaps: the posted
 * entries of the chain visible now that the run `prev` did not see.
 */
export async function loadChangedEntries(
  client: PoolClient,
  chainId: number,
  prev: Pick<PreviousRun, "entryWatermark" | "entryGaps">,
): Promise<LedgerEntry[]> {
  const r = await client.query<EntryRow>(`${ENTRY_SELECT} WHERE e.chain_id = $1 AND e.seq > $2`, [
    chainId,
    prev.entryWatermark,
  ]);
  const out = r.rows.map(toEntry);
  for (const { where, params } of seqRangeBatches("e.seq", prev.entryGaps, 2)) {
    const g = await client.query<EntryRow>(`${ENTRY_SELECT} WHERE e.chain_id = $1 AND ${where}`, [
      chainId,
      ...params,
    ]);
    for (const row of g.rows) out.push(toEntry(row));
  }
  return out;
}
