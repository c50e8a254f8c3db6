/**
 * Chain halts: a reorg that would orphan a block at or below the finalized height stops the chain's
 * ingestion instead (nothing orphaned). A halt stays open until an operator resumes the chain with
 * `custody-node chains resume`; each open and resume is also written to the audit log.
 */
import type { QueryResult, QueryResultRow } from "pg";
import type { PoolClient } from "../foundation/db.js";

export type ChainHalt = {
  id: string;
  chainId: number;
  haltedAt: Date;
  reason: string;
  details: Record<string, unknown>;
  resumedAt: Date | null;
  resumedBy: string | null;
  resumeReason: string | null;
};

/** What the reads need: a pool, a client, or any connection that runs SQL (the signer's lease). */
type Queryable = {
  query: <R extends QueryResultRow>(sql: string, params?: unknown[]) => Promise<QueryResult<R>>;
};

type HaltRow = {
  id: string;
  chain_id: string;
  halted_at: Date;
  reason: string;
  details: Record<string, unknown>;
  resumed_at: Date | null;
  resumed_by: string | null;
  resume_reason: string | null;
};

function fromRow(r: HaltRow): ChainHalt {
  return {
    id: r.id,
    chainId: Number(r.chain_id),
    haltedAt: r.halted_at,
    reason: r.reason,
    details: r.details,
    resumedAt: r.resumed_at,
    resumedBy: r.resumed_by,
    resumeReason: r.resume_reason,
  };
}

/** Open halts (every chain), or all halts with `includeResumed`, oldest first. */
export async function readHalts(
  db: Queryable,
  options: { includeResumed?: boolean; chainId?: number } = {},
): Promise<ChainHalt[]> {
  const { rows } = await db.query<HaltRow>(
    `SELECT * FROM chain.halts
      WHERE ($1::boolean OR resumed_at IS NULL) AND ($2::bigint IS NULL OR chain_id = $2)
      ORDER BY id`,
    [options.includeResumed ?? false, options.chainId ?? null],
  );
  return rows.map(fromRow);
}

/** The chain's open halt, if any. */
export async function openHalt(db: Queryable, chainId: number): Promise<ChainHalt | null> {
  return (await readHalts(db, { chainId }))[0] ?? null;
}

/** Record a halt (idempotent: an open halt for the chain is returned unchanged). */
export async function insertHalt(
  client: PoolClient,
  halt: { chainId: number; reason: string; details: Record<string, unknown> },
): Promise<{ halt: ChainHalt; created: boolean }> {
  const { rows } = await client.query<HaltRow>(
    `INSERT INTO chain.halts (chain_id, reason, details) VALUES ($1, $2, $3)
     ON CONFLICT (chain_id) WHERE resumed_at IS NULL DO NOTHING
     RETURNING *`,
    [halt.chainId, halt.reason, halt.details],
  );
  if (rows[0]) return { halt: fromRow(rows[0]), created: true };
  const existing = await openHalt(client, halt.chainId);
  if (!existing) throw new Error(`chain ${halt.chainId}: halt vanished while recording it`);
  return { halt: existing, created: false };
}

/** Close the chain's open halt; returns it, or null when the chain was not halted. */
export async function closeHalt(
  client: PoolClient,
  chainId: number,
  by: { resumedBy: string; reason: string },
): Promise<ChainHalt | null> {
  const { rows } = await client.query<HaltRow>(
    `UPDATE chain.halts SET resumed_at = now(), resumed_by = $2, resume_reason = $3
      WHERE chain_id = $1 AND resumed_at IS NULL
      RETURNING *`,
    [chainId, by.resumedBy, by.reason],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}
