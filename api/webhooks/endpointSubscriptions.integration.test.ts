/**
 * Which endpoints an event is delivered to: every endpoint some task is configured with (shared in
 * Postgres, api migration 0020), from when it was added on. An old task during a rolling deploy
 * that adds an endpoint emits events to it too; an endpoint removed from every task's config stops
 * getting them once the last task that had it has stopped, and what it was owed is dead-lettered;
 * and the first endpoint ever added is not sent the history of every deposit before
 * it (that is the API's). Real HTTP receiver on loopback, Postgres, BullMQ on Redis, and the
 * worker role itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../foundation/config.js";
import { createHealth } from "../../foundation/health.js";
import type { RoleHandle } from "../../foundation/roles.js";
import { waitFor } from "../../ops/testing/wait.js";
import { apiWorkerRole } from "../role.js";
import { createWebhookDispatcher } from "./dispatcher.js";
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

/** A task on a config with these endpoints: its dispatcher, its sweeps rung by the test. */
const task = (webhooks: Config["webhooks"]) =>
  createWebhookDispatcher({
    common: { ...t.ctx.common, config: withWebhooks(webhooks) },
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
  });

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

  it("an endpoint a deploy removed gets no more events once the last task that had it stopped; what it was owed is dead-lettered with why", async () => {
    const hook = `${t.receiverUrl}/hook`;
    const removed = `${t.receiverUrl}/removed-by-deploy`;
    const was = [
      { url: hook, secretEnv: "WH", events: ["*" as const] },
      { url: removed, secretEnv: "WH", events: ["*" as const] },
    ];
    // A task on the old config runs (its first sweep registers its endpoints) and emits...
    const old = task(was);
    await old.ring();
    const owed = await emitEvent(t.ctx.db.pool, withWebhooks(was), {
      type: "deposit.detected",
      name: "deposit:owed-removed:detected",
      data: { deposit_id: "owed-removed", amount: "1" },
    });
    // ...the deploy that removes the endpoint starts a new task and stops the old one.
    const first = task(t.ctx.common.config.webhooks);
    await first.ring();
    await old.stop();
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.detected",
      name: "deposit:after-removal:detected",
      data: { deposit_id: "after-removal", amount: "1" },
    });
    // before the fix: "expected [ …(3) ] to deeply equal [ …(2) ]": the removed endpoint was
    // still given events for ten minutes after the last task that had it stopped.
    expect((await deliveriesOf(id)).map((d) => d.endpoint)).toEqual([
      `${t.receiverUrl}/added`,
      hook,
    ]);
    // What it was owed before (a minute ago at least) no task will send: dead-lettered, with why.
    await t.ctx.db.pool.query(
      `UPDATE api.webhook_deliveries SET updated_at = now() - interval '2 minutes'
        WHERE event_id = $1 AND endpoint = $2`,
      [owed, removed],
    );
    const second = task(t.ctx.common.config.webhooks);
    await second.ring();
    const { rows } = await t.ctx.db.pool.query(
      "SELECT status, last_error FROM api.webhook_deliveries WHERE event_id = $1 AND endpoint = $2",
      [owed, removed],
    );
    // before the fix: "expected { status: 'pending', last_error: null } to deeply equal …": it
    // waited an hour untouched, then went dead as "not configured".
    expect(rows[0]).toEqual({
      status: "dead",
      last_error: `endpoint ${removed} was removed from every task's config`,
    });
    await first.stop();
    await second.stop();
  });

  it("a deploy that stops every task first: an operator's CLI meanwhile has the endpoints of the tasks before, the tasks after drop the removed one", async () => {
    const hook = `${t.receiverUrl}/hook`;
    const removed = `${t.receiverUrl}/removed-while-down`;
    // Only the tasks of this test run (the others' rows as if they had stopped long ago).
    await t.ctx.db.pool.query("DELETE FROM api.webhook_task_subscriptions");
    const old = task([
      { url: hook, secretEnv: "WH", events: ["*"] },
      { url: removed, secretEnv: "WH", events: ["*"] },
    ]);
    await old.ring();
    await old.stop();
    const cli = (name: string) =>
      emitEvent(t.ctx.db.pool, withWebhooks([]), {
        type: "withdrawal.approved",
        name,
        data: { withdrawal_id: name, amount: "1" },
      });
    // The last task to stop kept its endpoints.
    expect((await deliveriesOf(await cli("while-down"))).map((d) => d.endpoint)).toEqual([
      hook,
      removed,
    ]);
    // A task on the new config starts: the removed endpoint is given nothing more.
    const next = task([{ url: hook, secretEnv: "WH", events: ["*"] }]);
    await next.ring();
    expect((await deliveriesOf(await cli("after-restart"))).map((d) => d.endpoint)).toEqual([hook]);
    await next.stop();
  });

  it("an endpoint no task has registered for ten minutes gets no more events; its events filter holds", async () => {
    const gone = `${t.receiverUrl}/gone`;
    const inflows = `${t.receiverUrl}/inflows`;
    // Registered by tasks before (their config had them); the task that had `gone` crashed...
    await t.ctx.db.pool.query(
      `INSERT INTO api.webhook_task_subscriptions (task, endpoint, pattern, seen_at)
       VALUES ('crashed', $1, '*', now() - interval '11 minutes'), ('other', $2, 'inflow.*', now())`,
      [gone, inflows],
    );
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.detected",
      name: "deposit:removed:detected",
      data: { deposit_id: "removed", amount: "1" },
    });
    // ...11 minutes ago; `inflows` is not given deposit events.
    expect((await deliveriesOf(id)).map((d) => d.endpoint)).toEqual([
      `${t.receiverUrl}/added`,
      `${t.receiverUrl}/hook`,
    ]);
    // Every task down for a day (the newest registration as old): an operator's CLI still
    // delivers to the endpoints the tasks had.
    await t.ctx.db.pool.query(
      "UPDATE api.webhook_task_subscriptions SET seen_at = seen_at - interval '1 day'",
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
