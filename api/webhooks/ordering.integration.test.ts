/**
 * Events of one deposit (or withdrawal) reach an endpoint in the order they happened, also when an
 * earlier one needs a retry: a backend applying them as they arrive must not end in the state of
 * an older event. Real HTTP receiver on loopback, Postgres and BullMQ on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../ops/testing/wait.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

let t: WebhookTestContext;
/** Types the receiver accepted (2xx), in the order it accepted them. */
const accepted: string[] = [];
let refuseNextCredited = true;

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: ({ body }, res) => {
      const { type } = JSON.parse(body) as { type: string };
      // A blip at the receiver: the credited event's first attempt fails.
      if (type === "deposit.credited" && refuseNextCredited) {
        refuseNextCredited = false;
        res.statusCode = 503;
      } else {
        accepted.push(type);
        res.statusCode = 204;
      }
    },
    webhooks: (url) => [{ url: `${url}/hook`, secretEnv: "WH", events: ["*"] }],
    webhookSecrets: { WH: "secret" },
    dispatcher: { attempts: 5, backoffMs: 1000, sweepIntervalMs: 100 },
  });
});
afterAll(async () => {
  await t?.cleanup();
});

const pending = async () =>
  (
    await t.ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM api.webhook_deliveries WHERE status = 'pending'",
    )
  ).rows[0]!.n;

describe("webhook order per deposit", () => {
  it("a deposit's orphaned event is not delivered before its credited event that is being retried", async () => {
    const data = { deposit_id: "7", amount: "1000" };
    await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.credited",
      name: "deposit:7:credited",
      data,
    });
    await t.dispatcher.ring();
    await waitFor("the credited event's failed attempt", async () => !refuseNextCredited);
    // The reorg takes it out while the credited event waits for its retry.
    await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.orphaned",
      name: "deposit:7:orphaned",
      data,
    });
    await t.dispatcher.ring();
    await waitFor("both deliveries", async () => (await pending()) === 0);
    expect(accepted).toEqual(["deposit.credited", "deposit.orphaned"]);
  });
});
