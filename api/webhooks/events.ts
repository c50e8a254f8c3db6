/**
 * Webhook events. A producer calls `emitEvent` inside the transaction that makes the change; the
 * event id is derived from what happened (`withdrawal:<id>:approved`), so emitting it twice stores
 * it once and delivers it once per endpoint. The dispatcher delivers pending rows (Postgres is the
 * truth; BullMQ only carries the attempts).
 */
import { type Config, WEBHOOK_EVENT_TYPES } from "../../foundation/config.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { type ApiKey, principalOf } from "../apiKeys.js";
import { IdempotencyConflictError } from "../errors.js";
import { CALLERS_KEY, callersKeyParams, lockCallersKey } from "../idempotency.js";
import { eventIdOf } from "./eventId.js";

export const EVENT_TYPES = WEBHOOK_EVENT_TYPES;
export type EventType = (typeof EVENT_TYPES)[number];

export type WebhookEndpoint = Config["webhooks"][number];

const patternWants = (pattern: string, type: string) =>
  pattern === "*" ||
  pattern === type ||
  (pattern.endsWith(".*") && type.startsWith(pattern.slice(0, -1)));

export function endpointWants(endpoint: WebhookEndpoint, type: string): boolean {
  return endpoint.events.some((e) => patternWants(e, type));
}

/**
 * A task's subscription (api.webhook_task_subscriptions, api migration 0023) that it has not
 * registered for this long less than the newest registration is stale: the task is gone without
 * unregistering (it crashed), and events get no delivery to an endpoint only it had. Tasks
 * register every `SUBSCRIPTION_REGISTER_EVERY_MS`.
 */
export const SUBSCRIPTION_STALE_AFTER_MS = 10 * 60_000;
export const SUBSCRIPTION_REGISTER_EVERY_MS = 60_000;

/** A row of api.webhook_task_subscriptions that no newer registration made stale. */
const FRESH = `seen_at >= (SELECT max(seen_at) FROM api.webhook_task_subscriptions)
  - make_interval(secs => ${SUBSCRIPTION_STALE_AFTER_MS / 1000})`;

/** The current subscriptions: (endpoint, pattern) rows. */
export const CURRENT_SUBSCRIPTIONS = `
  SELECT DISTINCT endpoint, pattern FROM api.webhook_task_subscriptions
   WHERE endpoint <> '' AND ${FRESH}`;

// Registrations and a task's leaving take turns: two last tasks stopping at once would each see
// the other running and both take their rows away.
const lockSubscriptions = (client: PoolClient) =>
  client.query(
    "SELECT pg_advisory_xact_lock(hashtextextended('api.webhook_task_subscriptions', 0))",
  );

/**
 * Records the endpoints of `task` (one running dispatcher) and the event patterns each is given,
 * shared with every task's emitters (api migration 0023), and that the task runs at all (its ''
 * row, whatever its config). A task running again drops the rows the last one to stop left.
 */
export async function registerWebhookEndpoints(
  pool: Pool,
  config: Pick<Config, "webhooks">,
  task: string,
): Promise<void> {
  const rows = [["", ""], ...config.webhooks.flatMap((w) => w.events.map((e) => [w.url, e]))];
  const endpoints = rows.map((r) => r[0]);
  const patterns = rows.map((r) => r[1]);
  await withTransaction(pool, async (client) => {
    await lockSubscriptions(client);
    await client.query("DELETE FROM api.webhook_task_subscriptions WHERE stopped");
    await client.query(
      `INSERT INTO api.webhook_task_subscriptions AS s (task, endpoint, pattern)
       SELECT DISTINCT $1::text, endpoint, pattern FROM unnest($2::text[], $3::text[]) AS r(endpoint, pattern)
       ON CONFLICT (task, endpoint, pattern) DO UPDATE SET seen_at = now()`,
      [task, endpoints, patterns],
    );
  });
  // For the previous revision's emitters, which read api migration 0020's shared rows, during the
  // deploy that brings 0023 (an endpoint it adds reaches the old tasks' events too). In order, so
  // two tasks registering at once lock the rows in one order.
  await pool.query(
    `INSERT INTO api.webhook_subscriptions AS s (endpoint, pattern)
     SELECT DISTINCT endpoint, pattern FROM unnest($1::text[], $2::text[]) AS r(endpoint, pattern)
      ORDER BY endpoint, pattern
     ON CONFLICT (endpoint, pattern) DO UPDATE
        SET seen_at = now(),
            added_at = CASE WHEN s.seen_at < (SELECT max(seen_at) FROM api.webhook_subscriptions)
                              - make_interval(secs => $3::double precision / 1000)
                            THEN now() ELSE s.added_at END`,
    [endpoints, patterns, SUBSCRIPTION_STALE_AFTER_MS],
  );
}

/**
 * Takes a stopping task's subscriptions away, so an endpoint no running task has gets no more
 * deliveries (a deploy that removed it has replaced the last task that had it). The last running
 * task keeps its rows, marked `stopped`, for the events emitted while none runs.
 */
export async function unregisterWebhookEndpoints(pool: Pool, task: string): Promise<void> {
  await withTransaction(pool, async (client) => {
    await lockSubscriptions(client);
    const { rows } = await client.query(
      `SELECT 1 FROM api.webhook_task_subscriptions WHERE task <> $1 AND NOT stopped AND ${FRESH}
        LIMIT 1`,
      [task],
    );
    await client.query(
      rows.length > 0
        ? "DELETE FROM api.webhook_task_subscriptions WHERE task = $1"
        : "UPDATE api.webhook_task_subscriptions SET stopped = true WHERE task = $1",
      [task],
    );
  });
}

/**
 * Stores the event and one pending delivery per interested endpoint; returns the event id. The
 * database gives the event its subject (the deposit's or withdrawal's) and the subject's next
 * `sequence` (api migration 0014's trigger).
 *
 * The interested endpoints are this task's config's and every current subscription that any task
 * registered (api migration 0023): during a rolling deploy that adds an endpoint, an old task's
 * event is delivered to it too (it was not, its config not naming it: the receiver missed events,
 * an `orphaned` after a `credited` among them). They are read after the event's insert, which
 * holds its subject's lock until commit: the next event of the subject reads them after this one
 * committed, so once an endpoint gets a subject's events it gets every later one.
 */
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
    const { rows } = await client.query<{ endpoint: string; pattern: string }>(
      CURRENT_SUBSCRIPTIONS,
    );
    const endpoints = new Set([
      ...config.webhooks.filter((w) => endpointWants(w, event.type)).map((w) => w.url),
      ...rows.filter((r) => patternWants(r.pattern, event.type)).map((r) => r.endpoint),
    ]);
    if (endpoints.size > 0)
      await client.query(
        `INSERT INTO api.webhook_deliveries (event_id, endpoint)
         SELECT $1, endpoint FROM unnest($2::text[]) AS e(endpoint)
         ON CONFLICT DO NOTHING`,
        [id, [...endpoints].sort()],
      );
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

/**
 * A later event of the same subject that the endpoint of a dead delivery already got (`delivered`)
 * or is being sent (`pending`: in flight, retrying or queued).
 */
export type LaterDelivery = {
  endpoint: string;
  eventId: string;
  type: string;
  sequence: number;
  status: "delivered" | "pending";
};

// The dead deliveries a re-drive targets, and the later events of their subject each endpoint
// already got or is being sent: re-driven, the older event would reach the receiver after a newer
// state. A pending one counts too: the dispatcher holds back only events behind a pending one, and
// one already handed to a job (in flight, or between retries) is sent whatever is re-driven, so
// the re-driven event could follow it (pending moves only to delivered or dead, so one checked
// here as pending is never missed as it becomes delivered).
const REDRIVE_TARGETS = `
  target AS (
    SELECT d.event_id, d.endpoint, e.subject, e.sequence
      FROM api.webhook_deliveries d JOIN api.webhook_events e ON e.id = d.event_id
     WHERE d.event_id = $1 AND d.status = 'dead' AND ($2::text IS NULL OR d.endpoint = $2)),
  later AS (
    SELECT t.endpoint, l.id::text AS event_id, l.type, l.sequence, ld.status
      FROM target t
      JOIN api.webhook_events l ON l.subject = t.subject AND l.sequence > t.sequence
      JOIN api.webhook_deliveries ld ON ld.event_id = l.id AND ld.endpoint = t.endpoint
     WHERE ld.status IN ('delivered', 'pending'))`;

/**
 * Puts dead deliveries of an event back to pending (all endpoints, or one). When a later event of
 * the same subject was already delivered to one of them, or is being sent to it, nothing is
 * re-driven and `later` says which (unless `force`: the receiver then has to drop it by its
 * sequence).
 *
 * Under the subject's lock, the one its emitters hold until commit (api migration 0014), and in
 * a statement begun after taking it: an event of the subject committed meanwhile, and a re-drive
 * of another of its events, are seen, not decided beside (either could be rung before this one).
 */
export async function redriveDeliveries(
  pool: Pool,
  eventId: string,
  options: {
    endpoint?: string | undefined;
    force?: boolean | undefined;
    /**
     * The API request asking, by its Idempotency-Key: a re-drive is recorded under it in its
     * transaction (api migration 0018), the caller's principal's (any of its API keys: 0022), and
     * the same request run again after its answer was lost (a 5xx after the commit), under any of
     * them, gets the deliveries as that re-drive left them. Decided again, it would find them
     * under way (nothing dead: DEAD_LETTER_NOT_FOUND) or dead again, and re-drive them a second
     * time.
     */
    under?: { caller: Pick<ApiKey, "id" | "owner">; key: string; requestHash: string };
  } = {},
): Promise<{ redriven: DeliveryRow[]; later: LaterDelivery[] }> {
  const params = [eventId, options.endpoint ?? null];
  const under = options.under;
  return withTransaction(pool, async (client) => {
    if (under) {
      // Two takers of one key (a lease lapsed under a slow first attempt, or a retry under a
      // rotated key of the same owner) decide one at a time.
      await lockCallersKey(client, "webhook-redrive-key", under.caller, under.key);
      const { rows } = await client.query<{
        request_hash: string;
        event_id: string;
        redriven: (Omit<DeliveryRow, "createdAt" | "updatedAt"> & {
          createdAt: string;
          updatedAt: string;
        })[];
      }>(
        `SELECT request_hash, event_id::text, redriven FROM api.webhook_redrives
          WHERE ${CALLERS_KEY}`,
        callersKeyParams(under.caller, under.key),
      );
      const earlier = rows[0];
      if (earlier) {
        if (earlier.request_hash !== under.requestHash)
          throw new IdempotencyConflictError(
            under.key,
            `POST /v1/webhooks/dead-letters/${earlier.event_id}/redrive`,
          );
        return {
          redriven: earlier.redriven.map((d) => ({
            ...d,
            createdAt: new Date(d.createdAt),
            updatedAt: new Date(d.updatedAt),
          })),
          later: [],
        };
      }
    }
    await client.query(
      `SELECT pg_advisory_xact_lock(hashtextextended('api.webhook_subject:' || subject, 0))
         FROM api.webhook_events WHERE id = $1`,
      [eventId],
    );
    const { rows } = await client.query<RawDelivery>(
      `WITH ${REDRIVE_TARGETS},
       d AS (
         UPDATE api.webhook_deliveries u
            SET status = 'pending', attempts = 0, redrives = redrives + 1, updated_at = now()
           FROM target t
          WHERE u.event_id = t.event_id AND u.endpoint = t.endpoint AND u.status = 'dead'
            AND ($3 OR NOT EXISTS (SELECT 1 FROM later))
         RETURNING u.*)
       SELECT d.*, e.type, e.created_at FROM d JOIN api.webhook_events e ON e.id = d.event_id`,
      [...params, options.force === true],
    );
    if (rows.length > 0 || options.force === true) {
      const redriven = rows.map(fromRaw);
      // Only a re-drive that re-drove something is answered 2xx, and so recorded.
      if (under && redriven.length > 0)
        await client.query(
          `INSERT INTO api.webhook_redrives
             (api_key_id, idempotency_key, request_hash, event_id, redriven, principal)
           VALUES ($1, $2, $3, $4, $5, $6)`,
          [
            under.caller.id,
            under.key,
            under.requestHash,
            eventId,
            JSON.stringify(redriven),
            principalOf(under.caller),
          ],
        );
      return { redriven, later: [] };
    }
    const later = await client.query<{
      endpoint: string;
      event_id: string;
      type: string;
      sequence: number;
      status: LaterDelivery["status"];
    }>(`WITH ${REDRIVE_TARGETS} SELECT * FROM later ORDER BY endpoint, sequence`, params);
    return {
      redriven: [],
      later: later.rows.map((r) => ({
        endpoint: r.endpoint,
        eventId: r.event_id,
        type: r.type,
        sequence: r.sequence,
        status: r.status,
      })),
    };
  });
}
