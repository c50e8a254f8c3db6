/**
 * Webhooks against a real HTTP receiver on loopback, real Postgres and BullMQ on Redis: signed
 * delivery, dedupe by event id, retries ending in the dead-letter list, and re-drive via the API.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../../foundation/db.js";
import { waitFor } from "../../ops/testing/wait.js";
import { webhookQueueOf } from "./dispatcher.js";
import { emitEvent, redriveDeliveries } from "./events.js";
import { verifyWebhook } from "./signature.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

type Received = { id: string; timestamp: number; signature: string; body: string };

const received: { good: Received[]; flaky: Received[] } = { good: [], flaky: [] };
let flakyUp = false;
/** Requests to the stuck endpoint, held unanswered until the test lets them go. */
const stuck: (() => void)[] = [];

let t: WebhookTestContext;

const statusOf = async (endpoint: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number }>(
      `SELECT status, attempts FROM api.webhook_deliveries WHERE endpoint = $1`,
      [endpoint],
    )
  ).rows;

/** One event's delivery to one endpoint. */
const deliveryOf = async (eventId: string, endpoint: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number }>(
      "SELECT status, attempts FROM api.webhook_deliveries WHERE event_id = $1 AND endpoint = $2",
      [eventId, endpoint],
    )
  ).rows[0]!;

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: async ({ path, headers, body }, res) => {
      if (path === "/stuck") {
        await new Promise<void>((r) => stuck.push(r));
        res.statusCode = 204;
        return;
      }
      const which: "good" | "flaky" = path === "/good" ? "good" : "flaky";
      received[which].push({
        id: String(headers["webhook-id"]),
        timestamp: Number(headers["webhook-timestamp"]),
        signature: String(headers["webhook-signature"]),
        body,
      });
      res.statusCode = which === "good" || flakyUp ? 204 : 500;
    },
    webhooks: (url) => [
      { url: `${url}/good`, secretEnv: "WH_GOOD", events: ["*"] },
      { url: `${url}/flaky`, secretEnv: "WH_FLAKY", events: ["withdrawal.*"] },
      { url: `${url}/stuck`, secretEnv: "WH_STUCK", events: ["inflow.*"] },
    ],
    webhookSecrets: { WH_GOOD: "good-secret", WH_FLAKY: "flaky-secret", WH_STUCK: "stuck-secret" },
    // A held request must outlast the test's steps rather than time out as a failed attempt.
    // An endpoint no worker has (removed) is dead-lettered after 4 s untouched, not 1 hour.
    dispatcher: {
      attempts: 3,
      backoffMs: 20,
      sweepIntervalMs: 100,
      timeoutMs: 30_000,
      unconfiguredDeadAfterMs: 4_000,
    },
  });
});
afterAll(async () => {
  for (const release of stuck.splice(0)) release();
  await t?.cleanup();
});

describe("webhook delivery", () => {
  it("delivers a signed event once per interested endpoint, even when emitted twice", async () => {
    const data = { deposit_id: "1", amount: "1000" };
    const id1 = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:1:confirmed",
      data,
    });
    const id2 = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:1:confirmed",
      data,
    });
    expect(id2).toBe(id1);
    await waitFor(
      "delivery",
      async () => (await statusOf(`${t.receiverUrl}/good`))[0]?.status === "delivered",
    );
    // Ring again, then send a later event and wait for it: once it has arrived, the dispatcher has
    // passed over the first event again (no fixed sleep to prove that nothing more happens).
    await t.dispatcher.ring();
    const marker = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:marker:confirmed",
      data: { deposit_id: "marker", amount: "1" },
    });
    await waitFor("the later event", async () => received.good.some((r) => r.id === marker));
    expect(received.good.filter((r) => r.id === id1)).toHaveLength(1);
    // the flaky endpoint only wants withdrawal events
    expect(received.flaky).toHaveLength(0);
    const got = received.good.find((r) => r.id === id1)!;
    expect(got.id).toBe(id1);
    expect(JSON.parse(got.body)).toMatchObject({ id: id1, type: "deposit.confirmed", data });
    expect(verifyWebhook({ secret: "good-secret", ...got })).toBe(true);
    expect(verifyWebhook({ secret: "flaky-secret", ...got })).toBe(false);
  });

  it("retries a failing endpoint, dead-letters it, and re-drives it through the API", async () => {
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.failed",
      name: "withdrawal:w1:failed",
      data: { withdrawal_id: "w1" },
    });
    const flaky = `${t.receiverUrl}/flaky`;
    await waitFor("dead letter", async () => (await statusOf(flaky))[0]?.status === "dead");
    expect((await statusOf(flaky))[0]!.attempts).toBe(3);
    expect(received.flaky).toHaveLength(3);
    expect(new Set(received.flaky.map((r) => r.id))).toEqual(new Set([id]));

    const dead = await t.call(t.keys.admin, {
      method: "GET",
      url: "/v1/webhooks/deliveries?status=dead",
    });
    expect(dead.json().deliveries).toEqual([
      expect.objectContaining({
        eventId: id,
        endpoint: flaky,
        type: "withdrawal.failed",
        attempts: 3,
      }),
    ]);
    expect(dead.json().deliveries[0].lastError).toBe("HTTP 500");

    const notAdmin = await t.call(t.keys["withdrawals:approve"], {
      method: "GET",
      url: "/v1/webhooks/deliveries",
    });
    expect(notAdmin.statusCode).toBe(403);

    flakyUp = true;
    const redrive = await t.call(t.keys.admin, {
      method: "POST",
      url: `/v1/webhooks/dead-letters/${id}/redrive`,
      headers: { "idempotency-key": "redrive-1" },
      payload: {},
    });
    expect(redrive.statusCode).toBe(200);
    expect(redrive.json().redriven).toHaveLength(1);
    await waitFor(
      "re-driven delivery",
      async () => (await statusOf(flaky))[0]?.status === "delivered",
    );
    expect(received.flaky).toHaveLength(4);
    const metrics = await t.ctx.common.metrics.registry.getSingleMetricAsString(
      "custody_api_webhook_deliveries_total",
    );
    expect(metrics).toMatch(/result="dead"[^}]*\} 1$/m);
    expect(metrics).toMatch(/result="failed"[^}]*\} 2$/m);

    const nothingDead = await t.call(t.keys.admin, {
      method: "POST",
      url: `/v1/webhooks/dead-letters/${id}/redrive`,
      headers: { "idempotency-key": "redrive-2" },
      payload: {},
    });
    expect(nothingDead.statusCode).toBe(404);
    expect(nothingDead.json()).toMatchObject({ code: "DEAD_LETTER_NOT_FOUND" });
  });

  it("refuses to re-drive an event whose subject's later event was delivered, unless forced; each carries its sequence", async () => {
    const flaky = `${t.receiverUrl}/flaky`;
    const deliveryOf = async (eventId: string) =>
      (
        await t.ctx.db.pool.query<{ status: string }>(
          "SELECT status FROM api.webhook_deliveries WHERE event_id = $1 AND endpoint = $2",
          [eventId, flaky],
        )
      ).rows[0]?.status;
    // The receiver is down through every attempt of the withdrawal's `confirmed`...
    flakyUp = false;
    const confirmed = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.confirmed",
      name: "withdrawal:w2:confirmed",
      data: { withdrawal_id: "w2" },
    });
    await waitFor("dead letter", async () => (await deliveryOf(confirmed)) === "dead");
    // ...and back for its reorg: `broadcast` again is delivered, after the dead `confirmed`.
    flakyUp = true;
    const broadcast = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.broadcast",
      name: "withdrawal:w2:broadcast:2",
      data: { withdrawal_id: "w2" },
    });
    await waitFor("the later event", async () => (await deliveryOf(broadcast)) === "delivered");

    // Re-driving `confirmed` now would leave the receiver believing the older state: refused.
    const redrive = (key: string, payload: object) =>
      t.call(t.keys.admin, {
        method: "POST",
        url: `/v1/webhooks/dead-letters/${confirmed}/redrive`,
        headers: { "idempotency-key": key },
        payload,
      });
    const refused = await redrive("redrive-w2-1", {});
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({
      code: "WEBHOOK_REDRIVE_OUT_OF_ORDER",
      later: [{ endpoint: flaky, eventId: broadcast, type: "withdrawal.broadcast", sequence: 2 }],
    });
    expect(await deliveryOf(confirmed)).toBe("dead");

    // Forced, it is sent, carrying its place in the withdrawal's events for the receiver to judge.
    const forced = await redrive("redrive-w2-2", { force: true });
    expect(forced.statusCode).toBe(200);
    await waitFor("forced re-drive", async () => (await deliveryOf(confirmed)) === "delivered");
    const bodyOf = (id: string) =>
      JSON.parse(received.flaky.filter((r) => r.id === id).at(-1)!.body);
    expect(bodyOf(confirmed)).toMatchObject({ subject: "withdrawal:w2", sequence: 1 });
    expect(bodyOf(broadcast)).toMatchObject({ subject: "withdrawal:w2", sequence: 2 });
  });

  it("a job from before a re-drive, run again, neither sends the re-driven delivery nor kills it", async () => {
    const flaky = `${t.receiverUrl}/flaky`;
    flakyUp = false;
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.failed",
      name: "withdrawal:w3:failed",
      data: { withdrawal_id: "w3" },
    });
    const delivery = () => deliveryOf(id, flaky);
    const sent = () => received.flaky.filter((r) => r.id === id).length;
    await waitFor("dead letter", async () => (await delivery()).status === "dead");
    expect(sent()).toBe(3);
    const queue = t.ctx.queues.queue<{ eventId: string; endpoint: string }>(
      webhookQueueOf(t.ctx.common.config, flaky),
    );
    const stale = (await queue.getFailed()).find(
      (j) => j.data.eventId === id && j.data.endpoint === flaky,
    )!;
    expect(stale.attemptsMade).toBe(3);

    // The operator re-drives it (the receiver still down). Then the job of its first life is back
    // in the queue with its attempts spent, as a job whose worker died, or whose lock expired,
    // after its last attempt comes back (a stall keeps attemptsMade), or one retried from a queue
    // dashboard. It is not this delivery's job any more: the re-driven delivery gets its own
    // attempts, counted in Postgres.
    expect((await redriveDeliveries(t.ctx.db.pool, id, { endpoint: flaky })).redriven).toHaveLength(
      1,
    );
    await stale.retry();
    await waitFor(
      "the stale job's run",
      async () => (await stale.isCompleted()) || (await stale.isFailed()),
    );
    await waitFor("dead letter again", async () => (await delivery()).status === "dead");
    expect(await delivery()).toEqual({ status: "dead", attempts: 3 });
    expect(sent()).toBe(6);
  });

  it("counts a delivery's attempts in Postgres: a new job for it (Redis lost the old one) does not start again from zero", async () => {
    const flaky = `${t.receiverUrl}/flaky`;
    flakyUp = false;
    // A delivery Postgres says failed twice, whose job Redis no longer has (a failover lost it):
    // the sweep rings a new job for it, with no attempts made.
    const id = await withTransaction(t.ctx.db.pool, async (client) => {
      const eventId = await emitEvent(client, t.ctx.common.config, {
        type: "withdrawal.failed",
        name: "withdrawal:w4:failed",
        data: { withdrawal_id: "w4" },
      });
      await client.query(
        "UPDATE api.webhook_deliveries SET attempts = 2, last_error = 'HTTP 500' WHERE event_id = $1 AND endpoint = $2",
        [eventId, flaky],
      );
      return eventId;
    });
    await waitFor("dead letter", async () => (await deliveryOf(id, flaky)).status === "dead");
    // Its third attempt was its last.
    expect(await deliveryOf(id, flaky)).toEqual({ status: "dead", attempts: 3 });
    expect(received.flaky.filter((r) => r.id === id)).toHaveLength(1);
  });

  it("delivers to an endpoint while another hangs on as many deliveries as a worker runs at once", async () => {
    const inflows: string[] = [];
    for (let i = 0; i < 8; i++)
      inflows.push(
        await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
          type: "inflow.credited",
          name: `inflow:stuck-${i}:credited`,
          data: { inflow_id: `stuck-${i}` },
        }),
      );
    await waitFor("the stuck endpoint holding 8 requests", () => stuck.length === 8);
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:beside-stuck:confirmed",
      data: { deposit_id: "beside-stuck", amount: "1" },
    });
    const good = `${t.receiverUrl}/good`;
    // Well before the stuck requests' 30 s timeout would free a worker for it.
    await waitFor(
      "the good endpoint's delivery beside the stuck one",
      async () => (await deliveryOf(id, good)).status === "delivered",
      { timeoutMs: 20_000 },
    );
    expect(stuck).toHaveLength(8); // none answered, none sent again
    for (const release of stuck.splice(0)) release();
    const stuckUrl = `${t.receiverUrl}/stuck`;
    await waitFor("the stuck endpoint's deliveries", async () => {
      const states = await Promise.all(inflows.map((e) => deliveryOf(e, stuckUrl)));
      return states.every((d) => d.status === "delivered");
    });
  });

  it("leaves owed, untried, a delivery to an endpoint this worker is not configured for; dead-letters it once nobody has sent it for the grace", async () => {
    // Emitted while the config named it (an earlier deployment's, or a newer worker's config):
    // a worker that has the endpoint sends it; this one neither sends nor fails it.
    const gone = `${t.receiverUrl}/gone`;
    const id = await emitEvent(
      t.ctx.db.pool,
      { webhooks: [{ url: gone, secretEnv: "WH_GONE", events: ["*"] }] },
      { type: "deposit.confirmed", name: "deposit:gone:confirmed", data: { deposit_id: "gone" } },
    );
    // Many sweeps, far longer than the retry schedule that would have made it dead.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await deliveryOf(id, gone)).toEqual({ status: "pending", attempts: 0 });
    // No worker has it (it was removed): dead-lettered, where operators see and can re-drive it.
    await waitFor("dead letter", async () => (await deliveryOf(id, gone)).status === "dead", {
      timeoutMs: 20_000,
    });
    expect(await deliveryOf(id, gone)).toEqual({ status: "dead", attempts: 0 });
    const { rows } = await t.ctx.db.pool.query<{ last_error: string }>(
      "SELECT last_error FROM api.webhook_deliveries WHERE event_id = $1 AND endpoint = $2",
      [id, gone],
    );
    expect(rows[0]!.last_error).toContain("is not configured");
  });
});
