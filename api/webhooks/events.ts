/**
 * Webhook events. A producer calls `emitEvent` inside the transaction that makes the change; the
 * event id is derived from what happened (`withdrawal:<id>:approved`), so emitting it twice stores
 * it once and delivers it once per endpoint. The dispatcher delivers pending rows (Postgres is the
 * truth; BullMQ only carries the attempts).
 */
import { type Config, WEBHOOK_EVENT_TYPES } from "../../foundation/config.js";
import type { Pool, PoolClient } from "../../foundation/db.js";
import { eventIdOf } from "./eventId.js";

export const EVENT_TYPES = WEBHOOK_EVENT_TYPES;
export type EventType = (typeof EVENT_TYPES)[number];

export type WebhookEndpoint = Config["webhooks"][number];

export function endpointWants(endpoint: WebhookEndpoint, type: string): boolean {
  return endpoint.events.some(
    (e) => e === "*" || e === type || (e.endsWith(".*") && type.startsWith(e.slice(0, -1))),
  );
}

/** Stores the event and one pending delivery per interested endpoint; returns the event id. */
export async function emitEvent(
  client: Pool | PoolClient,
  config: Pick<Config, "webhooks">,
  event: { type: EventType; name: string; data: Record<string, unknown> },
): Promise<string> {
  const id = eventIdOf(event.name);
  const inserted = await client.query(
    `INSERT INTO api.webhook_events (id, type, payload) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO NOTHING`,
    [id, event.type, event.data],
  );
  if (inserted.rowCount === 1) {
    for (const endpoint of config.webhooks) {
      if (!endpointWants(endpoint, event.type)) continue;
      await client.query(
        `INSERT INTO api.webhook_deliveries (event_id, endpoint) VALUES ($1, $2)
         ON CONFLICT DO NOTHING`,
        [id, endpoint.url],
      );
    }
  }
  return id;
}

/**
 * For a change that can happen more than once (a withdrawal confirmed, reorged and confirmed
 * again): the first time the event is `name`, the n-th time `name:n`. Callers emit under the row
 * lock of the thing that changed, so the n is the same on a retry of the same change.
 */
export async function emitRepeatableEvent(
  client: Pool | PoolClient,
  config: Pick<Config, "webhooks">,
  event: { type: EventType; name: string; data: Record<string, unknown> },
): Promise<string> {
  for (let n = 1; ; n++) {
    const name = n === 1 ? event.name : `${event.name}:${n}`;
    const { rows } = await client.query("SELECT 1 FROM api.webhook_events WHERE id = $1", [
      eventIdOf(name),
    ]);
    if (rows.length === 0) return emitEvent(client, config, { ...event, name });
  }
}

export type DeliveryRow = {
  eventId: string;
  endpoint: string;
  type: string;
  status: "pending" | "delivered" | "dead";
  attempts: number;
  redrives: number;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
};

type RawDelivery = {
  event_id: string;
  endpoint: string;
  type: string;
  status: DeliveryRow["status"];
  attempts: number;
  redrives: number;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
};

function fromRaw(r: RawDelivery): DeliveryRow {
  return {
    eventId: r.event_id,
    endpoint: r.endpoint,
    type: r.type,
    status: r.status,
    attempts: r.attempts,
    redrives: r.redrives,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export async function listDeliveries(
  db: Pool | PoolClient,
  filter: { status?: DeliveryRow["status"]; limit: number },
): Promise<DeliveryRow[]> {
  const { rows } = await db.query<RawDelivery>(
    `SELECT d.*, e.type, e.created_at FROM api.webhook_deliveries d
       JOIN api.webhook_events e ON e.id = d.event_id
      WHERE ($1::text IS NULL OR d.status = $1)
      ORDER BY d.updated_at, d.event_id LIMIT $2`,
    [filter.status ?? null, filter.limit],
  );
  return rows.map(fromRaw);
}

/** Puts dead deliveries of an event back to pending (all endpoints, or one). Returns how many. */
export async function redriveDeliveries(
  db: Pool | PoolClient,
  eventId: string,
  endpoint?: string,
): Promise<DeliveryRow[]> {
  const { rows } = await db.query<RawDelivery>(
    `WITH d AS (
       UPDATE api.webhook_deliveries
          SET status = 'pending', attempts = 0, redrives = redrives + 1, updated_at = now()
        WHERE event_id = $1 AND status = 'dead' AND ($2::text IS NULL OR endpoint = $2)
       RETURNING *)
     SELECT d.*, e.type, e.created_at FROM d JOIN api.webhook_events e ON e.id = d.event_id`,
    [eventId, endpoint ?? null],
  );
  return rows.map(fromRaw);
}
