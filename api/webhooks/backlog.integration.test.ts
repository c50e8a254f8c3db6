/**
 * One endpoint's backlog does not hold up another's deliveries: an endpoint that hangs (each
 * attempt takes its whole timeout) while events for it keep coming has more deliveries owed than
 * one sweep rings, and the exchange's other endpoint still gets its events. Real HTTP receiver on
 * loopback, Postgres and BullMQ on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../../foundation/db.js";
import { waitFor } from "../../ops/testing/wait.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

let t: WebhookTestContext;
/** Requests to the hanging endpoint, held unanswered until cleanup. */
const hanging: (() => void)[] = [];
const delivered: string[] = [];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: async ({ path, headers }, res) => {
      if (path === "/analytics") {
        await new Promise<void>((r) => hanging.push(r));
        res.statusCode = 204;
        return;
      }
      delivered.push(String(headers["webhook-id"]));
      res.statusCode = 204;
    },
    webhooks: (url) => [
      { url: `${url}/analytics`, secretEnv: "WH_ANALYTICS", events: ["inflow.*"] },
      { url: `${url}/crediting`, secretEnv: "WH_CREDITING", events: ["deposit.*"] },
    ],
    webhookSecrets: { WH_ANALYTICS: "analytics-secret", WH_CREDITING: "crediting-secret" },
    // The hanging endpoint's attempts outlast the test: none of its deliveries is touched again.
    dispatcher: { attempts: 3, backoffMs: 20, sweepIntervalMs: 100, timeoutMs: 60_000 },
  });
});
afterAll(async () => {
  for (const release of hanging.splice(0)) release();
  await t?.cleanup();
});

describe("webhook sweep across endpoints", () => {
  it("delivers to an endpoint while another hanging one owes more deliveries than a sweep rings", async () => {
    // More than one sweep's worth (500), each its own subject, all older than the deposit's event.
    await withTransaction(t.ctx.db.pool, async (client) => {
      for (let i = 0; i < 520; i++)
        await emitEvent(client, t.ctx.common.config, {
          type: "inflow.credited",
          name: `inflow:backlog-${i}:credited`,
          data: { inflow_id: `backlog-${i}` },
        });
    });
    await waitFor("the hanging endpoint holding 8 requests", () => hanging.length === 8);
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.credited",
      name: "deposit:beside-backlog:credited",
      data: { deposit_id: "beside-backlog", amount: "1" },
    });
    await waitFor("the crediting endpoint's delivery", () => delivered.includes(id), {
      timeoutMs: 15_000,
    });
    expect(hanging).toHaveLength(8);
  });
});
