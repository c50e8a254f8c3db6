/**
 * Which endpoints an event is delivered to: every endpoint some task is configured with (shared in
 * Postgres, api migration 0020), from when it was added on. An old task during a rolling deploy
 * that adds an endpoint emits events to it too; an endpoint removed from every task's config stops
 * getting them; and the first endpoint ever added is not sent the history of every deposit before
 * it (that is the API's). Real HTTP receiver on loopback, Postgres, BullMQ on Redis, and the
 * worker role itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../foundation/config.js";
import { createHealth } from "../../foundation/health.js";
import type { RoleHandle } from "../../foundation/roles.js";
import { waitFor } from "../../ops/testing/wait.js";
import { apiWorkerRole } from "../role.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

let t: WebhookTestContext;
/** Path and body of every request the receiver got. */
const sent: { path: string; type: string; depositId: string | undefined }[] = [];
const roles: RoleHandle[] = [];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: ({ path, body }, res) => {
      const event = JSON.parse(body) as { type: string; data: { deposit_id?: string } };
      sent.push({ path, type: event.type, depositId: event.data.deposit_id });
      res.statusCode = 204;
    },
    // The new revision's config; each test builds the old one it needs.
    webhooks: (url) => [
      { url: `${url}/hook`, secretEnv: "WH", events: ["*"] },
      { url: `${url}/added`, secretEnv: "WH", events: ["deposit.*"] },
    ],
    webhookSecrets: { WH: "secret" },
    dispatcher: { attempts: 3, backoffMs: 20, sweepIntervalMs: 100, timeoutMs: 5_000 },
    start: false,
  });
});
afterAll(async () => {
  for (const role of roles) await role.stop();
  await t?.cleanup();
});

const withWebhooks = (webhooks: Config["webhooks"]) =>
  Object.freeze({ ...t.ctx.common.config, webhooks });

const deliveriesOf = async (eventId: string) =>
  (
    await t.ctx.db.pool.query<{ endpoint: string; status: string }>(
      `SELECT endpoint, status FROM api.webhook_deliveries WHERE event_id = $1 ORDER BY endpoint`,
      [eventId],
    )
  ).rows;

describe("webhook endpoints shared by every task", () => {
  it("an old task's event during the deploy that adds an endpoint is delivered to it", async () => {
    const hook = `${t.receiverUrl}/hook`;
    const added = `${t.receiverUrl}/added`;
    // A new task runs its first sweep (it registers its endpoints)...
    await t.dispatcher.ring();
    // ...and an old task, whose config has no `added`, records a deposit's orphaning.
    const old = withWebhooks(t.ctx.common.config.webhooks.filter((w) => w.url === hook));
    const id = await emitEvent(t.ctx.db.pool, old, {
      type: "deposit.orphaned",
      name: "deposit:rolling:orphaned",
      data: { deposit_id: "rolling", amount: "1" },
    });
    // Old code: "expected [ { …(2) } ] to deeply equal [ { …(2) }, { …(2) } ]" (only /hook's):
    // the new endpoint, told the deposit was credited, never heard it was orphaned.
    expect(await deliveriesOf(id)).toEqual([
      { endpoint: added, status: "pending" },
      { endpoint: hook, status: "pending" },
    ]);
    t.dispatcher.start();
    await waitFor("both deliveries", async () =>
      (await deliveriesOf(id)).every((d) => d.status === "delivered"),
    );
    expect(sent.filter((s) => s.depositId === "rolling").map((s) => s.path)).toEqual(
      expect.arrayContaining(["/hook", "/added"]),
    );
  });

  it("an endpoint no task has registered for ten minutes gets no more events; its events filter holds", async () => {
    const gone = `${t.receiverUrl}/gone`;
    const inflows = `${t.receiverUrl}/inflows`;
    // Registered by tasks before (their config had them)...
    await t.ctx.db.pool.query(
      `INSERT INTO api.webhook_subscriptions (endpoint, pattern, seen_at)
       VALUES ($1, '*', now() - interval '11 minutes'), ($2, 'inflow.*', now())`,
      [gone, inflows],
    );
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.detected",
      name: "deposit:removed:detected",
      data: { deposit_id: "removed", amount: "1" },
    });
    // ...`gone` removed from every config 11 minutes ago; `inflows` is not given deposit events.
    expect((await deliveriesOf(id)).map((d) => d.endpoint)).toEqual([
      `${t.receiverUrl}/added`,
      `${t.receiverUrl}/hook`,
    ]);
    // Every task down for a day (the newest registration as old): an operator's CLI still
    // delivers to the endpoints the tasks had.
    await t.ctx.db.pool.query(
      "UPDATE api.webhook_subscriptions SET seen_at = seen_at - interval '1 day'",
    );
    const cli = await emitEvent(t.ctx.db.pool, withWebhooks([]), {
      type: "inflow.credited",
      name: "inflow:cli:credited",
      data: { inflow_id: "cli", amount: "1" },
    });
    expect((await deliveriesOf(cli)).map((d) => d.endpoint)).toEqual([
      `${t.receiverUrl}/hook`,
      inflows,
    ]);
  });

  it("the first endpoint added is sent the deposits from then on, not every deposit before it", async () => {
    const DEPOSIT = "0x00000000000000000000000000000000000000d1";
    const deposit = (n: number) =>
      t.ctx.db.pool.query<{ id: string }>(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index,
           position, kind, asset, from_address, to_address, amount)
         VALUES (31337, $1, $2, $3, 0, 'tx', 'native', '0x0000000000000000000000000000000000000000',
           '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', $4, 1000) RETURNING id::text`,
        [n, `0x${String(n).padStart(64, "c")}`, `0x${String(n).padStart(64, "a")}`, DEPOSIT],
      );
    await t.ctx.db.pool.query(
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
       VALUES (31337, $1, 'deposit', 'alice')`,
      [DEPOSIT],
    );
    const startWorker = async (webhooks: Config["webhooks"]) => {
      const config = withWebhooks(webhooks);
      const role = await apiWorkerRole.start({
        common: { ...t.ctx.common, config },
        pool: t.ctx.db.pool,
        redis: t.ctx.redis.redis,
        queues: t.ctx.queues,
        health: createHealth(),
        chains: config.chains,
        httpPlugins: [],
      });
      roles.push(role);
      return role;
    };
    // A year of deposits while no endpoint was configured...
    const before = (await deposit(1)).rows[0]!.id;
    const unhooked = await startWorker([]);
    await new Promise((r) => setTimeout(r, 2_500));
    await unhooked.stop();
    roles.splice(roles.indexOf(unhooked), 1);
    // ...then the first endpoint is added, and a deposit comes in.
    const first = `${t.receiverUrl}/first`;
    await startWorker([{ url: first, secretEnv: "WH", events: ["deposit.*"] }]);
    const after = (await deposit(2)).rows[0]!.id;
    await waitFor("the new deposit's event", () =>
      sent.some((s) => s.path === "/first" && s.depositId === after),
    );
    // Old code: "expected [ '1', '2' ] to deeply equal [ '2' ]": the first endpoint was sent
    // every past deposit's events.
    expect(sent.filter((s) => s.path === "/first").map((s) => s.depositId)).toEqual([after]);
    // The deposit before is told by the API (GET /v1/deposits), and its events are stored.
    const { rows } = await t.ctx.db.pool.query(
      "SELECT 1 FROM api.webhook_events WHERE payload->>'deposit_id' = $1",
      [before],
    );
    expect(rows).toHaveLength(1);
  });
});
