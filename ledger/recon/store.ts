/**
 * Run storage in schema `recon`: a run row (inputs, block, watermarks, balance checks, counts) and
 * one row per break. Breaks of the last completed run, and every break still open or acknowledged,
 * are the open items the next run re-examines.
 */
import { formatAmount } from "../../foundation/amounts.js";
import type { AuditHead } from "../../foundation/audit.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { type DepositBalanceMemory, storeDepositBalances } from "./balanceCache.js";
import type { BalanceCheck, OnchainBalance } from "./balances.js";
import { type BreakStateName, breakIdentities, trackBreakStates } from "./breakStates.js";
import { RunNotFoundError } from "./errors.js";
import {
  type ExpectedFactMemory,
  type ExpectedFactUpdate,
  storeExpectedFacts,
} from "./expectedBalances.js";
import { type LiabilityUpdate, storeLiabilities } from "./liabilities.js";
import { factKey } from "./match.js";
import type { JournalRecord, SeqGap } from "./seqGaps.js";
import type { Break, ChainFact, LedgerEntry, ReorgHold } from "./types.js";
import type { PreviousRun, Watermarks } from "./watermarks.js";

export type RunMode = "full" | "incremental";

/**
 * What a reconciler process carries of a chain's running tables from one run to the next, each
 * part valid while the table's state row names the run it stands at (balanceCache.ts,
 * expectedBalances.ts).
 */
export type ChainMemory = {
  deposits?: DepositBalanceMemory | undefined;
  expected?: ExpectedFactMemory | undefined;
};

export async function createRun(
  pool: Pool,
  args: {
    chainId: number;
    block: number;
    blockHash: string | null;
    mode: RunMode;
    previousRunId: number | null;
    inputs: Record<string, unknown>;
  },
): Promise<number> {
  const r = await pool.query<{ id: string }>(
    `INSERT INTO recon.runs (chain_id, block_number, block_hash, mode, previous_run_id, inputs)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
    [args.chainId, args.block, args.blockHash, args.mode, args.previousRunId, args.inputs],
  );
  return Number(r.rows[0]!.id);
}

/**
 * The newest completed run of the chain at or below `block`, with the items its breaks named and
 * those of every break of the chain still open or acknowledged, whichever run last found it.
 */
export async function findPreviousRun(
  pool: Pool,
  chainId: number,
  block: number,
): Promise<PreviousRun | null> {
  const r = await pool.query<{
    id: string;
    block_number: string;
    fact_watermark: string;
    entry_watermark: string;
    snapshot_at: Date;
    reorg_watermark: string | null;
    entry_gaps: SeqGap[];
    deferred_entries: [string, string, string][];
  }>(
    `SELECT id, block_number, fact_watermark, entry_watermark, snapshot_at, reorg_watermark,
       entry_gaps, deferred_entries FROM recon.runs
     WHERE chain_id = $1 AND status = 'completed' AND block_number <= $2
     ORDER BY id DESC LIMIT 1`,
    [chainId, block],
  );
  const row = r.rows[0];
  if (!row) return null;
  // Not only the previous run's breaks: a run resolves what it does not find (trackBreakStates),
  // so it must examine every unresolved break's items, also one found by a run it does not continue
  // from. The CLI's full run at the newest final block finds what no incremental run was shown (a
  // booking whose seq gap a run lost track of before it committed); the role's next run, its grace
  // period below that block, continues from the role's own run, and the run after from that one:
  // neither read the booking, and the second resolved the break on no evidence. Unresolved breaks
  // are few (one range of `break_states_chain`, each joined to its row of the run that last found it).
  const open = await pool.query<{
    tx_hash: string | null;
    position: string | null;
    entry_ids: string[];
  }>(
    `SELECT tx_hash, position, entry_ids FROM recon.breaks WHERE run_id = $1
     UNION ALL
     SELECT b.tx_hash, b.position, b.entry_ids FROM recon.break_states s
       JOIN recon.breaks b ON b.run_id = s.last_run_id AND b.identity = s.identity
      WHERE s.chain_id = $2 AND s.state IN ('open', 'acknowledged')`,
    [row.id, chainId],
  );
  const keys = new Map<string, PreviousRun["openKeys"][number]>();
  const openEntryIds = new Set<string>();
  for (const b of open.rows) {
    if (b.tx_hash !== null && b.position !== null)
      keys.set(factKey(b.tx_hash, b.position), { txHash: b.tx_hash, position: b.position });
    for (const id of b.entry_ids) openEntryIds.add(id);
  }
  for (const [id, txHash, position] of row.deferred_entries) {
    keys.set(factKey(txHash, position), { txHash, position });
    openEntryIds.add(id);
  }
  const openKeys = [...keys.values()];
  return {
    id: Number(row.id),
    block: Number(row.block_number),
    factWatermark: Number(row.fact_watermark),
    entryWatermark: Number(row.entry_watermark),
    snapshotAt: row.snapshot_at,
    reorgWatermark: row.reorg_watermark === null ? null : Number(row.reorg_watermark),
    openKeys,
    openEntryIds: [...openEntryIds],
    entryGaps: row.entry_gaps,
  };
}

/**
 * The seq record of the chain's newest completed run (at any block): where a full run continues
 * its seq gaps from. Null before the chain's first completed run.
 */
export async function findJournalRecord(
  pool: Pool,
  chainId: number,
): Promise<JournalRecord | null> {
  const r = await pool.query<{ entry_watermark: string; entry_gaps: SeqGap[] }>(
    `SELECT entry_watermark, entry_gaps FROM recon.runs
      WHERE chain_id = $1 AND status = 'completed' ORDER BY id DESC LIMIT 1`,
    [chainId],
  );
  const row = r.rows[0];
  return row ? { entryWatermark: Number(row.entry_watermark), entryGaps: row.entry_gaps } : null;
}

/**
 * Where a completed run stood in the ledger's journal: its entry seq watermark and seq gaps (what
 * it saw), and the entries it deferred because their fact is above its block.
 */
export type RunJournalPosition = {
  runId: number;
  chainId: number;
  block: number;
  status: "running" | "completed" | "failed";
  entryWatermark: number;
  entryGaps: SeqGap[];
  deferredEntryIds: string[];
};

export async function readRunJournalPosition(
  client: Pick<PoolClient, "query">,
  runId: number,
): Promise<RunJournalPosition> {
  const r = await client.query<{
    chain_id: string;
    block_number: string;
    status: RunJournalPosition["status"];
    entry_watermark: string;
    entry_gaps: SeqGap[];
    deferred_entries: [string, string, string][];
  }>(
    `SELECT chain_id, block_number, status, entry_watermark, entry_gaps, deferred_entries
       FROM recon.runs WHERE id = $1`,
    [runId],
  );
  const row = r.rows[0];
  if (!row) throw new RunNotFoundError(runId);
  return {
    runId,
    chainId: Number(row.chain_id),
    block: Number(row.block_number),
    status: row.status,
    entryWatermark: Number(row.entry_watermark),
    entryGaps: row.entry_gaps,
    deferredEntryIds: row.deferred_entries.map(([id]) => id),
  };
}

export function factJson(f: ChainFact) {
  return { ...f, amount: f.amount.toString() };
}
export function entryJson(e: LedgerEntry) {
  return { ...e, amount: e.amount.toString() };
}
export function holdJson(h: ReorgHold) {
  return {
    ...h,
    amount: h.amount.toString(),
    holdAmount: h.holdAmount.toString(),
    shortfallAmount: h.shortfallAmount.toString(),
    updatedAt: h.updatedAt.toISOString(),
  };
}
export function checkJson(c: BalanceCheck) {
  return {
    scope: c.scope,
    address: c.address,
    assetId: c.assetId,
    chain: c.chain.toString(),
    ledger: c.ledger.toString(),
    difference: c.difference.toString(),
    explained: c.explained.toString(),
    unexplained: c.unexplained.toString(),
  };
}

/** What a run found, for `completeRun` to store. */
export type RunResult = {
  watermarks: Watermarks;
  deferredEntries: { id: string; txHash: string; position: string }[];
  factsExamined: number;
  entriesExamined: number;
  matched: number;
  checks: BalanceCheck[];
  breaks: Break[];
  holds?: ReorgHold[];
  inputs: Record<string, unknown>;
  /** The audit log's head when the run completed (an anchor for `audit verify`). */
  auditHead?: AuditHead | null;
  /** On-chain balances the run read (deposit ones are kept for later runs: balanceCache.ts). */
  depositBalances?: { block: number; balances: readonly OnchainBalance[] };
};

/**
 * Completes run `runId` in one transaction, opened before the run's result is in: the running
 * tables that need no on-chain balance (the expected fact balances and the user liabilities, which
 * lock their state rows) are moved first, then `result` is awaited (so those writes overlap the
 * run's balance reads), then its breaks, deposit balances and run row are stored. A failure
 * anywhere, `result`'s included, rolls all of it back. Returns what `result` gave, with the breaks'
 * states and the memory moved along with the tables.
 */
export async function completeRun<R extends RunResult>(
  pool: Pool,
  runId: number,
  args: {
    chainId: number;
    /** How the run moves the running expected balances of deposit addresses (expectedBalances.ts). */
    expectedFacts?: ExpectedFactUpdate | undefined;
    /** How the run moves the running user liabilities (liabilities.ts). */
    liabilities?: LiabilityUpdate | undefined;
    /** The memory the run read with; moved along with the tables. */
    memory?: ChainMemory | undefined;
    /** What the run found; called once, after the early writes went out. */
    result: () => Promise<R>;
    /**
     * Called last, before the run is marked completed; what it throws rolls the whole completion
     * back (the run's lock was lost: another run of the chain may be writing).
     */
    beforeComplete?: () => void;
  },
): Promise<{ result: R; states: BreakStateName[]; alerting: number; memory: ChainMemory }> {
  const { chainId } = args;
  return withTransaction(
    pool,
    async (client) => {
      const memory: ChainMemory = { ...args.memory };
      if (args.expectedFacts)
        memory.expected = await storeExpectedFacts(client, {
          chainId,
          runId,
          update: args.expectedFacts,
          memory: memory.expected,
        });
      if (args.liabilities)
        await storeLiabilities(client, { chainId, runId, update: args.liabilities });
      const result = await args.result();
      const identities = breakIdentities(chainId, result.breaks);
      const states = await trackBreakStates(client, {
        runId,
        chainId,
        breaks: result.breaks,
        identities,
      });
      const alerting = states.filter((s) => s === "open").length;
      await storeBreaks(client, runId, result.breaks, identities, states);
      if (result.depositBalances)
        memory.deposits = await storeDepositBalances(client, {
          chainId,
          runId,
          ...result.depositBalances,
          memory: memory.deposits,
        });
      args.beforeComplete?.();
      await client.query(
        `UPDATE recon.runs SET status = 'completed', finished_at = now(), fact_watermark = $2,
           entry_watermark = $3, snapshot_at = $4, facts_examined = $5, entries_examined = $6,
           matched = $7, break_count = $8, balances = $9, inputs = inputs || $10::jsonb,
           entry_gaps = $11::jsonb, deferred_entries = $12::jsonb, holds = $13::jsonb,
           audit_head = $14::jsonb, alerting_count = $15, reorg_watermark = $16
         WHERE id = $1`,
        [
          runId,
          result.watermarks.fact,
          result.watermarks.entry,
          result.watermarks.snapshotAt,
          result.factsExamined,
          result.entriesExamined,
          result.matched,
          result.breaks.length,
          JSON.stringify(result.checks.map(checkJson)),
          JSON.stringify(result.inputs),
          JSON.stringify(result.watermarks.entryGaps),
          JSON.stringify(result.deferredEntries.map((d) => [d.id, d.txHash, d.position])),
          JSON.stringify((result.holds ?? []).map(holdJson)),
          result.auditHead ? JSON.stringify(result.auditHead) : null,
          alerting,
          result.watermarks.reorg,
        ],
      );
      return { result, states, alerting, memory };
    },
    // Not re-run: `result` runs once (it awaits the run's balance reads). The transaction sits idle
    // while those reads go on (a full run's, of every deposit address, for minutes at scale), so
    // the pool's idle-in-transaction timeout (foundation/db.ts) is lifted for it: the rows it
    // locks are recon's own, which only the next run of the chain waits for.
    { attempts: 1, settings: { idle_in_transaction_session_timeout: "0" } },
  );
}

async function storeBreaks(
  client: PoolClient,
  runId: number,
  breaks: readonly Break[],
  identities: readonly string[],
  states: readonly BreakStateName[],
): Promise<void> {
  const rows = breaks.map((b, n) => {
    const ref = refOf(b);
    return {
      n,
      identity: identities[n],
      state: states[n],
      type: b.type,
      asset_id: b.assetId,
      key: b.key,
      direction: b.direction ?? null,
      tx_hash: ref?.txHash ?? null,
      position: ref?.position ?? null,
      entry_ids: b.entries.map((e) => e.id),
      fact_ids: b.facts.map((f) => f.id),
      chain_amount: b.chainAmount.toString(),
      ledger_amount: b.ledgerAmount.toString(),
      difference: b.difference.toString(),
      action: b.action,
      items: { facts: b.facts.map(factJson), entries: b.entries.map(entryJson) },
    };
  });
  await client.query(
    `INSERT INTO recon.breaks (run_id, n, type, asset_id, key, direction, tx_hash, position,
       entry_ids, fact_ids, chain_amount, ledger_amount, difference, action, items, identity, state)
     SELECT $1, x.n, x.type, x.asset_id, x.key, x.direction, x.tx_hash, x.position,
       x.entry_ids, x.fact_ids, x.chain_amount, x.ledger_amount, x.difference, x.action, x.items,
       x.identity, x.state
     FROM jsonb_to_recordset($2::jsonb) AS x(n int, type text, asset_id text, key text,
       direction text, tx_hash text, position text, entry_ids uuid[], fact_ids bigint[],
       chain_amount numeric, ledger_amount numeric, difference numeric, action text, items jsonb,
       identity text, state text)`,
    [runId, JSON.stringify(rows)],
  );
}

/** The chain reference a later run re-examines for this break. */
function refOf(b: Break): { txHash: string; position: string } | null {
  const f = b.facts[0];
  if (f) return { txHash: f.txHash, position: f.position };
  const e = b.entries.find((x) => x.txHash !== null && x.position !== null);
  return e ? { txHash: e.txHash!, position: e.position! } : null;
}

/** The run stored failed with `error`'s message, after `why` when given (`why: message`). */
export async function failRun(
  pool: Pool,
  runId: number,
  error: unknown,
  why?: string,
): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  await pool.query(
    "UPDATE recon.runs SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1",
    [runId, why === undefined ? message : `${why}: ${message}`],
  );
}

export type StoredBreak = {
  n: number;
  type: string;
  assetId: string;
  key: string;
  direction: string | null;
  chainAmount: string;
  ledgerAmount: string;
  difference: string;
  action: string;
  facts: ReturnType<typeof factJson>[];
  entries: ReturnType<typeof entryJson>[];
  /** Stable across runs (breakStates.ts); null for runs stored before break states existed. */
  identity?: string | null;
  /** The state the break had when this run stored it (open = alerted). */
  state?: string | null;
  /** Where the break stands now (it may have been acknowledged or resolved since). */
  current?: {
    state: string;
    acknowledgedBy: string | null;
    acknowledgedReason: string | null;
    resolvedBy: string | null;
    resolvedReason: string | null;
    resolvedRef: string | null;
  } | null;
};

export type StoredRun = {
  id: number;
  chainId: number;
  block: number;
  blockHash: string | null;
  mode: RunMode;
  status: "running" | "completed" | "failed";
  previousRunId: number | null;
  factsExamined: number;
  entriesExamined: number;
  matched: number;
  breakCount: number;
  inputs: Record<string, unknown>;
  balances: ReturnType<typeof checkJson>[];
  /** Reorg holds the run saw (not breaks). */
  holds?: ReturnType<typeof holdJson>[];
  error: string | null;
  /** The audit log's head when the run completed (`audit verify` checks it is still there). */
  auditHead?: { seq: number; hash: string } | null;
  /** Breaks that alerted (open); the rest were acknowledged at the same difference. */
  alertingCount?: number;
  startedAt: string;
  finishedAt: string | null;
  breaks: StoredBreak[];
};

export async function readRun(pool: Pool, runId: number): Promise<StoredRun> {
  const r = await pool.query("SELECT * FROM recon.runs WHERE id = $1", [runId]);
  const row = r.rows[0];
  if (!row) throw new RunNotFoundError(runId);
  const b = await pool.query<{
    n: number;
    type: string;
    asset_id: string;
    key: string;
    direction: string | null;
    chain_amount: bigint;
    ledger_amount: bigint;
    difference: bigint;
    action: string;
    items: { facts?: StoredBreak["facts"]; entries?: StoredBreak["entries"] };
    identity: string | null;
    state: string | null;
    current_state: string | null;
    acknowledged_by: string | null;
    acknowledged_reason: string | null;
    resolved_by: string | null;
    resolved_reason: string | null;
    resolved_ref: string | null;
  }>(
    `SELECT b.n, b.type, b.asset_id, b.key, b.direction, b.chain_amount, b.ledger_amount,
       b.difference, b.action, b.items, b.identity, b.state, s.state AS current_state,
       s.acknowledged_by, s.acknowledged_reason, s.resolved_by, s.resolved_reason, s.resolved_ref
     FROM recon.breaks b LEFT JOIN recon.break_states s ON s.identity = b.identity
     WHERE b.run_id = $1 ORDER BY b.n`,
    [runId],
  );
  return {
    id: Number(row.id),
    chainId: Number(row.chain_id),
    block: Number(row.block_number),
    blockHash: row.block_hash,
    mode: row.mode,
    status: row.status,
    previousRunId: row.previous_run_id === null ? null : Number(row.previous_run_id),
    factsExamined: row.facts_examined,
    entriesExamined: row.entries_examined,
    matched: row.matched,
    breakCount: row.break_count,
    inputs: row.inputs,
    balances: row.balances,
    holds: row.holds ?? [],
    error: row.error,
    auditHead: row.audit_head ?? null,
    alertingCount: row.alerting_count,
    startedAt: (row.started_at as Date).toISOString(),
    finishedAt: row.finished_at ? (row.finished_at as Date).toISOString() : null,
    breaks: b.rows.map((x) => ({
      n: x.n,
      type: x.type,
      assetId: x.asset_id,
      key: x.key,
      direction: x.direction,
      chainAmount: formatAmount(x.chain_amount),
      ledgerAmount: formatAmount(x.ledger_amount),
      difference: formatAmount(x.difference),
      action: x.action,
      facts: x.items.facts ?? [],
      entries: x.items.entries ?? [],
      identity: x.identity,
      state: x.state,
      current: x.current_state
        ? {
            state: x.current_state,
            acknowledgedBy: x.acknowledged_by,
            acknowledgedReason: x.acknowledged_reason,
            resolvedBy: x.resolved_by,
            resolvedReason: x.resolved_reason,
            resolvedRef: x.resolved_ref,
          }
        : null,
    })),
  };
}

/** Newest runs first (for the CLI and the API's run list). */
export async function listRuns(
  pool: Pool,
  /** maxBlock: only runs at or below this block (attestation's final block). */
  args: { chainId?: number; status?: StoredRun["status"]; limit?: number; maxBlock?: number } = {},
): Promise<
  {
    id: number;
    chainId: number;
    block: number;
    status: string;
    breakCount: number;
    startedAt: string;
  }[]
> {
  const r = await pool.query(
    `SELECT id, chain_id, block_number, status, break_count, started_at FROM recon.runs
     WHERE ($1::bigint IS NULL OR chain_id = $1) AND ($3::bigint IS NULL OR block_number <= $3)
       AND ($4::text IS NULL OR status = $4)
     ORDER BY id DESC LIMIT $2`,
    [args.chainId ?? null, args.limit ?? 20, args.maxBlock ?? null, args.status ?? null],
  );
  return r.rows.map((x) => ({
    id: Number(x.id),
    chainId: Number(x.chain_id),
    block: Number(x.block_number),
    status: x.status,
    breakCount: x.break_count,
    startedAt: (x.started_at as Date).toISOString(),
  }));
}

/** The audit heads completed runs recorded (newest per distinct head), as `audit verify` anchors. */
export async function listAuditAnchors(
  pool: Pool,
): Promise<{ seq: number; hash: string; source: string }[]> {
  const r = await pool.query<{ id: string; seq: string; hash: string }>(
    `SELECT DISTINCT ON ((audit_head->>'seq')::bigint) id::text, audit_head->>'seq' AS seq,
            audit_head->>'hash' AS hash
       FROM recon.runs WHERE status = 'completed' AND audit_head IS NOT NULL
      ORDER BY (audit_head->>'seq')::bigint DESC, id DESC LIMIT 1000`,
  );
  return r.rows.map((x) => ({
    seq: Number(x.seq),
    hash: x.hash,
    source: `reconciliation run ${x.id}`,
  }));
}
