/**
 * A re-drive's order check against deliveries still under way: a later event of the subject that
 * is being sent (or retried, or was committed by an emitter the re-drive raced) reaches the
 * receiver before or beside the re-driven one, so it counts as later as much as a delivered one.
 * Real HTTP receiver on loopback, Postgres and BullMQ on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../../foundation/db.js";
import { gate } from "../../ops/testing/gate.js";
import { waitFor } from "../../ops/testing/wait.js";
import { emitEvent, redriveDeliveries } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

let t: WebhookTestContext;
let url: string;
let receiverUp = false;
/** Event ids whose request the receiver holds unanswered until `release` is called. */
const held = new Map<string, () => void>();
const holdIds = new Set<string>();
/** Event ids the receiver accepted (2xx), in the order it accepted them. */
const accepted: string[] = [];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: async ({ headers }, res) => {
      const id = String(headers["webhook-id"]);
      if (receiverUp && holdIds.has(id)) {
        holdIds.delete(id);
        await new Promise<void>((r) => held.set(id, r));
      }
      if (receiverUp) accepted.push(id);
      res.statusCode = receiverUp ? 204 : 500;
    },
    webhooks: (origin) => [{ url: `${origin}/hook`, secretEnv: "WH", events: ["*"] }],
    webhookSecrets: { WH: "secret" },
    dispatcher: {
      attempts: 2,
      backoffMs: 20,
      sweepIntervalMs: 100,
      // The held request must outlast the test's steps rather than time out as a failed attempt.
      timeoutMs: 30_000,
    },
  });
  url = `${t.receiverUrl}/hook`;
});
afterAll(async () => {
  for (const release of held.values()) release();
  await t?.cleanup();
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
  await waitFor("the dead letter", async () => (await statusOf(id)) === "dead");
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
    await t.dispatcher.ring();
    await waitFor("the later event in flight", async () => held.has(broadcast));

    // The check sees no delivered later event (it is still pending): re-driven, `confirmed` would
    // be sent as soon as `broadcast` is answered, reaching the receiver after it.
    const redrive = await redriveDeliveries(t.ctx.db.pool, confirmed);
    held.get(broadcast)!();
    await waitFor("the later event", async () => (await statusOf(broadcast)) === "delivered");
    await t.dispatcher.ring();
    await waitFor("the re-drive to settle", async () =>
      ["dead", "delivered"].includes((await statusOf(confirmed)) ?? ""),
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
    const committed = gate();
    const emitting = withTransaction(t.ctx.db.pool, async (client) => {
      broadcast = await emitEvent(client, t.ctx.common.config, {
        type: "withdrawal.broadcast",
        name: "withdrawal:w-emit:broadcast:2",
        data: { withdrawal_id: "w-emit" },
      });
      await committed.wait;
    });
    await waitFor("the emitter's insert", async () => broadcast !== "");
    let settled = false;
    const redriving = redriveDeliveries(t.ctx.db.pool, confirmed).finally(() => {
      settled = true;
    });
    // Until the re-drive has decided, or is waiting on a lock (the emitter's), in this file's
    // database: pg_locks shows the whole cluster, where other files wait on locks of their own.
    await waitFor(
      "the re-drive to decide or wait",
      async () =>
        settled ||
        (
          await t.ctx.db.pool.query(
            `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          )
        ).rows.length > 0,
    );
    committed.open();
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
