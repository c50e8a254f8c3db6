/**
 * A full run's matching in bounded memory. The matching key is (tx hash, position), so the key
 * space splits exactly by tx hash: facts are read in keyset pages ordered by (tx hash, position)
 * (the `chain.transfers (chain_id, tx_hash, position, block_hash)` index, read through the
 * `chain.facts` view), each page closes a tx-hash range,
 * and only that range's facts and the entries claiming a fact in it are in memory while the range
 * is matched. Entries without a chain reference are matched last, against no facts.
 *
 * What a range needs from outside it is small and read once: the reversing entries (a reversed
 * withdrawal post claims no fact, and a compensation is listed with the orphaned credit it
 * compensates) and the reorg holds.
 *
 * Every fact of the chain at or below the run's block passes through here once, so the stream also
 * sums what they explain of each deposit address's balance (expectedBalances.ts `factEffects`): a
 * full run rebuilds the running expected balances from this instead of a second pass over history.
 */
import type { PoolClient } from "../../foundation/db.js";
import type { TransferKind } from "../types.js";
import { factEffects } from "./expectedBalances.js";
import {
  ENTRY_SELECT,
  type EntryRow,
  FACT_COLUMNS,
  type FactRow,
  toEntry,
  toFact,
} from "./factEntryRows.js";
import { matchFactsToEntries } from "./match.js";
import type { Break, ChainFact, CustodyKind, LedgerEntry } from "./types.js";

/** Facts per range (the entries claiming them come along): what is in memory at once. */
export const DEFAULT_STREAM_PAGE = 50_000;

export type StreamMatchResult = {
  breaks: Break[];
  matched: number;
  factsExamined: number;
  entriesExamined: number;
  /** Entries left out because their fact is above the run's block (`lateIds`). */
  deferred: number;
  /** Ranges matched (for logs and tests). */
  ranges: number;
  /**
   * What the facts explain of every deposit address's balance at the run's block (`address|assetId`;
   * addresses without a fact absent): the history `loadFactBalances(…, "all")` sums in SQL.
   */
  factBalances: Map<string, bigint>;
};

/** A tx-hash range: lower bound (inclusive unless `after`), upper bound exclusive or open. */
type Range = { from: string; after: boolean; to: string | null } | { only: string };

export async function matchFullStream(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    /** Every custody address of the chain with its kind (the deposit ones' balances are summed). */
    custody: ReadonlyMap<string, CustodyKind>;
    reorgHolds: ReadonlyMap<string, "held" | "final">;
    /** Entries whose fact is above the block: not examined in this run. */
    lateIds: ReadonlySet<string>;
    chainBackedKinds?: ReadonlySet<TransferKind>;
    page?: number;
  },
): Promise<StreamMatchResult> {
  const { chainId, block } = args;
  const page = args.page ?? DEFAULT_STREAM_PAGE;
  const reversers = (
    await client.query<EntryRow>(
      `${ENTRY_SELECT} WHERE e.chain_id = $1 AND e.reverses_id IS NOT NULL`,
      [chainId],
    )
  ).rows.map(toEntry);
  const out: StreamMatchResult = {
    breaks: [],
    matched: 0,
    factsExamined: 0,
    entriesExamined: reversers.length,
    deferred: 0,
    ranges: 0,
    factBalances: new Map(),
  };
  const isDeposit = (address: string) => args.custody.get(address) === "deposit";
  const addBalance = (key: string, v: bigint) =>
    out.factBalances.set(key, (out.factBalances.get(key) ?? 0n) + v);
  const match = (facts: ChainFact[], rows: EntryRow[]) => {
    for (const f of facts) factEffects(f, isDeposit, addBalance);
    const entries: LedgerEntry[] = [];
    for (const row of rows) {
      if (args.lateIds.has(row.id)) out.deferred++;
      else entries.push(toEntry(row));
    }
    out.entriesExamined += entries.length;
    out.factsExamined += facts.length;
    // Reversers go to every range: they only act where the entry they reverse (or their key) is.
    for (const r of reversers) entries.push(r);
    entries.sort((a, b) => a.seq - b.seq);
    const result = matchFactsToEntries({
      facts,
      entries,
      custody: args.custody,
      reorgHolds: args.reorgHolds,
      ...(args.chainBackedKinds ? { chainBackedKinds: args.chainBackedKinds } : {}),
    });
    out.matched += result.matched;
    for (const b of result.breaks) out.breaks.push(b);
    out.ranges++;
  };

  let range: Range = { from: "", after: false, to: null };
  for (;;) {
    if ("only" in range) {
      const facts = await client.query<FactRow>(
        `SELECT ${FACT_COLUMNS} FROM chain.facts
         WHERE chain_id = $1 AND tx_hash = $2 AND block_number <= $3`,
        [chainId, range.only, block],
      );
      match(
        facts.rows.map((r) => toFact(chainId, r)),
        await entriesOf(client, chainId, range),
      );
      range = { from: range.only, after: true, to: null };
      continue;
    }
    const from: { from: string; after: boolean } = range;
    const rows: FactRow[] = (
      await client.query<FactRow>(
        `SELECT ${FACT_COLUMNS} FROM chain.facts
         WHERE chain_id = $1 AND tx_hash ${from.after ? ">" : ">="} $2 AND block_number <= $3
         ORDER BY tx_hash, position LIMIT ${page}`,
        [chainId, from.from, block],
      )
    ).rows;
    if (rows.length < page) {
      match(
        rows.map((x) => toFact(chainId, x)),
        await entriesOf(client, chainId, range),
      );
      break;
    }
    // The page's last tx hash may continue past it: the range ends before that hash.
    const last: string = rows[rows.length - 1]!.tx_hash;
    let end = rows.length;
    while (end > 0 && rows[end - 1]!.tx_hash === last) end--;
    if (end === 0) {
      // One transaction with a page of facts or more: a range of its own.
      range = { only: last };
      continue;
    }
    const closed: Range = { ...range, to: last };
    match(
      rows.slice(0, end).map((x) => toFact(chainId, x)),
      await entriesOf(client, chainId, closed),
    );
    range = { from: last, after: false, to: null };
  }

  // Entries with no chain reference on this chain (or none at all): matched against no facts. An
  // entry's own reference is always on its asset's chain (ledger `transfers_ref_on_asset_chain`),
  // so these are the entries without one whose hold has none on this chain either; the ledger's
  // `transfers_unreferenced` index holds exactly the posted entries without their own.
  const unreferenced = await client.query<EntryRow>(
    `${ENTRY_SELECT} WHERE e.chain_id = $1 AND e.reverses_id IS NULL AND e.own_chain_id IS NULL
       AND (e.hold_tx_hash IS NULL OR e.hold_chain_id IS DISTINCT FROM $1::bigint)`,
    [chainId],
  );
  match([], unreferenced.rows);
  // The reversers were counted once up front, not once per range.
  return out;
}

/**
 * Posted entries of the chain's assets (not reversers) whose chain reference (their own, or their
 * hold's for a post without one) is on this chain with a tx hash in the range.
 */
async function entriesOf(client: PoolClient, chainId: number, range: Range): Promise<EntryRow[]> {
  let own: string;
  let held: string;
  let params: unknown[];
  if ("only" in range) {
    own = "e.own_tx_hash = $2";
    held = "e.hold_tx_hash = $2";
    params = [chainId, range.only];
  } else {
    const op = range.after ? ">" : ">=";
    own = `e.own_tx_hash ${op} $2${range.to === null ? "" : " AND e.own_tx_hash < $3"}`;
    held = `e.hold_tx_hash ${op} $2${range.to === null ? "" : " AND e.hold_tx_hash < $3"}`;
    params = range.to === null ? [chainId, range.from] : [chainId, range.from, range.to];
  }
  const r = await client.query<EntryRow>(
    `${ENTRY_SELECT} WHERE e.chain_id = $1 AND e.reverses_id IS NULL
       AND e.own_chain_id = $1 AND ${own}
     UNION ALL
     ${ENTRY_SELECT} WHERE e.chain_id = $1 AND e.reverses_id IS NULL
       AND e.own_tx_hash IS NULL AND e.hold_chain_id = $1 AND ${held}`,
    params,
  );
  return r.rows;
}
