/**
 * Reading a run's inputs from Postgres: chain facts (`chain.transfers`), posted ledger entries
 * (`ledger.transfers`), custody addresses and ledger balances, all in the caller's transaction (a
 * REPEATABLE READ snapshot, so both sides are read at the same instant). Full runs read facts and
 * entries range by range while matching (stream.ts); incremental runs read what changed since the
 * previous run's watermarks, the items its breaks named, and everything sharing a chain reference
 * with those.
 */
import { amountFromDb } from "../../foundation/amounts.js";
import type { PoolClient } from "../../foundation/db.js";
import type { TransferKind } from "../types.js";
import { accountKey } from "./balances.js";
import { isUserAccount, type LiabilityUpdate, liabilitiesAt } from "./liabilities.js";
import { factKey } from "./match.js";
import type {
  ChainFact,
  CustodyKind,
  FactKind,
  FactStatus,
  LedgerEntry,
  ReorgHold,
} from "./types.js";

/**
 * Facts orphaned this long before the previous run's snapshot are re-read: the indexer's
 * transaction stamps `orphaned_at` when it starts, and may commit after our snapshot.
 */
export const DEFAULT_LOOKBACK_MS = 5 * 60_000;
/** Facts per page when an incremental run reads the rows above the previous fact watermark. */
const FACT_PAGE = 50_000;
/** A full run records the seq gaps among this many newest seq values. */
const GAP_SCAN_ROWS = 100_000;
/** A gap still unfilled after this long is a rolled-back transaction, not a slow one. */
const GAP_MAX_AGE_MS = 60 * 60_000;

/**
 * A range of `ledger.transfers.seq` values missing at a snapshot: taken by a transaction that had
 * not committed (or rolled back). Many writers share the identity, so a seq below the watermark
 * can become visible after the run; the next run re-reads exactly these ranges.
 * `[from, to, firstSeenMs]`.
 */
export type SeqGap = [number, number, number];

export type Watermarks = { fact: number; entry: number; snapshotAt: Date; entryGaps: SeqGap[] };

export type PreviousRun = {
  id: number;
  block: number;
  factWatermark: number;
  entryWatermark: number;
  snapshotAt: Date;
  /** Chain references and entry ids named by the previous run's breaks. */
  openKeys: { txHash: string; position: string }[];
  openEntryIds: string[];
  entryGaps: SeqGap[];
};

export type RunInputs = {
  facts: ChainFact[];
  /**
   * An incremental run's changed facts (`loadChangedFacts`: every fact in (previous block, block],
   * rows new since the previous run, rows orphaned since); null in a full run.
   */
  changedFacts: ChainFact[] | null;
  entries: LedgerEntry[];
  custody: Map<string, CustodyKind>;
  /** Posted ledger balances (debits − credits) at the run's block, by `accountKey`. */
  ledger: Map<string, bigint>;
  /** User liabilities (credits − debits over `user:*`) at the run's block, per asset. */
  liabilities: Map<string, bigint>;
  /** Entries left for a later run: their chain fact is above the run's block. */
  deferred: number;
  /** All entries whose fact is above the block (the next run re-examines them). */
  deferredEntries: { id: string; txHash: string; position: string }[];
  /** Ids of `deferredEntries` (a full run leaves them out while it streams). */
  lateIds: Set<string>;
  /** Every deposit credit of the chain under a reorg hold (pending or posted). */
  reorgHolds: ReorgHold[];
  watermarks: Watermarks;
  /** How the run moves the running user liabilities (liabilities.ts). */
  liabilityUpdate: LiabilityUpdate;
};

export type FactRow = {
  id: string;
  block_number: string;
  tx_hash: string;
  position: string;
  kind: FactKind;
  asset: string;
  from_address: string;
  to_address: string;
  amount: string;
  status: FactStatus;
};

export const FACT_COLUMNS =
  "id, block_number, tx_hash, position, kind, asset, from_address, to_address, amount, status";

export function toFact(chainId: number, r: FactRow): ChainFact {
  return {
    id: Number(r.id),
    blockNumber: Number(r.block_number),
    txHash: r.tx_hash,
    position: r.position,
    kind: r.kind,
    assetId: `${chainId}:${r.asset}`,
    from: r.from_address,
    to: r.to_address,
    amount: BigInt(r.amount),
    status: r.status,
  };
}

export type EntryRow = {
  seq: string;
  id: string;
  kind: TransferKind;
  asset_id: string;
  debit: string;
  credit: string;
  amount: string;
  tx_hash: string | null;
  position: string | null;
  reverses_id: string | null;
};

// A post carries the hold's accounts; its chain reference is its own or, failing that, the hold's.
export const ENTRY_SELECT = `
  SELECT t.seq, t.id, t.kind, t.asset_id, da.name AS debit, ca.name AS credit,
         t.posted_delta AS amount,
         COALESCE(t.tx_hash, p.tx_hash) AS tx_hash, COALESCE(t.position, p.position) AS position,
         t.reverses_id
  FROM ledger.transfers t
  JOIN ledger.assets s ON s.id = t.asset_id
  JOIN ledger.accounts da ON da.id = t.debit_account_id
  JOIN ledger.accounts ca ON ca.id = t.credit_account_id
  LEFT JOIN ledger.transfers p ON p.id = t.pending_id`;

export function toEntry(r: EntryRow): LedgerEntry {
  return {
    seq: Number(r.seq),
    id: r.id,
    kind: r.kind,
    assetId: r.asset_id,
    debit: r.debit,
    credit: r.credit,
    amount: BigInt(r.amount),
    txHash: r.tx_hash,
    position: r.position,
    reversesId: r.reverses_id,
  };
}

export async function readWatermarks(client: PoolClient, chainId: number): Promise<Watermarks> {
  // Facts per chain: one indexer writes a chain, so its ids become visible in order.
  const r = await client.query<{ fact: string; entry: string; now: Date }>(
    `SELECT (SELECT COALESCE(max(id), 0) FROM chain.transfers WHERE chain_id = $1) AS fact,
            (SELECT COALESCE(max(seq), 0) FROM ledger.transfers) AS entry,
            now() AS now`,
    [chainId],
  );
  const row = r.rows[0]!;
  return { fact: Number(row.fact), entry: Number(row.entry), snapshotAt: row.now, entryGaps: [] };
}

export async function loadCustody(
  client: PoolClient,
  chainId: number,
): Promise<Map<string, CustodyKind>> {
  const r = await client.query<{ address: string; kind: CustodyKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

/** The chain's hot and cold wallets (few): an incremental run reads these and only the deposit
 * addresses it needs (`loadCustodyOf`), not the whole set. */
export async function loadCustodyWallets(
  client: PoolClient,
  chainId: number,
): Promise<Map<string, CustodyKind>> {
  const r = await client.query<{ address: string; kind: CustodyKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND kind IN ('hot', 'cold')",
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

/** Which of `addresses` are custody addresses of the chain, and their kind. */
export async function loadCustodyOf(
  client: PoolClient,
  chainId: number,
  addresses: readonly string[],
): Promise<Map<string, CustodyKind>> {
  if (addresses.length === 0) return new Map();
  const r = await client.query<{ address: string; kind: CustodyKind }>(
    "SELECT address, kind FROM chain.custody_addresses WHERE chain_id = $1 AND address = ANY($2::text[])",
    [chainId, addresses],
  );
  return new Map(r.rows.map((row) => [row.address, row.kind]));
}

export async function countCustody(client: PoolClient, chainId: number): Promise<number> {
  const r = await client.query<{ n: string }>(
    "SELECT count(*) AS n FROM chain.custody_addresses WHERE chain_id = $1",
    [chainId],
  );
  return Number(r.rows[0]!.n);
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
      `SELECT ${FACT_COLUMNS} FROM chain.transfers
        WHERE (chain_id, id) > ($1, $2) AND chain_id <= $1
        ORDER BY chain_id, id LIMIT ${FACT_PAGE}`,
      [chainId, after],
    );
    for (const row of page.rows) if (Number(row.block_number) <= block) byId.set(row.id, row);
    if (page.rows.length < FACT_PAGE) break;
    after = Number(page.rows[page.rows.length - 1]!.id);
  }
  // Rows at heights the previous run did not cover (or above a reorg's common ancestor) that were
  // already there at its snapshot; the newer ones came with the pages above.
  const r = await client.query<FactRow>(
    `SELECT ${FACT_COLUMNS} FROM chain.transfers
       WHERE chain_id = $1 AND block_number <= $2 AND id <= $6 AND block_number > LEAST($3::bigint, (
         SELECT min(common_ancestor) FROM chain.reorgs
         WHERE chain_id = $1 AND detected_at >= $4::timestamptz - make_interval(secs => $5::float8 / 1000)))
     UNION ALL
     SELECT ${FACT_COLUMNS} FROM chain.transfers
       WHERE chain_id = $1 AND status = 'orphaned' AND block_number <= $2
         AND orphaned_at >= $4::timestamptz - make_interval(secs => $5::float8 / 1000)
`,
    [chainId, block, prev.block, prev.snapshotAt, lookbackMs, prev.factWatermark],
  );
  for (const row of r.rows) byId.set(row.id, row);
  return [...byId.values()].map((row) => toFact(chainId, row));
}

/** Entries above the previous watermark, and any that filled one of its seq gaps. */
async function loadChangedEntries(
  client: PoolClient,
  chainId: number,
  prev: PreviousRun,
): Promise<LedgerEntry[]> {
  const r = await client.query<EntryRow>(
    `${ENTRY_SELECT} WHERE s.chain_id = $1 AND t.posted_delta > 0 AND t.seq > $2`,
    [chainId, prev.entryWatermark],
  );
  const out = r.rows.map(toEntry);
  if (prev.entryGaps.length > 0) {
    const g = await client.query<EntryRow>(
      `${ENTRY_SELECT} JOIN unnest($2::bigint[], $3::bigint[]) AS g(a, b) ON t.seq BETWEEN g.a AND g.b
       WHERE s.chain_id = $1 AND t.posted_delta > 0`,
      [chainId, prev.entryGaps.map((x) => x[0]), prev.entryGaps.map((x) => x[1])],
    );
    for (const row of g.rows) out.push(toEntry(row));
  }
  return out;
}

/** Missing seq values in (after, upTo], as ranges. */
async function findSeqGaps(
  client: PoolClient,
  after: number,
  upTo: number,
  now: number,
): Promise<SeqGap[]> {
  if (upTo <= after) return [];
  const r = await client.query<{ a: string; b: string }>(
    `SELECT prev + 1 AS a, seq - 1 AS b FROM (
       SELECT seq, lag(seq, 1, $1::bigint) OVER (ORDER BY seq) AS prev
       FROM ledger.transfers WHERE seq > $1 AND seq <= $2) x
     WHERE seq > prev + 1`,
    [after, upTo],
  );
  return r.rows.map((x) => [Number(x.a), Number(x.b), now]);
}

/** The parts of earlier gaps still missing now (younger than GAP_MAX_AGE_MS). */
async function stillMissing(client: PoolClient, gaps: SeqGap[], now: number): Promise<SeqGap[]> {
  const live = gaps.filter((g) => now - g[2] < GAP_MAX_AGE_MS);
  if (live.length === 0) return [];
  const r = await client.query<{ seq: string }>(
    `SELECT t.seq FROM ledger.transfers t
     JOIN unnest($1::bigint[], $2::bigint[]) AS g(a, b) ON t.seq BETWEEN g.a AND g.b`,
    [live.map((g) => g[0]), live.map((g) => g[1])],
  );
  return splitGaps(
    live,
    r.rows.map((x) => Number(x.seq)),
  );
}

/** Remove the now-present values from the gaps, keeping each remainder's first-seen time. */
export function splitGaps(gaps: readonly SeqGap[], present: readonly number[]): SeqGap[] {
  const sorted = [...present].sort((a, b) => a - b);
  const out: SeqGap[] = [];
  for (const [from, to, seen] of gaps) {
    let start = from;
    for (const p of sorted) {
      if (p < start || p > to) continue;
      if (p > start) out.push([start, p - 1, seen]);
      start = p + 1;
    }
    if (start <= to) out.push([start, to, seen]);
  }
  return out;
}

type Key = { txHash: string; position: string };

async function loadFactsByKeys(
  client: PoolClient,
  chainId: number,
  block: number,
  keys: Key[],
): Promise<ChainFact[]> {
  if (keys.length === 0) return [];
  // tx_hash = ANY probes the (chain_id, tx_hash, position) index once per hash; the position is
  // checked here (a tx has few facts).
  const wanted = new Set(keys.map((k) => factKey(k.txHash, k.position)));
  const r = await client.query<FactRow>(
    `SELECT ${FACT_COLUMNS} FROM chain.transfers
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
  keys: Key[],
  ids: string[] = [],
  known: ReadonlyMap<string, LedgerEntry> = new Map(),
): Promise<LedgerEntry[]> {
  if (keys.length === 0 && ids.length === 0) return [];
  const wanted = new Set(keys.map((k) => factKey(k.txHash, k.position)));
  const hashes = [...new Set(keys.map((k) => k.txHash))];
  const claims = await client.query<{ id: string; tx_hash: string; position: string }>(
    `SELECT t.id, t.tx_hash, t.position FROM ledger.transfers t
      WHERE t.chain_id = $1 AND t.tx_hash = ANY($2::text[])
     UNION ALL
     SELECT t.id, h.tx_hash, h.position FROM ledger.transfers h
       JOIN ledger.transfers t ON t.pending_id = h.id
      WHERE h.chain_id = $1 AND h.tx_hash = ANY($2::text[])`,
    [chainId, hashes],
  );
  const claimIds = new Set(ids);
  for (const c of claims.rows) if (wanted.has(factKey(c.tx_hash, c.position))) claimIds.add(c.id);
  if (claimIds.size === 0) return [];
  const comp = await client.query<{ id: string }>(
    "SELECT id FROM ledger.transfers WHERE reverses_id = ANY($1::uuid[])",
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
      `${ENTRY_SELECT} WHERE t.id = ANY($2::uuid[]) AND s.chain_id = $1 AND t.posted_delta > 0`,
      [chainId, missing],
    );
    for (const row of r.rows) out.push(toEntry(row));
  }
  return out;
}

/** Entries whose chain fact is only above the run's block: they belong to a later run. */
async function loadLateEntries(
  client: PoolClient,
  chainId: number,
  block: number,
): Promise<LedgerEntry[]> {
  const late = await client.query<{ tx_hash: string; position: string }>(
    `SELECT DISTINCT f.tx_hash, f.position FROM chain.transfers f
     WHERE f.chain_id = $1 AND f.block_number > $2 AND f.status <> 'orphaned'
       AND NOT EXISTS (
         SELECT 1 FROM chain.transfers g
         WHERE g.chain_id = f.chain_id AND g.tx_hash = f.tx_hash AND g.position = f.position
           AND g.block_number <= $2 AND g.status <> 'orphaned')`,
    [chainId, block],
  );
  if (late.rows.length === 0) return [];
  const keys = late.rows.map((r) => ({ txHash: r.tx_hash, position: r.position }));
  return loadEntriesByKeys(client, chainId, keys);
}

/**
 * Posted ledger balances of the chain's custody, fee and suspense accounts (a few per asset, by
 * the partial index `accounts_not_user`), and the user liabilities at the snapshot (liabilities.ts),
 * both with pending reorg holds counted as posted.
 */
async function loadBalances(
  client: PoolClient,
  chainId: number,
  userLiabilities: ReadonlyMap<string, bigint>,
): Promise<{ ledger: Map<string, bigint>; liabilities: Map<string, bigint> }> {
  const r = await client.query<{ asset_id: string; name: string; net: string }>(
    `SELECT a.asset_id, a.name, a.debits_posted - a.credits_posted AS net
       FROM ledger.accounts a JOIN ledger.assets s ON s.id = a.asset_id
      WHERE s.chain_id = $1 AND a.kind <> 'user'`,
    [chainId],
  );
  const ledger = new Map<string, bigint>();
  const liabilities = new Map(userLiabilities);
  for (const row of r.rows) ledger.set(accountKey(row.asset_id, row.name), amountFromDb(row.net));
  // A pending reorg hold is money the chain no longer holds: count it as posted (custody:deposits
  // lower, the customer's liability lower), so a reorg the ledger has handled is not a difference.
  const held = await client.query<{ asset_id: string; debit_kind: string; amount: string }>(
    `SELECT t.asset_id, a.kind AS debit_kind, sum(h.amount)::text AS amount
       FROM ledger.holds h
       JOIN ledger.transfers t ON t.id = h.transfer_id
       JOIN ledger.accounts a ON a.id = h.debit_account_id
       JOIN ledger.assets s ON s.id = t.asset_id
      WHERE s.chain_id = $1 AND h.state = 'pending' AND t.kind = 'reorg_hold'
      GROUP BY t.asset_id, a.kind`,
    [chainId],
  );
  for (const row of held.rows) {
    const amount = amountFromDb(row.amount);
    const key = accountKey(row.asset_id, "custody:deposits");
    ledger.set(key, (ledger.get(key) ?? 0n) - amount);
    if (row.debit_kind === "user")
      liabilities.set(row.asset_id, (liabilities.get(row.asset_id) ?? 0n) - amount);
  }
  return { ledger, liabilities };
}

/** Deposit credits of the chain under a reorg hold (few: each one is a reorg of a credit). */
export async function loadReorgHolds(client: PoolClient, chainId: number): Promise<ReorgHold[]> {
  const r = await client.query<{
    credit_id: string;
    owner: string;
    asset: string;
    tx_hash: string;
    position: string;
    to_address: string;
    amount: string;
    state: "held" | "final";
    hold_amount: string | null;
    shortfall_amount: string | null;
    orphaned_block: string | null;
    updated_at: Date;
  }>(
    `SELECT credit_id::text, owner, asset, tx_hash, position, to_address, amount::text, state,
       hold_amount::text, shortfall_amount::text, orphaned_block::text, updated_at
     FROM ledger.deposit_credits WHERE chain_id = $1 AND state IN ('held', 'final')
     ORDER BY updated_at, credit_id`,
    [chainId],
  );
  return r.rows.map((x) => ({
    creditId: x.credit_id,
    owner: x.owner,
    assetId: `${chainId}:${x.asset}`,
    txHash: x.tx_hash,
    position: x.position,
    toAddress: x.to_address,
    amount: amountFromDb(x.amount),
    state: x.state,
    holdAmount: amountFromDb(x.hold_amount),
    shortfallAmount: amountFromDb(x.shortfall_amount),
    orphanedBlock: x.orphaned_block === null ? null : Number(x.orphaned_block),
    updatedAt: x.updated_at,
  }));
}

export async function loadRunInputs(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    previous: PreviousRun | null;
    lookbackMs?: number;
    /**
     * The chain's custody addresses read by the caller in the same snapshot: all of them for a
     * full run; for an incremental one those it needs (the caller adds the facts' ones after).
     */
    custody: Map<string, CustodyKind>;
  },
): Promise<RunInputs> {
  const { chainId, block, previous } = args;
  const lookbackMs = args.lookbackMs ?? DEFAULT_LOOKBACK_MS;
  const watermarks = await readWatermarks(client, chainId);
  const now = watermarks.snapshotAt.getTime();
  watermarks.entryGaps = previous
    ? [
        ...(await stillMissing(client, previous.entryGaps, now)),
        ...(await findSeqGaps(client, previous.entryWatermark, watermarks.entry, now)),
      ]
    : await findSeqGaps(
        client,
        Math.max(0, watermarks.entry - GAP_SCAN_ROWS),
        watermarks.entry,
        now,
      );
  const { custody } = args;
  let facts: ChainFact[] = [];
  let changedFacts: ChainFact[] | null = null;
  let entries: LedgerEntry[] = [];
  let changedEntries: LedgerEntry[] | null = null;
  // A full run matches in tx-hash ranges while it reads them (stream.ts): nothing loaded here.
  if (previous !== null) {
    changedFacts = await loadChangedFacts(client, chainId, block, previous, lookbackMs);
    changedEntries = await loadChangedEntries(client, chainId, previous);
    // Close over chain references: every fact and entry sharing a reference with something that
    // changed (or was open) is examined again, so exclusivity holds across runs.
    const keys = new Map<string, Key>();
    const addKey = (txHash: string | null, position: string | null) => {
      if (txHash !== null && position !== null)
        keys.set(factKey(txHash, position), { txHash, position });
    };
    // A new canonical row is the newest of its key (a tx re-included after a reorg is a new row),
    // so its key's facts are all in hand; an orphaned one's canonical copy may be an older row.
    // Only a row that is new since the previous run counts: old rows re-read for a reorg may have
    // claimants from long ago.
    const isNew = (f: ChainFact) => f.id > previous.factWatermark || f.blockNumber > previous.block;
    const canonicalKeys = new Set(
      changedFacts
        .filter((f) => f.status !== "orphaned" && isNew(f))
        .map((f) => factKey(f.txHash, f.position)),
    );
    // Entries claiming a new canonical fact are new themselves, or were deferred or broken in the
    // previous run (their fact was above its block or unknown), so they are open items: only the
    // keys of changed entries with older facts, of newly orphaned facts, and of open items need
    // their other claimants read.
    for (const f of changedFacts)
      if (f.status === "orphaned" || !isNew(f)) addKey(f.txHash, f.position);
    for (const e of changedEntries) addKey(e.txHash, e.position);
    for (const k of previous.openKeys) addKey(k.txHash, k.position);
    const lookupKeys = [...keys].filter(([k]) => !canonicalKeys.has(k)).map(([, v]) => v);
    const byFactId = new Map<number, ChainFact>();
    for (const f of changedFacts) byFactId.set(f.id, f);
    for (const f of await loadFactsByKeys(client, chainId, block, lookupKeys))
      byFactId.set(f.id, f);
    facts = [...byFactId.values()];
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
    entries = [...byId.values()].sort((a, b) => a.seq - b.seq);
  }
  const reorgHolds = await loadReorgHolds(client, chainId);
  // A credit under a reorg hold (and the posted hold) stands as booked at any block: the pending
  // hold already takes it out of the balances, a posted one nets it to zero.
  const underHold = new Set(reorgHolds.map((h) => h.creditId));
  const late = (await loadLateEntries(client, chainId, block)).filter(
    (e) => !underHold.has(e.id) && e.kind !== "reorg_hold",
  );
  const liabilityUpdate = await liabilitiesAt(client, { chainId, previous, changedEntries });
  // loadBalances works on its own copy of the totals: the update keeps them as of the snapshot.
  const { ledger, liabilities } = await loadBalances(client, chainId, liabilityUpdate.totals);
  let deferred = 0;
  const lateIds = new Set(late.map((e) => e.id));
  if (late.length > 0) {
    const before = entries.length;
    entries = entries.filter((e) => !lateIds.has(e.id));
    deferred = before - entries.length;
    // The ledger as it stood at the block: without the postings of facts above it.
    for (const e of late) {
      const add = (name: string, v: bigint) => {
        if (isUserAccount(name)) {
          liabilities.set(e.assetId, (liabilities.get(e.assetId) ?? 0n) + v);
        } else {
          const key = accountKey(e.assetId, name);
          ledger.set(key, (ledger.get(key) ?? 0n) + v);
        }
      };
      // Undo: a debit raised debits − credits, a credit lowered it (for users, the reverse).
      add(e.debit, isUserAccount(e.debit) ? e.amount : -e.amount);
      add(e.credit, isUserAccount(e.credit) ? -e.amount : e.amount);
    }
  }
  const deferredEntries = late
    .filter((e) => e.txHash !== null && e.position !== null)
    .map((e) => ({ id: e.id, txHash: e.txHash!, position: e.position! }));
  return {
    facts,
    changedFacts,
    entries,
    custody,
    ledger,
    liabilities,
    deferred,
    deferredEntries,
    lateIds,
    reorgHolds,
    watermarks,
    liabilityUpdate,
  };
}
