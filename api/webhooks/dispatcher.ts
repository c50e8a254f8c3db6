/**
 * Delivers webhook events. Pending deliveries in Postgres are the work owed; a sweep (every
 * `sweepIntervalMs`, and on `ring()`) rings one BullMQ job per delivery with a deterministic jobId
 * (one per life of the delivery: a re-drive starts a new one), so a delivery is attempted by one
 * job at a time. The job POSTs the signed event and retries with exponential backoff; the failure
 * that brings the delivery's attempts since its last re-drive (counted in Postgres, not by the
 * job) to `attempts` marks it dead (the dead-letter list, which the API shows and can re-drive).
 * Each configured endpoint has its own queue and worker, so one that hangs to its timeout holds
 * only its own deliveries; a job found in another queue than its endpoint's (the shared one, rung
 * by a revision before per-endpoint queues) sends nothing. A delivery to an endpoint this worker's
 * config does not have (a worker on the old config during a deploy that adds one, or an endpoint
 * removed) is not this worker's to send or to fail: its sweep does not ring it and a job for it
 * counts no attempt (logged, metric `result="not_configured"`); it stays owed in Postgres for a
 * worker that has the endpoint, and is dead-lettered once no running task has the endpoint (it was
 * removed). Receivers dedupe on `Webhook-Id`, and
 * keep the newest state of a subject by `sequence` (a forced re-drive can deliver an older event
 * after a newer one).
 */

import { createHash, randomUUID } from "node:crypto";
import type { Job } from "bullmq";
import type { Common } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import { type DoorbellJob, jobId, type QueueFactory } from "../../foundation/queues.js";
import { apiMetrics } from "../metrics.js";
import {
  CURRENT_SUBSCRIPTIONS,
  registerWebhookEndpoints,
  SUBSCRIPTION_REGISTER_EVERY_MS,
  unregisterWebhookEndpoints,
} from "./events.js";
import { signWebhook } from "./signature.js";

/**
 * The shared queue: rung by revisions before per-endpoint queues (and by earlier revisions for an
 * endpoint not configured). Its jobs are drained unsent: each delivery's own queue sends it.
 */
export const WEBHOOK_QUEUE = "webhooks";

/** The queue of a delivery to `endpoint`: its own when configured, else the shared one. */
export function webhookQueueOf(config: Pick<Config, "webhooks">, endpoint: string): string {
  return config.webhooks.some((w) => w.url === endpoint)
    ? `${WEBHOOK_QUEUE}-${endpointTag(endpoint)}`
    : WEBHOOK_QUEUE;
}

export type WebhookDispatcherOptions = {
  common: Common;
  pool: Pool;
  queues: QueueFactory;
  /** Delivery attempts before a delivery is dead (default 8). */
  attempts?: number;
  /** First retry delay; doubles per attempt (default 2000 ms). */
  backoffMs?: number;
  sweepIntervalMs?: number;
  timeoutMs?: number;
  /**
   * A delivery owed to an endpoint this worker's config does not have, untouched this long, is
   * dead-lettered (default 1 hour: longer than any deploy; a worker that has the endpoint sends or
   * retries it well within it).
   */
  unconfiguredDeadAfterMs?: number;
};

export type WebhookDispatcher = {
  start: () => void;
  /**
   * Registers this task's endpoints for every task's emitters (events.ts); each sweep does too, at
   * most once a minute. `stop` takes them away.
   */
  register: () => Promise<void>;
  /** Enqueue pending deliveries now (producers call it after committing an event). */
  ring: () => Promise<number>;
  stop: () => Promise<void>;
};

type DeliveryJob = { eventId: string; endpoint: string };

function endpointTag(url: string): string {
  return createHash("sha256").update(url).digest("hex").slice(0, 12);
}

export function createWebhookDispatcher(options: WebhookDispatcherOptions): WebhookDispatcher {
  const { common, pool, queues } = options;
  const log = common.logger.child({ component: "webhooks" });
  const attempts = options.attempts ?? 8;
  const backoffMs = options.backoffMs ?? 2000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const metrics = apiMetrics(common.metrics.registry);
  // WebhookDeadLetters is increase(…{result="dead"}) > 0: exported at 0 from the start, so the
  // first dead delivery of a process shows as an increase.
  metrics.deliveries.inc({ result: "dead" }, 0);
  let timer: NodeJS.Timeout | undefined;
  let workers: { close: () => Promise<void> }[] = [];
  let sweeping: Promise<number> | undefined;

  // Longer than a job's whole retry schedule: a delivery pending and untouched for this long has
  // no job making progress.
  const staleMs = backoffMs * 2 ** attempts + timeoutMs * attempts;
  const idOf = (row: { event_id: string; endpoint: string; redrives: number }) =>
    jobId("wh", row.event_id, endpointTag(row.endpoint), row.redrives);
  const queueOf = (endpoint: string) => webhookQueueOf(common.config, endpoint);
  /** Endpoints this worker can send to (config validation guarantees each one's secret). */
  const configured = common.config.webhooks
    .filter((w) => common.config.webhookSecrets[w.secretEnv])
    .map((w) => w.url);
  let lastUnconfiguredCheck = 0;
  let lastRegistered = 0;
  /** This task's subscriptions are registered under it (api migration 0023). */
  const task = randomUUID();

  /**
   * This worker's endpoints, registered for every task's emitters (events.ts): at its first sweep
   * and every minute after, so they stay current while a task has them.
   */
  async function register() {
    if (Date.now() - lastRegistered < SUBSCRIPTION_REGISTER_EVERY_MS) return;
    await registerWebhookEndpoints(pool, common.config, task);
    lastRegistered = Date.now();
  }
  const unconfiguredDeadAfterMs = options.unconfiguredDeadAfterMs ?? 3_600_000;

  /**
   * Deliveries owed to endpoints this worker does not have: said at most once a minute (they wait
   * for a worker that has the endpoint). One to an endpoint no running task has (it was removed
   * from the config, and the last task that had it has stopped) is dead-lettered at once, where
   * operators see it and can re-drive it once the endpoint is back: no task will send it. One a
   * minute old at least, so a task that emits to its endpoints before its first registration is
   * not taken for one whose endpoint was removed. One nobody has touched for
   * `unconfiguredDeadAfterMs` (no task that has the endpoint sent or retried it) is dead-lettered
   * too. Jobs waiting in such an endpoint's own queue while no worker anywhere
   * consumes it would stay in Redis for good, counted as queue depth: they are drained. Nothing is
   * lost: Postgres owes the deliveries, and a worker that has the endpoint rings them again.
   */
  async function unconfiguredEndpoints() {
    if (Date.now() - lastUnconfiguredCheck < Math.min(60_000, unconfiguredDeadAfterMs)) return;
    lastUnconfiguredCheck = Date.now();
    const { rowCount: removed } = await pool.query(
      `UPDATE api.webhook_deliveries
          SET status = 'dead', updated_at = now(),
              last_error = 'endpoint ' || endpoint || ' was removed from every task''s config'
        WHERE status = 'pending' AND endpoint <> ALL($1::text[])
          AND updated_at < now() - make_interval(secs => $2::double precision)
          AND endpoint NOT IN (SELECT endpoint FROM (${CURRENT_SUBSCRIPTIONS}) current)`,
      [configured, SUBSCRIPTION_REGISTER_EVERY_MS / 1000],
    );
    const { rowCount: untouched } = await pool.query(
      `UPDATE api.webhook_deliveries
          SET status = 'dead', updated_at = now(),
              last_error = 'endpoint ' || endpoint || ' is not configured (no worker sent it within '
                || $3::text || ' s)'
        WHERE status = 'pending' AND endpoint <> ALL($1::text[])
          AND updated_at < now() - make_interval(secs => $2::double precision)`,
      [configured, unconfiguredDeadAfterMs / 1000, String(unconfiguredDeadAfterMs / 1000)],
    );
    if (removed) {
      log.warn({
        msg: "webhook deliveries to an endpoint no task has any more dead-lettered",
        dead: removed,
      });
      metrics.deliveries.inc({ result: "dead" }, removed);
    }
    if (untouched) {
      log.warn({
        msg: "webhook deliveries to an endpoint no worker sent dead-lettered",
        dead: untouched,
      });
      metrics.deliveries.inc({ result: "dead" }, untouched);
    }
    const { rows } = await pool.query<{ endpoint: string; pending: number }>(
      `SELECT endpoint, count(*)::int AS pending FROM api.webhook_deliveries
        WHERE status = 'pending' AND endpoint <> ALL($1::text[]) GROUP BY endpoint`,
      [configured],
    );
    for (const row of rows) {
      log.warn({
        msg: "webhook deliveries owed to an endpoint this worker is not configured for; left to a worker that has it",
        endpoint: row.endpoint,
        pending: row.pending,
      });
      const own = queues.queue(`${WEBHOOK_QUEUE}-${endpointTag(row.endpoint)}`);
      const { waiting = 0, delayed = 0 } = await own.getJobCounts("waiting", "delayed");
      if (waiting + delayed === 0 || (await own.getWorkersCount()) > 0) continue;
      await own.drain(true);
      log.info({
        msg: "drained jobs of an endpoint's queue no worker consumes",
        endpoint: row.endpoint,
        queue: own.name,
        jobs: waiting + delayed,
      });
    }
  }

  /**
   * A job that failed for good without recording it (Postgres away through all its attempts)
   * keeps its id for a week, and every ring of that id would be a no-op: the delivery would stay
   * pending, neither sent nor dead. Such a job is removed so the ring below starts it again.
   */
  async function clearFailedJobs(
    stale: { event_id: string; endpoint: string; redrives: number }[],
  ) {
    if (stale.length === 0) return;
    try {
      for (const row of stale) {
        const job = await queues.queue<DeliveryJob>(queueOf(row.endpoint)).getJob(idOf(row));
        if (job && (await job.isFailed())) {
          await job.remove();
          log.warn({
            msg: "webhook delivery's job had failed without recording it; starting it again",
            event_id: row.event_id,
            endpoint: row.endpoint,
          });
        }
      }
    } catch (err) {
      log.warn({ msg: "webhook sweep could not check stale deliveries' jobs", err });
    }
  }

  async function sweep(): Promise<number> {
    await register().catch((err) =>
      log.warn({ msg: "webhook sweep could not register this task's endpoints", err }),
    );
    const { rows } = await pool.query<{
      event_id: string;
      endpoint: string;
      redrives: number;
      stale: boolean;
    }>(
      // Per endpoint, only the oldest pending event of each subject (deposit or withdrawal): a
      // later one waits until it is delivered (or dead), so a retried `credited` is never
      // overtaken by the `orphaned` after it (a backend applying them as they come would end
      // credited).
      // The 500 are shared out among endpoints (each one's oldest first, then each one's second…):
      // taken oldest first across all of them, an endpoint that hangs on its timeout while its
      // events keep coming filled every sweep with deliveries already waiting in its queue, and
      // the other endpoints' newer events were never rung (their receivers heard nothing).
      `SELECT event_id, endpoint, redrives, stale FROM (
         SELECT DISTINCT ON (d.endpoint, e.subject) d.event_id, d.endpoint, d.redrives, d.updated_at,
                d.updated_at < now() - make_interval(secs => $1::double precision / 1000) AS stale
           FROM api.webhook_deliveries d
           JOIN api.webhook_events e ON e.id = d.event_id
          WHERE d.status = 'pending' AND d.endpoint = ANY($2::text[])
          ORDER BY d.endpoint, e.subject, e.sequence) oldest
        ORDER BY row_number() OVER (PARTITION BY endpoint ORDER BY updated_at), updated_at
        LIMIT 500`,
      [staleMs, configured],
    );
    await unconfiguredEndpoints().catch((err) =>
      log.warn({ msg: "webhook sweep could not check unconfigured endpoints", err }),
    );
    await clearFailedJobs(rows.filter((r) => r.stale));
    const byQueue = new Map<string, DoorbellJob<DeliveryJob>[]>();
    for (const row of rows) {
      const name = queueOf(row.endpoint);
      const jobs = byQueue.get(name) ?? [];
      jobs.push({
        name: "deliver",
        data: { eventId: row.event_id, endpoint: row.endpoint },
        opts: {
          jobId: idOf(row),
          attempts,
          backoff: { type: "exponential", delay: backoffMs },
        },
      });
      byQueue.set(name, jobs);
    }
    // Doorbells: with Redis away these return within their bound and the next sweep rings again.
    await Promise.all([...byQueue].map(([name, jobs]) => queues.ring(name, jobs)));
    return rows.length;
  }

  const ring = () => {
    // One sweep at a time; a ring during a sweep waits for it rather than racing it.
    sweeping ??= sweep().finally(() => {
      sweeping = undefined;
    });
    return sweeping;
  };

  async function deliver(job: Job<DeliveryJob>): Promise<void> {
    const { eventId, endpoint } = job.data;
    // A job a revision before per-endpoint queues rang into the shared queue, for an endpoint
    // that has its own queue now: the sweep rings the delivery's job there (a jobId is unique per
    // queue only), and two jobs would send it at once, count each failure twice and let a later
    // event of its subject overtake it. Postgres still owes the delivery; its own job sends it.
    if (job.queueName !== queueOf(endpoint)) {
      log.info({
        msg: "webhook job in a queue not its endpoint's; leaving it to the endpoint's queue",
        event_id: eventId,
        endpoint,
        queue: job.queueName,
      });
      return;
    }
    const { rows } = await pool.query<{
      status: string;
      redrives: number;
      type: string;
      payload: Record<string, unknown>;
      subject: string;
      sequence: number;
      created_at: Date;
    }>(
      `SELECT d.status, d.redrives, e.type, e.payload, e.subject, e.sequence, e.created_at
         FROM api.webhook_deliveries d
         JOIN api.webhook_events e ON e.id = d.event_id
        WHERE d.event_id = $1 AND d.endpoint = $2`,
      [eventId, endpoint],
    );
    const row = rows[0];
    if (row?.status !== "pending") return; // delivered already, or dead: nothing owed
    // A job of an earlier life of a re-driven delivery (back after a stall, or retried by hand)
    // is not its job: the current life's job sends it and counts its attempts.
    if (job.id !== idOf({ event_id: eventId, endpoint, redrives: row.redrives })) {
      log.info({
        msg: "webhook job from before the delivery's re-drive; leaving it to the current one",
        event_id: eventId,
        endpoint,
        job_id: job.id,
      });
      return;
    }
    const config = common.config.webhooks.find((w) => w.url === endpoint);
    const secret = config ? common.config.webhookSecrets[config.secretEnv] : undefined;
    if (!secret) {
      // Not this worker's to send (its config predates the endpoint, or dropped it): no attempt
      // is counted, so a healthy receiver's delivery cannot go dead here. Postgres still owes it;
      // a worker that has the endpoint rings it into the endpoint's own queue and sends it.
      log.warn({
        msg: "webhook job for an endpoint this worker is not configured for; left owed",
        event_id: eventId,
        endpoint,
        queue: job.queueName,
      });
      metrics.deliveries.inc({ result: "not_configured" });
      return;
    }
    let error: string | undefined;
    const body = JSON.stringify({
      id: eventId,
      type: row.type,
      created_at: row.created_at.toISOString(),
      // The receiver drops an event whose sequence is below one it applied for the subject (a
      // dead event re-driven with force after later ones were delivered).
      subject: row.subject,
      sequence: row.sequence,
      data: row.payload,
    });
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": eventId,
          "webhook-timestamp": String(timestamp),
          "webhook-signature": signWebhook(secret, eventId, timestamp, body),
        },
        body,
        // A redirect is a failed attempt: following it would post the signed event to a URL
        // nobody configured (and a 3xx is not `ok`, so it is retried and can go dead).
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel().catch(() => {});
      if (!res.ok) error = `HTTP ${res.status}`;
    } catch (e) {
      error = (e as Error).message;
    }
    if (error === undefined) {
      await pool.query(
        `UPDATE api.webhook_deliveries
            SET status = 'delivered', attempts = attempts + 1, last_error = NULL,
                delivered_at = now(), updated_at = now()
          WHERE event_id = $1 AND endpoint = $2 AND status = 'pending'`,
        [eventId, endpoint],
      );
      log.debug({ msg: "webhook delivered", event_id: eventId, endpoint });
      metrics.deliveries.inc({ result: "delivered" });
      return;
    }
    // Dead is decided from the delivery's attempts since its last re-drive, in Postgres, not from
    // the job's attemptsMade: a stalled job runs an attempt again without counting it. (A job that
    // runs out first, its failures unrecorded, leaves the delivery pending: the sweep starts it
    // again once it is stale.)
    const { rows: updated } = await pool.query<{ status: string }>(
      `UPDATE api.webhook_deliveries
          SET attempts = attempts + 1, last_error = $3, updated_at = now(),
              status = CASE WHEN attempts + 1 >= $4 THEN 'dead' ELSE status END
        WHERE event_id = $1 AND endpoint = $2 AND status = 'pending' AND redrives = $5
        RETURNING status`,
      [eventId, endpoint, error, attempts, row.redrives],
    );
    const last = updated[0]?.status === "dead";
    log.warn({ msg: "webhook delivery failed", event_id: eventId, endpoint, error, dead: last });
    metrics.deliveries.inc({ result: last ? "dead" : "failed" });
    // BullMQ retries the job with its backoff; the code marks it in the worker's log.
    throw new BaseError(`webhook delivery to ${endpoint} failed: ${error}`, {
      code: "WEBHOOK_DELIVERY_FAILED",
      meta: { event_id: eventId, endpoint, dead: last },
    });
  }

  return {
    start() {
      const names = new Set([WEBHOOK_QUEUE, ...common.config.webhooks.map((w) => queueOf(w.url))]);
      workers = [...names].map((name) =>
        queues.worker<DeliveryJob>(name, deliver, { concurrency: 8 }),
      );
      const tick = () => {
        ring()
          .catch((err) => log.warn({ msg: "webhook sweep failed", err }))
          .finally(() => {
            if (timer) timer = setTimeout(tick, options.sweepIntervalMs ?? 2000);
          });
      };
      timer = setTimeout(tick, 0);
    },
    register: () => {
      lastRegistered = 0;
      return register();
    },
    ring,
    async stop() {
      const t = timer;
      timer = undefined;
      clearTimeout(t);
      await sweeping?.catch(() => {});
      await Promise.all(workers.map((w) => w.close()));
      // Once the last task that had an endpoint has stopped, events get no delivery to it.
      await unregisterWebhookEndpoints(pool, task).catch((err) =>
        log.warn({ msg: "could not unregister this task's webhook endpoints", err }),
      );
    },
  };
}
