/**
 * A receiver that takes the request and never answers costs an attempt its timeout, not a worker
 * slot for good: the attempt fails when `timeoutMs` has passed and is retried, and the deposit's
 * later event still waits for it. Real HTTP receiver on loopback, Postgres and BullMQ on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../ops/testing/wait.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

let t: WebhookTestContext;
/** Types the receiver answered 2xx, in the order it answered them. */
const accepted: string[] = [];
/** Requests the receiver never answers (released at cleanup only). */
const unanswered: (() => void)[] = [];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: async ({ body }, res) => {
      const { type } = JSON.parse(body) as { type: string };
      if (type === "deposit.credited" && unanswered.length === 0) {
        await new Promise<void>((r) => unanswered.push(r));
        return;
      }
      accepted.push(type);
      res.statusCode = 204;
    },
    webhooks: (url) => [{ url: `${url}/hook`, secretEnv: "WH", events: ["*"] }],
    webhookSecrets: { WH: "secret" },
    dispatcher: { attempts: 5, backoffMs: 20, sweepIntervalMs: 100, timeoutMs: 1_000 },
  });
});
afterAll(async () => {
  for (const release of unanswered.splice(0)) release();
  await t?.cleanup();
});

const deliveryOf = async (type: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number }>(
      `SELECT d.status, d.attempts FROM api.webhook_deliveries d
         JOIN api.webhook_events e ON e.id = d.event_id WHERE e.type = $1`,
      [type],
    )
  ).rows[0];

describe("webhook attempt timeout", () => {
  it("an attempt the receiver never answers fails at the timeout and is retried, its deposit's later event after it", async () => {
    const data = { deposit_id: "9", amount: "1" };
    await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.credited",
      name: "deposit:9:credited",
      data,
    });
    await waitFor("the unanswered attempt", () => unanswered.length === 1);
    await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.orphaned",
      name: "deposit:9:orphaned",
      data,
    });
    await t.dispatcher.ring();
    await waitFor(
      "both deliveries",
      async () => (await deliveryOf("deposit.orphaned"))?.status === "delivered",
    );
    // The first attempt is still unanswered: the retry was sent because its timeout was enforced.
    expect(unanswered).toHaveLength(1);
    expect(await deliveryOf("deposit.credited")).toEqual({ status: "delivered", attempts: 2 });
    expect(accepted).toEqual(["deposit.credited", "deposit.orphaned"]);
  });
});
