/**
 * A re-drive's order check against deliveries still under way: a later event of the subject that
 * is being sent (or retried, or was committed by an emitter the re-drive raced) reaches the
 * receiver before or beside the re-driven one, so it counts as later as much as a delivered one.
 * Real HTTP receiver on loopback, Postgres and BullMQ on Redis.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../../foundation/db.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { createWebhookDispatcher, type WebhookDispatcher } from "./dispatcher.js";
import { emitEvent, redriveDeliveries } from "./events.js";

let server: Server;
let url: string;
let t: ApiTestContext;
let dispatcher: WebhookDispatcher;
let receiverUp = false;
/** Event ids whose request the receiver holds unanswered until `release` is called. */
const held = new Map<string, () => void>();
const holdIds = new Set<string>();
/** Event ids the receiver accepted (2xx), in the order it accepted them. */
const accepted: string[] = [];

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
    await read(req);
    const id = String(req.headers["webhook-id"]);
    if (receiverUp && holdIds.has(id)) {
      holdIds.delete(id);
      await new Promise<void>((r) => held.set(id, r));
    }
    if (receiverUp) accepted.push(id);
    res.statusCode = receiverUp ? 204 : 500;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
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
    attempts: 2,
    backoffMs: 20,
    sweepIntervalMs: 100,
    // The held request must outlast the test's steps rather than time out as a failed attempt.
    timeoutMs: 30_000,
  });
  dispatcher.start();
});
afterAll(async () => {
  for (const release of held.values()) release();
  await dispatcher?.stop();
  await t?.cleanup();
  await new Promise((r) => server?.close(r));
});

const statusOf = async (eventId: string) =>
  (
    await t.ctx.db.pool.query<{ status: string }>(
      "SELECT status FROM api.webhook_deliveries WHERE event_id = $1",
      [eventId],
    )
  ).rows[0]?.status;

/** A withdrawal's `confirmed` that the receiver, down, never took: dead. */
async function deadConfirmed(withdrawalId: string): Promise<string> {
  receiverUp = false;
  const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
    type: "withdrawal.confirmed",
    name: `withdrawal:${withdrawalId}:confirmed`,
    data: { withdrawal_id: withdrawalId },
  });
  await until(async () => (await statusOf(id)) === "dead", "the dead letter");
  receiverUp = true;
  return id;
}

describe("re-drive order against deliveries under way", () => {
  it("refuses to re-drive an event while a later event of its subject is being delivered", async () => {
    const confirmed = await deadConfirmed("w-race");
    // The reorg's `broadcast` again goes out; the receiver has it in hand and has not answered.
    const broadcast = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.broadcast",
      name: "withdrawal:w-race:broadcast:2",
      data: { withdrawal_id: "w-race" },
    });
    holdIds.add(broadcast);
    await dispatcher.ring();
    await until(async () => held.has(broadcast), "the later event in flight");

    // The check sees no delivered later event (it is still pending): re-driven, `confirmed` would
    // be sent as soon as `broadcast` is answered, reaching the receiver after it.
    const redrive = await redriveDeliveries(t.ctx.db.pool, confirmed);
    held.get(broadcast)!();
    await until(async () => (await statusOf(broadcast)) === "delivered", "the later event");
    await dispatcher.ring();
    await until(
      async () => ["dead", "delivered"].includes((await statusOf(confirmed)) ?? ""),
      "the re-drive to settle",
    );
    // Nothing older reached the receiver after the newer state.
    expect(accepted.slice(accepted.indexOf(broadcast))).toEqual([broadcast]);
    expect(redrive.later).toEqual([
      {
        endpoint: url,
        eventId: broadcast,
        type: "withdrawal.broadcast",
        sequence: 2,
        status: "pending",
      },
    ]);
    expect(redrive.redriven).toEqual([]);
    expect(await statusOf(confirmed)).toBe("dead");
  });

  it("sees the later event of an emitter that commits while the re-drive waits for the subject", async () => {
    const confirmed = await deadConfirmed("w-emit");
    // An emitter of the same withdrawal, not yet committed (it holds the subject's lock), while
    // the re-drive runs: the re-drive must not decide on a view without that event.
    let broadcast = "";
    let committed!: () => void;
    const emitting = withTransaction(t.ctx.db.pool, async (client) => {
      broadcast = await emitEvent(client, t.ctx.common.config, {
        type: "withdrawal.broadcast",
        name: "withdrawal:w-emit:broadcast:2",
        data: { withdrawal_id: "w-emit" },
      });
      await new Promise<void>((r) => {
        committed = r;
      });
    });
    await until(async () => broadcast !== "", "the emitter's insert");
    let settled = false;
    const redriving = redriveDeliveries(t.ctx.db.pool, confirmed).finally(() => {
      settled = true;
    });
    // Until the re-drive has decided, or is waiting on a lock (the emitter's).
    await until(
      async () =>
        settled ||
        (
          await t.ctx.db.pool.query(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
          )
        ).rows.length > 0,
      "the re-drive to decide or wait",
    );
    committed();
    await emitting;
    const redrive = await redriving;
    expect(redrive.later).toEqual([
      {
        endpoint: url,
        eventId: broadcast,
        type: "withdrawal.broadcast",
        sequence: 2,
        status: "pending",
      },
    ]);
    expect(await statusOf(confirmed)).toBe("dead");
  });
});
