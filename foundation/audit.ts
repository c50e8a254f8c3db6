/**
 * The append-only audit log (who, what, when): the table audit.audit_log, in the `audit` schema that
 * foundation owns (foundation/migrations/0001_audit.sql; the table moved there from api's schema in
 * api/migrations/0008_audit_log_to_audit.sql). Writers call `appendAudit` inside the transaction that
 * makes the change, so the change and its record commit together; the table refuses UPDATE/DELETE.
 * Every read of the log goes through this file (`listAudit`, `readAuditHead`, `verifyAuditChain`).
 */
import { createHash } from "node:crypto";
import type { Pool, PoolClient } from "./db.js";

export type AuditEntry = {
  id: string;
  at: Date;
  actor: string;
  action: string;
  entityType: string;
  entityId: string;
  details: Record<string, unknown>;
};

export async function appendAudit(
  client: Pool | PoolClient,
  entry: {
    actor: string;
    action: string;
    entityType: string;
    entityId: string;
    details?: Record<string, unknown>;
  },
): Promise<void> {
  await client.query(
    `INSERT INTO audit.audit_log (actor, action, entity_type, entity_id, details)
     VALUES ($1, $2, $3, $4, $5)`,
    [entry.actor, entry.action, entry.entityType, entry.entityId, entry.details ?? {}],
  );
}

export async function listAudit(
  db: Pool | PoolClient,
  filter: {
    entityType?: string;
    entityId?: string;
    /** Only actions starting with this text (`treasury.`); `%` and `_` in it are literal. */
    actionPrefix?: string;
    /** The last id of the previous page, in the list's order. */
    afterId?: string;
    /** Newest first (an operator's "latest entries"), `afterId` going back; default oldest first. */
    newestFirst?: boolean;
    limit: number;
  },
): Promise<AuditEntry[]> {
  // One of two fixed texts (nothing from input): each keeps the primary key's index order.
  const page = filter.newestFirst
    ? "AND ($3::bigint IS NULL OR id < $3) AND ($5::text IS NULL OR action LIKE $5) ORDER BY id DESC"
    : "AND ($3::bigint IS NULL OR id > $3) AND ($5::text IS NULL OR action LIKE $5) ORDER BY id";
  const { rows } = await db.query<{
    id: string;
    at: Date;
    actor: string;
    action: string;
    entity_type: string;
    entity_id: string;
    details: Record<string, unknown>;
  }>(
    `SELECT * FROM audit.audit_log
      WHERE ($1::text IS NULL OR entity_type = $1)
        AND ($2::text IS NULL OR entity_id = $2)
        ${page} LIMIT $4`,
    [
      filter.entityType ?? null,
      filter.entityId ?? null,
      filter.afterId ?? null,
      filter.limit,
      filter.actionPrefix === undefined
        ? null
        : `${filter.actionPrefix.replace(/[\\%_]/g, "\\$&")}%`,
    ],
  );
  return rows.map((r) => ({
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    entityType: r.entity_type,
    entityId: r.entity_id,
    details: r.details,
  }));
}

/** Whether the log has an entry with this id (a page cursor names one). */
export async function auditEntryExists(db: Pool | PoolClient, id: string): Promise<boolean> {
  const { rows } = await db.query("SELECT 1 FROM audit.audit_log WHERE id = $1", [id]);
  return rows.length > 0;
}

/** The chain's genesis: the `prev_hash` of the first row. */
export const AUDIT_GENESIS = "0".repeat(64);

/** The newest linked row: its place and hash (reconciliation runs record it as an anchor). */
export type AuditHead = { seq: number; hash: string };

export async function readAuditHead(db: Pool | PoolClient): Promise<AuditHead | null> {
  const r = await db.query<{ seq: string; hash: string }>(
    "SELECT seq::text, hash FROM audit.audit_log WHERE seq IS NOT NULL ORDER BY audit_log.seq DESC LIMIT 1",
  );
  const row = r.rows[0];
  return row ? { seq: Number(row.seq), hash: row.hash } : null;
}

/** The fields of one row as the chain hashes them (see api/migrations/0004_audit_chain.sql and 0008). */
export type AuditRowText = {
  seq: string;
  id: string;
  atMicros: string;
  actor: string;
  action: string;
  entityType: string;
  entityId: string;
  details: string;
};

/** `<utf-8 octets>:<text>,` per field, in the migration's order: no separator is ambiguous. */
export function canonicalAuditRow(r: AuditRowText): string {
  return [r.seq, r.id, r.atMicros, r.actor, r.action, r.entityType, r.entityId, r.details]
    .map((v) => `${Buffer.byteLength(v, "utf8")}:${v},`)
    .join("");
}

export function auditRowHash(prevHash: string, r: AuditRowText): string {
  return createHash("sha256")
    .update(prevHash + canonicalAuditRow(r), "utf8")
    .digest("hex");
}

export type AuditProblem = {
  kind: "edited" | "deleted" | "inserted" | "truncated";
  /** The chain position where the problem shows (for `inserted`, the row's id is in `id`). */
  seq: number | null;
  id: string | null;
  detail: string;
};

export type AuditVerification = {
  ok: boolean;
  rows: number;
  head: AuditHead | null;
  /** The first problem in chain order (then unlinked rows, then anchors); null when intact. */
  problem: AuditProblem | null;
};

/**
 * Recompute the chain from the first row: the first row whose hash does not match its content is
 * `edited`; a row whose `prev_hash` is not its predecessor's hash, or a gap in `seq`, is where rows
 * were `deleted` (or re-linked); a row without a link is `inserted` past the trigger. `anchors`
 * (heads recorded elsewhere, e.g. by reconciliation runs) catch a truncated tail: an anchor whose
 * row is gone or differs is `truncated`.
 */
export async function verifyAuditChain(
  db: Pool | PoolClient,
  options: { anchors?: readonly (AuditHead & { source: string })[]; pageSize?: number } = {},
): Promise<AuditVerification> {
  const page = options.pageSize ?? 10_000;
  let prev = AUDIT_GENESIS;
  let expected = 1;
  let rows = 0;
  let head: AuditHead | null = null;
  const fail = (problem: AuditProblem): AuditVerification => ({ ok: false, rows, head, problem });
  for (let after = 0; ; ) {
    // atMicros is a NUMERIC (bigint here); the chain hashes its decimal text, which bigint's
    // toString gives byte for byte as Postgres' numeric(30, 0)::text does in the trigger.
    const r = await db.query<
      Omit<AuditRowText, "atMicros"> & { atMicros: bigint; prev_hash: string; hash: string }
    >(
      `SELECT seq::text, id::text, (extract(epoch FROM at) * 1000000)::numeric(30, 0) AS "atMicros",
              actor, action, entity_type AS "entityType", entity_id AS "entityId",
              details::text AS details, prev_hash, hash
         FROM audit.audit_log WHERE audit_log.seq > $1 ORDER BY audit_log.seq LIMIT $2`,
      [after, page],
    );
    for (const row of r.rows) {
      const seq = Number(row.seq);
      if (seq !== expected)
        return fail({
          kind: "deleted",
          seq: expected,
          id: null,
          detail: `rows ${expected}..${seq - 1} of the chain are missing (next present: seq ${seq}, id ${row.id})`,
        });
      if (row.prev_hash !== prev)
        return fail({
          kind: "deleted",
          seq,
          id: row.id,
          detail: `row seq ${seq} (id ${row.id}) does not follow seq ${seq - 1}: its predecessor was removed, replaced or re-linked`,
        });
      const hash = auditRowHash(prev, { ...row, atMicros: row.atMicros.toString() });
      if (hash !== row.hash)
        return fail({
          kind: "edited",
          seq,
          id: row.id,
          detail: `row seq ${seq} (id ${row.id}, ${row.action} by ${row.actor}) does not match its hash: it was edited`,
        });
      prev = row.hash;
      expected++;
      rows++;
      head = { seq, hash: row.hash };
    }
    if (r.rows.length < page) break;
    after = expected - 1;
  }
  const unlinked = await db.query<{ id: string; action: string }>(
    "SELECT id::text, action FROM audit.audit_log WHERE hash IS NULL OR seq IS NULL ORDER BY id LIMIT 1",
  );
  if (unlinked.rows[0])
    return fail({
      kind: "inserted",
      seq: null,
      id: unlinked.rows[0].id,
      detail: `row id ${unlinked.rows[0].id} (${unlinked.rows[0].action}) is not linked into the chain: it was inserted past the chain trigger`,
    });
  for (const anchor of options.anchors ?? []) {
    if (head === null || anchor.seq > head.seq)
      return fail({
        kind: "truncated",
        seq: anchor.seq,
        id: null,
        detail: `${anchor.source} recorded head seq ${anchor.seq}, but the chain ends at ${head?.seq ?? 0}: rows were deleted from the end`,
      });
    const at = await db.query<{ hash: string }>("SELECT hash FROM audit.audit_log WHERE seq = $1", [
      anchor.seq,
    ]);
    if (at.rows[0]?.hash !== anchor.hash)
      return fail({
        kind: "truncated",
        seq: anchor.seq,
        id: null,
        detail: `${anchor.source} recorded head seq ${anchor.seq} with hash ${anchor.hash}, the chain has ${at.rows[0]?.hash ?? "nothing"} there: the chain was rewritten`,
      });
  }
  return { ok: true, rows, head, problem: null };
}
