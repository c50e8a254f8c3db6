/**
 * Breaks worked to closure: open → acknowledged (who, why) → resolved (linked to what fixed it).
 * A break's identity is stable across runs (type, chain, asset, subject key), so an operator's
 * acknowledgement survives re-runs: the reconciler does not alert on an acknowledged break while
 * its difference is the one the operator saw, reopens it when the difference changes or a resolved
 * break is found again, and resolves what a completed run no longer finds.
 */
import { formatAmount } from "../../foundation/amounts.js";
import { appendAudit } from "../../foundation/audit.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import {
  BreakFixOrphanedError,
  BreakFixUnknownError,
  BreakInputError,
  BreakNotFoundError,
  BreakStateError,
} from "./errors.js";
import type { Break } from "./types.js";

export const BREAK_STATES = ["open", "acknowledged", "resolved"] as const;
export type BreakStateName = (typeof BREAK_STATES)[number];

export function breakIdentity(chainId: number, b: Pick<Break, "type" | "assetId" | "key">): string {
  return `${b.type}|${chainId}|${b.assetId}|${b.key}`;
}

/** Identities of a run's breaks; a second break with the same identity in one run gets `#2`, … */
export function breakIdentities(chainId: number, breaks: readonly Break[]): string[] {
  const seen = new Map<string, number>();
  return breaks.map((b) => {
    const base = breakIdentity(chainId, b);
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}#${n}`;
  });
}

/** The state each break of a completing run takes (and the resolution of breaks it no longer finds). */
export async function trackBreakStates(
  client: PoolClient,
  args: { runId: number; chainId: number; breaks: readonly Break[]; identities: readonly string[] },
): Promise<BreakStateName[]> {
  const { runId, chainId, breaks, identities } = args;
  // One run of a chain at a time updates its states (the role and the CLI run under the chain's
  // lock, runLock.ts; a caller outside it, such as the demo's run, may overlap them).
  await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
    `recon.break_states:${chainId}`,
  ]);
  // `above`: the break was last found by a run at a higher block than this one's.
  const existing = await client.query<{
    identity: string;
    state: BreakStateName;
    acknowledged_difference: bigint | null;
    above: boolean;
  }>(
    `SELECT s.identity, s.state, s.acknowledged_difference,
            COALESCE(last.block_number > this.block_number, false) AS above
       FROM recon.break_states s
       LEFT JOIN recon.runs last ON last.id = s.last_run_id
       LEFT JOIN recon.runs this ON this.id = $2
      WHERE s.identity = ANY($1::text[])`,
    [identities, runId],
  );
  const byId = new Map(existing.rows.map((r) => [r.identity, r]));
  // A break an open or acknowledged state already stands for at a higher block: what this run
  // found at its lower block (the role's, its grace period behind a CLI run; `--block`) is older
  // than what the state says, whatever its difference. It keeps its state, difference and run
  // (reopening it paged for a difference the operator had seen superseded, and dropped the
  // acknowledgement for good); the next run at or above that block judges it again.
  const superseded = (prior: (typeof existing.rows)[number] | undefined) =>
    prior?.above === true && prior.state !== "resolved";
  const rows = breaks.map((b, i) => {
    const prior = byId.get(identities[i]!);
    const state: BreakStateName = superseded(prior)
      ? prior!.state
      : prior?.state === "acknowledged" && prior.acknowledged_difference === b.difference
        ? "acknowledged"
        : "open";
    return {
      keep: superseded(prior),
      identity: identities[i]!,
      type: b.type,
      asset_id: b.assetId,
      key: b.key,
      state,
      // JSON for jsonb_to_recordset: the decimal string, read back as numeric
      difference: formatAmount(b.difference),
    };
  });
  await client.query(
    `INSERT INTO recon.break_states AS s (identity, chain_id, type, asset_id, key, state,
       first_run_id, last_run_id, last_difference)
     SELECT x.identity, $2, x.type, x.asset_id, x.key, x.state, $1, $1, x.difference
       FROM jsonb_to_recordset($3::jsonb)
         AS x(identity text, type text, asset_id text, key text, state text, difference numeric)
     ON CONFLICT (identity) DO UPDATE SET
       state = EXCLUDED.state, last_run_id = EXCLUDED.last_run_id,
       last_difference = EXCLUDED.last_difference, updated_at = now(),
       -- a break found again after it was resolved starts over
       resolved_by = CASE WHEN s.state = 'resolved' THEN NULL ELSE s.resolved_by END,
       resolved_reason = CASE WHEN s.state = 'resolved' THEN NULL ELSE s.resolved_reason END,
       resolved_ref = CASE WHEN s.state = 'resolved' THEN NULL ELSE s.resolved_ref END,
       resolved_at = CASE WHEN s.state = 'resolved' THEN NULL ELSE s.resolved_at END`,
    [runId, chainId, JSON.stringify(rows.filter((r) => !r.keep).map(({ keep, ...r }) => r))],
  );
  // What this completed run no longer finds is resolved: the run is the evidence, having examined
  // the items of every unresolved break (store.ts findPreviousRun; inflows.ts for inflow breaks'
  // addresses), whichever run found it. Only of breaks last found at or below its block: a run at
  // a lower block (the role's, its grace period behind a CLI run; `--block`) cannot see the facts
  // and balances above it, and not finding a break there is no evidence it was fixed (resolving it
  // dropped its acknowledgement: the next run paged).
  await client.query(
    `UPDATE recon.break_states s SET state = 'resolved', resolved_by = 'reconciler',
       resolved_reason = 'not found by run ' || $1::text, resolved_ref = 'run:' || $1::text,
       resolved_at = now(), updated_at = now()
     FROM recon.runs last, recon.runs this
     WHERE s.chain_id = $2 AND s.state <> 'resolved' AND NOT (s.identity = ANY($3::text[]))
       AND last.id = s.last_run_id AND this.id = $1 AND last.block_number <= this.block_number`,
    [runId, chainId, identities],
  );
  return rows.map((r) => r.state);
}

/** A break's state as the CLI and the API show it: differences as decimal strings (JSON). */
export type BreakState = {
  identity: string;
  chainId: number;
  type: string;
  assetId: string;
  key: string;
  state: BreakStateName;
  firstRunId: number;
  lastRunId: number;
  lastDifference: string;
  acknowledgedBy: string | null;
  acknowledgedReason: string | null;
  acknowledgedAt: string | null;
  acknowledgedDifference: string | null;
  resolvedBy: string | null;
  resolvedReason: string | null;
  resolvedRef: string | null;
  resolvedAt: string | null;
  /** `<run id>:<n>` of the break in its latest run (what reports print). */
  latestBreakId: string | null;
  action: string | null;
};

type StateRow = {
  identity: string;
  chain_id: string;
  type: string;
  asset_id: string;
  key: string;
  state: BreakStateName;
  first_run_id: string;
  last_run_id: string;
  last_difference: bigint;
  acknowledged_by: string | null;
  acknowledged_reason: string | null;
  acknowledged_at: Date | null;
  acknowledged_difference: bigint | null;
  resolved_by: string | null;
  resolved_reason: string | null;
  resolved_ref: string | null;
  resolved_at: Date | null;
  n: number | null;
  action: string | null;
};

const STATE_SELECT = `
  SELECT s.identity, s.chain_id::text, s.type, s.asset_id, s.key, s.state, s.first_run_id::text,
         s.last_run_id::text, s.last_difference, s.acknowledged_by, s.acknowledged_reason,
         s.acknowledged_at, s.acknowledged_difference, s.resolved_by, s.resolved_reason,
         s.resolved_ref, s.resolved_at, b.n, b.action
    FROM recon.break_states s
    LEFT JOIN recon.breaks b ON b.run_id = s.last_run_id AND b.identity = s.identity`;

function toState(r: StateRow): BreakState {
  return {
    identity: r.identity,
    chainId: Number(r.chain_id),
    type: r.type,
    assetId: r.asset_id,
    key: r.key,
    state: r.state,
    firstRunId: Number(r.first_run_id),
    lastRunId: Number(r.last_run_id),
    lastDifference: formatAmount(r.last_difference),
    acknowledgedBy: r.acknowledged_by,
    acknowledgedReason: r.acknowledged_reason,
    acknowledgedAt: r.acknowledged_at?.toISOString() ?? null,
    acknowledgedDifference:
      r.acknowledged_difference === null ? null : formatAmount(r.acknowledged_difference),
    resolvedBy: r.resolved_by,
    resolvedReason: r.resolved_reason,
    resolvedRef: r.resolved_ref,
    resolvedAt: r.resolved_at?.toISOString() ?? null,
    latestBreakId: r.n === null ? null : `${r.last_run_id}:${r.n}`,
    action: r.action,
  };
}

/**
 * Breaks newest first: by the run that first found them, then identity (both never change), so a
 * page goes on after the last identity of the previous one (`after`) however often runs see the
 * same breaks again meanwhile (each run touches every open break of its chain: `updated_at` is no
 * order to page by).
 */
export async function listBreakStates(
  db: Pool | PoolClient,
  filter: {
    chainId?: number;
    states?: readonly BreakStateName[];
    /** The last identity of the previous page. */
    after?: string;
    limit?: number;
  } = {},
): Promise<BreakState[]> {
  const r = await db.query<StateRow>(
    `${STATE_SELECT}
     WHERE ($1::bigint IS NULL OR s.chain_id = $1) AND s.state = ANY($2::text[])
       AND ($4::text IS NULL OR (s.first_run_id, s.identity) <
            (SELECT first_run_id, identity FROM recon.break_states WHERE identity = $4))
     ORDER BY s.first_run_id DESC, s.identity DESC LIMIT $3`,
    [
      filter.chainId ?? null,
      filter.states ?? ["open", "acknowledged"],
      filter.limit ?? 200,
      filter.after ?? null,
    ],
  );
  return r.rows.map(toState);
}

/** States of the given identities (for reports). */
export async function breakStatesOf(
  db: Pool | PoolClient,
  identities: readonly string[],
): Promise<Map<string, BreakState>> {
  if (identities.length === 0) return new Map();
  const r = await db.query<StateRow>(`${STATE_SELECT} WHERE s.identity = ANY($1::text[])`, [
    identities,
  ]);
  return new Map(r.rows.map((x) => [x.identity, toState(x)]));
}

/** Breaks not resolved, counted by chain, state (open or acknowledged) and type. */
export type UnresolvedBreakCount = {
  chainId: number;
  state: "open" | "acknowledged";
  type: string;
  count: number;
};

/**
 * The unresolved breaks of the given chains, counted (the break gauges' read at a scrape). One
 * range of `break_states_chain` per chain and state: resolved states (every break ever found) are
 * not read.
 */
export async function countUnresolvedBreaks(
  db: Pool | PoolClient,
  chainIds: readonly number[],
): Promise<UnresolvedBreakCount[]> {
  const r = await db.query<{
    chain_id: string;
    state: "open" | "acknowledged";
    type: string;
    n: number;
  }>(
    `SELECT chain_id::text, state, type, count(*)::int AS n FROM recon.break_states
      WHERE chain_id = ANY($1::bigint[]) AND state IN ('open', 'acknowledged')
      GROUP BY chain_id, state, type`,
    [chainIds],
  );
  return r.rows.map((x) => ({
    chainId: Number(x.chain_id),
    state: x.state,
    type: x.type,
    count: x.n,
  }));
}

/**
 * A break by its identity or by `<run id>:<n>` (as reports print), locked for update; with the
 * latter, `seen` is the difference that run's report showed.
 */
async function lockBreak(
  client: PoolClient,
  ref: string,
): Promise<StateRow & { seen?: { runId: string; difference: bigint } }> {
  let identity = ref.trim();
  let seen: { runId: string; difference: bigint } | undefined;
  // Bounded so a long number is "not found", never a Postgres overflow (bigint run id, int n).
  const m = /^([0-9]{1,15}):([0-9]{1,9})$/.exec(identity);
  if (m) {
    const b = await client.query<{ identity: string | null; difference: bigint }>(
      "SELECT identity, difference FROM recon.breaks WHERE run_id = $1 AND n = $2",
      [m[1], m[2]],
    );
    const found = b.rows[0]?.identity;
    if (!found) throw new BreakNotFoundError(ref);
    identity = found;
    seen = { runId: m[1]!, difference: b.rows[0]!.difference };
  }
  const r = await client.query<StateRow>(`${STATE_SELECT} WHERE s.identity = $1 FOR UPDATE OF s`, [
    identity,
  ]);
  const row = r.rows[0];
  if (!row) throw new BreakNotFoundError(ref);
  return seen ? { ...row, seen } : row;
}

/**
 * Named as a report printed it, the operator saw that run's difference. A later run that found
 * another one (more money missing, or less) has not been looked at: acknowledging or resolving it
 * silently would keep that run's break from alerting.
 */
function refuseChangedSince(ref: string, row: Awaited<ReturnType<typeof lockBreak>>): void {
  if (row.seen && row.seen.difference !== row.last_difference)
    throw new BreakStateError(
      ref,
      `run ${row.seen.runId} found a difference of ${formatAmount(row.seen.difference)}, the latest run ${row.last_run_id} found ${formatAmount(row.last_difference)}: look at that run's break`,
    );
}

function requireText(ref: string, what: string, value: string): string {
  const v = value.trim();
  if (v === "" || v.includes("\u0000"))
    throw new BreakInputError(ref, what, "must not be empty or contain a NUL character");
  return v;
}

/** open → acknowledged: the operator looked at it (who, why). Repeating it changes nothing. */
export async function acknowledgeBreak(
  pool: Pool,
  args: { ref: string; by: string; reason: string },
): Promise<BreakState> {
  return withTransaction(pool, (client) => acknowledgeBreakIn(client, args));
}

/**
 * acknowledgeBreak in the caller's transaction: the API records the request it answers beside it,
 * so a retry of that request is answered from the record, not decided again on what a later run
 * found (api/routes/recon.ts).
 */
export async function acknowledgeBreakIn(
  client: PoolClient,
  args: { ref: string; by: string; reason: string },
): Promise<BreakState> {
  const by = requireText(args.ref, "by", args.by);
  const reason = requireText(args.ref, "reason", args.reason);
  const row = await lockBreak(client, args.ref);
  if (row.state === "resolved")
    throw new BreakStateError(
      args.ref,
      "it is resolved (a later run reopens it if it is found again)",
    );
  refuseChangedSince(args.ref, row);
  if (row.state === "acknowledged" && row.acknowledged_difference === row.last_difference)
    return toState(row);
  await client.query(
    `UPDATE recon.break_states SET state = 'acknowledged', acknowledged_by = $2,
       acknowledged_reason = $3, acknowledged_at = now(), acknowledged_difference = last_difference,
       updated_at = now()
     WHERE identity = $1`,
    [row.identity, by, reason],
  );
  await appendAudit(client, {
    actor: by,
    action: "recon.break.acknowledged",
    entityType: "recon_break",
    entityId: row.identity,
    details: {
      reason,
      difference: formatAmount(row.last_difference),
      run_id: Number(row.last_run_id),
    },
  });
  return toState(
    (await client.query<StateRow>(`${STATE_SELECT} WHERE s.identity = $1`, [row.identity]))
      .rows[0]!,
  );
}

/**
 * → resolved, linked to what fixed it: a ledger transfer id (UUID), a chain fact
 * `<tx hash>:<position>`, or a transfer name. A later run that still finds the break reopens it.
 */
export async function resolveBreak(
  pool: Pool,
  args: { ref: string; by: string; reason: string; fixedBy: string },
): Promise<BreakState> {
  return withTransaction(pool, (client) => resolveBreakIn(client, args));
}

/** resolveBreak in the caller's transaction (as acknowledgeBreakIn). */
export async function resolveBreakIn(
  client: PoolClient,
  args: { ref: string; by: string; reason: string; fixedBy: string },
): Promise<BreakState> {
  const by = requireText(args.ref, "by", args.by);
  const reason = requireText(args.ref, "reason", args.reason);
  const fixedBy = requireText(args.ref, "fixedBy", args.fixedBy);
  const row = await lockBreak(client, args.ref);
  if (row.state === "resolved") return toState(row);
  refuseChangedSince(args.ref, row);
  const link = await checkFix(client, Number(row.chain_id), args.ref, fixedBy);
  if (!link) throw new BreakFixUnknownError(args.ref, fixedBy, Number(row.chain_id));
  await client.query(
    `UPDATE recon.break_states SET state = 'resolved', resolved_by = $2, resolved_reason = $3,
       resolved_ref = $4, resolved_at = now(), updated_at = now()
     WHERE identity = $1`,
    [row.identity, by, reason, link],
  );
  await appendAudit(client, {
    actor: by,
    action: "recon.break.resolved",
    entityType: "recon_break",
    entityId: row.identity,
    details: { reason, fixed_by: link, difference: formatAmount(row.last_difference) },
  });
  return toState(
    (await client.query<StateRow>(`${STATE_SELECT} WHERE s.identity = $1`, [row.identity]))
      .rows[0]!,
  );
}

/**
 * The fix must exist: a transfer (by id) or a fact of the break's chain (`<tx>:<position>`) still
 * on the canonical chain (an orphaned-only fact throws BreakFixOrphanedError).
 */
async function checkFix(
  client: PoolClient,
  chainId: number,
  breakRef: string,
  ref: string,
): Promise<string | null> {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref)) {
    const t = await client.query("SELECT 1 FROM ledger.journal WHERE id = $1", [ref]);
    return t.rows.length > 0 ? `transfer:${ref.toLowerCase()}` : null;
  }
  const m = /^(0x[0-9a-fA-F]{64}):([a-z0-9:.]+)$/.exec(ref);
  if (m) {
    // chain.facts keeps the rows a reorg orphaned: a fact fixes a break only while one of its rows
    // is in a canonical block (seen or confirmed), not because it was once seen.
    const f = await client.query<{ canonical: boolean | null }>(
      `SELECT bool_or(status <> 'orphaned') AS canonical FROM chain.facts
        WHERE chain_id = $1 AND tx_hash = $2 AND position = $3`,
      [chainId, m[1]!.toLowerCase(), m[2]],
    );
    const canonical = f.rows[0]?.canonical ?? null;
    if (canonical === null) return null;
    if (!canonical) throw new BreakFixOrphanedError(breakRef, ref, chainId);
    return `fact:${m[1]!.toLowerCase()}:${m[2]}`;
  }
  return null;
}
