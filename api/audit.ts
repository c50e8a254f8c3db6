/**
 * The append-only audit log (who, what, when). Writers call `appendAudit` inside the transaction that
 * makes the change, so the change and its record commit together; the table refuses UPDATE/DELETE.
 */
import type { Pool, PoolClient } from "../ops/db.js";

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
    `INSERT INTO api.audit_log (actor, action, entity_type, entity_id, details)
     VALUES ($1, $2, $3, $4, $5)`,
    [entry.actor, entry.action, entry.entityType, entry.entityId, entry.details ?? {}],
  );
}

export async function listAudit(
  db: Pool | PoolClient,
  filter: { entityType?: string; entityId?: string; afterId?: string; limit: number },
): Promise<AuditEntry[]> {
  const { rows } = await db.query<{
    id: string;
    at: Date;
    actor: string;
    action: string;
    entity_type: string;
    entity_id: string;
    details: Record<string, unknown>;
  }>(
    `SELECT * FROM api.audit_log
      WHERE ($1::text IS NULL OR entity_type = $1)
        AND ($2::text IS NULL OR entity_id = $2)
        AND ($3::bigint IS NULL OR id > $3)
      ORDER BY id LIMIT $4`,
    [filter.entityType ?? null, filter.entityId ?? null, filter.afterId ?? null, filter.limit],
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
