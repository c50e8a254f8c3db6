/**
 * Across a deploy to per-endpoint queues: the previous revision rang a delivery's job into the
 * shared `webhooks` queue, and this revision's sweep rings the same delivery into the endpoint's
 * own queue (a jobId is unique per queue only). This revision drains the shared queue too, so the
 * delivery must still be sent by one job: two would send it at once, count each failure twice
 * (dead in half its retry schedule) and let a later event of its subject overtake it. Real HTTP
 * receiver on loopback, Postgres and BullMQ on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../ops/testing/wait.js";
import { WEBHOOK_QUEUE, webhookQueueOf } from "./dispatcher.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

type DeliveryJob = { eventId: string; endpoint: string };

let t: WebhookTestContext;
/** Webhook-Id of every request the receiver got. */
const sent: string[] = [];
/** Requests held unanswered until the test lets them go. */
const held: (() => void)[] = [];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: async ({ headers }, res) => {
      sent.push(String(headers["webhook-id"]));
      await new Promise<void>((r) => held.push(r));
      res.statusCode = 204;
    },
    webhooks: (url) => [{ url: `${url}/hook`, secretEnv: "WH", events: ["*"] }],
    webhookSecrets: { WH: "secret" },
    // A held request must outlast the test's steps rather than time out as a failed attempt.
    dispatcher: { attempts: 3, backoffMs: 20, sweepIntervalMs: 100, timeoutMs: 30_000 },
    start: false,
  });
});
afterAll(async () => {
  for (const release of held.splice(0)) release();
  await t?.cleanup();
});

describe("webhook delivery across the deploy to per-endpoint queues", () => {
  it("a job the previous revision rang into the shared queue does not send a delivery its own queue's job sends", async () => {
    const hook = `${t.receiverUrl}/hook`;
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:deploy:confirmed",
      data: { deposit_id: "deploy", amount: "1" },
    });
    // This revision's sweep rings the endpoint's queue (no worker runs yet)...
    expect(await t.dispatcher.ring()).toBe(1);
    const own = t.ctx.queues.queue<DeliveryJob>(webhookQueueOf(t.ctx.common.config, hook));
    const [job] = await own.getJobs(["waiting"]);
    expect(job?.data).toEqual({ eventId: id, endpoint: hook });
    // ...and the previous revision's sweep had rung the same job into the shared queue.
    const shared = t.ctx.queues.queue<DeliveryJob>(WEBHOOK_QUEUE);
    const leftover = await shared.add(job!.name, job!.data, {
      jobId: job!.id!,
      attempts: 3,
      backoff: { type: "exponential", delay: 20 },
    });

    t.dispatcher.start();
    // The receiver holds what it gets: two jobs sending it would both be in flight here.
    await waitFor(
      "the shared queue's job run beside the delivery's own",
      async () => held.length === 2 || (held.length === 1 && (await leftover.isCompleted())),
    );
    for (const release of held.splice(0)) release();
    await waitFor(
      "the delivery",
      async () =>
        (
          await t.ctx.db.pool.query<{ status: string }>(
            "SELECT status FROM api.webhook_deliveries WHERE event_id = $1 AND endpoint = $2",
            [id, hook],
          )
        ).rows[0]?.status === "delivered",
    );
    expect(sent).toEqual([id]);
  });
});
