/**
 * Across a deploy that adds a webhook endpoint: a worker still on the old config has no such
 * endpoint. Its deliveries are not that worker's to send or to fail: they stay owed (no attempt
 * counted, never dead) until a worker that has the endpoint sends them, and the old worker says
 * so (log, metric). Real HTTP receiver on loopback, Postgres and BullMQ on Redis.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobId } from "../../foundation/queues.js";
import { waitFor } from "../../ops/testing/wait.js";
import {
  createWebhookDispatcher,
  WEBHOOK_QUEUE,
  type WebhookDispatcher,
  webhookQueueOf,
} from "./dispatcher.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

type DeliveryJob = { eventId: string; endpoint: string };

let t: WebhookTestContext;
let oldWorker: WebhookDispatcher | undefined;
const others: WebhookDispatcher[] = [];
/** Path and Webhook-Id of every request the receiver got. */
const sent: [string, string][] = [];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: ({ path, headers }, res) => {
      sent.push([path, String(headers["webhook-id"])]);
      res.statusCode = 204;
    },
    webhooks: (url) => [
      { url: `${url}/hook`, secretEnv: "WH", events: ["*"] },
      { url: `${url}/added`, secretEnv: "WH_ADDED", events: ["*"] },
    ],
    webhookSecrets: { WH: "secret", WH_ADDED: "added-secret" },
    dispatcher: { attempts: 3, backoffMs: 20, sweepIntervalMs: 100, timeoutMs: 5_000 },
    start: false,
  });
});
afterAll(async () => {
  await oldWorker?.stop();
  for (const d of others) await d.stop();
  await t?.cleanup();
});

const deliveryOf = async (eventId: string, endpoint: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number; last_error: string | null }>(
      `SELECT status, attempts, last_error FROM api.webhook_deliveries
        WHERE event_id = $1 AND endpoint = $2`,
      [eventId, endpoint],
    )
  ).rows[0]!;

describe("a webhook endpoint a worker's config does not have", () => {
  it("is left owed by that worker, never failed, and sent by a worker that has it", async () => {
    const hook = `${t.receiverUrl}/hook`;
    const added = `${t.receiverUrl}/added`;
    // The new revision's API wrote the event, with a delivery to the added endpoint.
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:added:confirmed",
      data: { deposit_id: "added", amount: "1" },
    });
    // Only a worker on the old config runs.
    const config = Object.freeze({
      ...t.ctx.common.config,
      webhooks: t.ctx.common.config.webhooks.filter((w) => w.url === hook),
    });
    oldWorker = createWebhookDispatcher({
      common: { ...t.ctx.common, config },
      pool: t.ctx.db.pool,
      queues: t.ctx.queues,
      attempts: 3,
      backoffMs: 20,
      sweepIntervalMs: 100,
    });
    oldWorker.start();
    await waitFor("the old worker's delivery", async () => {
      return (await deliveryOf(id, hook)).status === "delivered";
    });
    // Many sweeps and far longer than the retry schedule (20 + 40 ms) of a counted failure.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await deliveryOf(id, added)).toEqual({
      status: "pending",
      attempts: 0,
      last_error: null,
    });
    // A job for it in the shared queue (as another worker on the old config rang it) sends
    // nothing and counts nothing here either; it is logged and counted as not configured.
    const leftover = await t.ctx.queues.queue<DeliveryJob>(WEBHOOK_QUEUE).add(
      "deliver",
      { eventId: id, endpoint: added },
      {
        jobId: jobId("wh", id, createHash("sha256").update(added).digest("hex").slice(0, 12), 0),
      },
    );
    await waitFor("the leftover job", () => leftover.isCompleted());
    expect(await deliveryOf(id, added)).toEqual({
      status: "pending",
      attempts: 0,
      last_error: null,
    });
    const metrics = await t.ctx.common.metrics.registry.getSingleMetricAsString(
      "custody_api_webhook_deliveries_total",
    );
    expect(metrics).toMatch(/result="not_configured"[^}]*\} 1$/m);
    expect(metrics).not.toMatch(/result="(failed|dead)"[^}]*\} [1-9]/m);

    // A worker with the endpoint sends it, once.
    t.dispatcher.start();
    await waitFor(
      "the added endpoint's delivery",
      async () => (await deliveryOf(id, added)).status === "delivered",
    );
    expect(sent).toEqual([
      ["/hook", id],
      ["/added", id],
    ]);
    expect((await deliveryOf(id, added)).attempts).toBe(1);
  });

  it("drains the jobs left in a removed endpoint's queue once no worker consumes it", async () => {
    const removed = `${t.receiverUrl}/removed`;
    const was = { webhooks: [{ url: removed, secretEnv: "WH_REMOVED", events: ["*" as const] }] };
    // Its last worker's config had it: a delivery owed, its job rung into the endpoint's queue.
    const id = await emitEvent(t.ctx.db.pool, was, {
      type: "deposit.confirmed",
      name: "deposit:removed:confirmed",
      data: { deposit_id: "removed", amount: "1" },
    });
    const name = webhookQueueOf(was, removed);
    const queue = t.ctx.queues.queue<DeliveryJob>(name);
    const data = { eventId: id, endpoint: removed };
    await queue.add("deliver", data, { jobId: "wh_removed_retry", delay: 600_000 });
    const counts = async () => {
      const c = await queue.getJobCounts("waiting", "delayed");
      return (c.waiting ?? 0) + (c.delayed ?? 0);
    };
    const fresh = () => {
      const d = createWebhookDispatcher({
        common: t.ctx.common,
        pool: t.ctx.db.pool,
        queues: t.ctx.queues,
        sweepIntervalMs: 100,
      });
      others.push(d);
      d.start();
    };
    // A worker still consumes the queue (an old task during the deploy that removed it): kept.
    const consumer = t.ctx.queues.worker<DeliveryJob>(name, async () => {});
    await consumer.waitUntilReady();
    await waitFor("the consumer to be seen", async () => (await queue.getWorkersCount()) > 0);
    fresh();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await counts()).toBe(1);
    // Gone: what it left is drained by the next worker's check; the delivery stays owed.
    await consumer.close();
    await queue.add("deliver", data, { jobId: "wh_removed_waiting" });
    expect(await counts()).toBe(2);
    fresh();
    await waitFor("the removed endpoint's queue drained", async () => (await counts()) === 0);
    expect(await deliveryOf(id, removed)).toEqual({
      status: "pending",
      attempts: 0,
      last_error: null,
    });
  });
});
