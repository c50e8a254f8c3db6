/**
 * Events of one deposit (or withdrawal) reach an endpoint in the order they happened, also when an
 * earlier one needs a retry: a backend applying them as they arrive must not end in the state of
 * an older event. Real HTTP receiver on loopback, Postgres and BullMQ on Redis.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { createWebhookDispatcher, type WebhookDispatcher } from "./dispatcher.js";
import { emitEvent } from "./events.js";

let server: Server;
let t: ApiTestContext;
let dispatcher: WebhookDispatcher;
/** Types the receiver accepted (2xx), in the order it accepted them. */
const accepted: string[] = [];
let refuseNextCredited = true;

function read(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    req.on("data", (c) => {
      data += c;
    });
    req.on("end", () => resolve(data));
  });
}

async function until(cond: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const { type } = JSON.parse(await read(req)) as { type: string };
    // A blip at the receiver: the credited event's first attempt fails.
    if (type === "deposit.credited" && refuseNextCredited) {
      refuseNextCredited = false;
      res.statusCode = 503;
    } else {
      accepted.push(type);
      res.statusCode = 204;
    }
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  t = await createApiTestContext({
    configure: (ctx) => {
      const config = Object.freeze({
        ...ctx.config,
        webhooks: [{ url, secretEnv: "WH", events: ["*"] }],
        webhookSecrets: { WH: "secret" },
      });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  });
  dispatcher = createWebhookDispatcher({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
    attempts: 5,
    backoffMs: 1000,
    sweepIntervalMs: 100,
  });
  dispatcher.start();
});
afterAll(async () => {
  await dispatcher?.stop();
  await t?.cleanup();
  await new Promise((r) => server?.close(r));
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
    await dispatcher.ring();
    await until(async () => !refuseNextCredited, "the credited event's failed attempt");
    // The reorg takes it out while the credited event waits for its retry.
    await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.orphaned",
      name: "deposit:7:orphaned",
      data,
    });
    await dispatcher.ring();
    await until(async () => (await pending()) === 0, "both deliveries");
    expect(accepted).toEqual(["deposit.credited", "deposit.orphaned"]);
  });
});
