/**
 * A delivery whose job runs out of attempts without the dispatcher recording its outcome (here:
 * Postgres refuses the delivery's reads for the job's whole retry schedule) is still owed: once
 * Postgres answers again the sweep starts it again and it is delivered. (BullMQ keeps a failed job's
 * id for a week; re-ringing that id alone did nothing, and the delivery stayed pending, neither
 * sent nor dead nor re-drivable.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Pool } from "../../foundation/db.js";
import { waitFor } from "../../ops/testing/wait.js";
import { webhookQueueOf } from "./dispatcher.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

const received: string[] = [];
let t: WebhookTestContext;
let databaseDown = false;

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: ({ headers }, res) => {
      received.push(String(headers["webhook-id"]));
      res.statusCode = 204;
    },
    webhooks: (url) => [{ url: `${url}/good`, secretEnv: "WH_GOOD", events: ["*"] }],
    webhookSecrets: { WH_GOOD: "good-secret" },
    // The receiver's answer may take long on a loaded machine: a request timed out is sent again
    // (at least once is the contract), and this test counts one delivery. Not longer: the sweep
    // takes a delivery as stale after its whole retry schedule (attempts x timeoutMs and backoff).
    dispatcher: { attempts: 3, backoffMs: 20, timeoutMs: 1_000, sweepIntervalMs: 100 },
    // The fault: while `databaseDown`, the dispatcher's reads of a delivery are refused as an
    // unreachable Postgres refuses them (the sweep's own read goes through, so it keeps ringing).
    dispatcherPool: (real) =>
      new Proxy(real, {
        get(target, prop, receiver) {
          if (prop === "query")
            return (text: unknown, ...rest: unknown[]) => {
              if (databaseDown && typeof text === "string" && text.includes("SELECT d.status"))
                return Promise.reject(
                  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
                    code: "ECONNREFUSED",
                  }),
                );
              return (target.query as (...a: unknown[]) => unknown).call(target, text, ...rest);
            };
          return Reflect.get(target, prop, receiver);
        },
      }) as Pool,
    start: false,
  });
});
afterAll(async () => {
  await t?.cleanup();
});

describe("webhook delivery after an outage", () => {
  it("delivers an event whose job ran out of attempts while Postgres refused its reads", async () => {
    databaseDown = true;
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:outage:confirmed",
      data: { deposit_id: "outage", amount: "1" },
    });
    t.dispatcher.start();
    // Wait until BullMQ has failed the job for good (all 3 attempts refused by "Postgres").
    const queue = t.ctx.queues.queue(webhookQueueOf(t.ctx.common.config, `${t.receiverUrl}/good`));
    const end = Date.now() + 30_000;
    while ((await queue.getFailedCount()) === 0) {
      if (Date.now() > end) throw new Error("job never failed");
      await new Promise((r) => setTimeout(r, 50));
    }
    databaseDown = false; // Postgres is back
    const delivered = async () =>
      (
        await t.ctx.db.pool.query<{ status: string }>(
          "SELECT status FROM api.webhook_deliveries WHERE event_id = $1",
          [id],
        )
      ).rows[0]!.status === "delivered";
    await waitFor("the owed delivery sent", delivered, { timeoutMs: 30_000 });
    expect(received).toEqual([id]);
  });
});
