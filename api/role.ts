/**
 * The api module's roles (listed in ops/roles.ts): `apiRole` serves /v1 (pushed onto the process's
 * HTTP server); `apiWorkerRole`, its part of the `worker` role, runs the webhook dispatcher
 * (deliveries, retries, dead letters) and follows withdrawal outcomes.
 */

import { startLoop } from "../foundation/loop.js";
import type { RoleDefinition } from "../foundation/roles.js";
import { createLedger } from "../ledger/index.js";
import { TX_OUTCOMES_QUEUE, type TxOutcomeJob } from "../signer/index.js";
import { createV1Plugin } from "./v1.js";
import { produceDepositEvents } from "./webhooks/depositEvents.js";
import { createWebhookDispatcher } from "./webhooks/dispatcher.js";
import { createWithdrawals } from "./withdrawals/service.js";

export const apiRole: RoleDefinition = {
  name: "api",
  description:
    "the /v1 API (auth, idempotency, rate limits, deposits, withdrawals, webhooks admin)",
  async start(ctx) {
    // Only the ring (enqueue pending deliveries) runs here; delivery is the worker's.
    const webhooks = createWebhookDispatcher({
      common: ctx.common,
      pool: ctx.pool,
      queues: ctx.queues,
    });
    // Its endpoints are registered for every task's emitters before it takes a request (an old
    // task's events reach an endpoint a deploy adds: events.ts); the ring's sweeps keep them so,
    // and its stop takes them away. Without Postgres now, the first ring registers them.
    await webhooks
      .register()
      .catch((err) =>
        ctx.common.logger.warn({ msg: "could not register the webhook endpoints at start", err }),
      );
    ctx.httpPlugins.push(
      createV1Plugin({
        common: ctx.common,
        pool: ctx.pool,
        redis: ctx.redis,
        ringWebhooks: () => webhooks.ring(),
      }),
    );
    return { stop: () => webhooks.stop() };
  },
};

export const apiWorkerRole: RoleDefinition = {
  name: "worker",
  description:
    "webhooks (deposit events, signed deliveries, retries, dead letters) and withdrawal outcomes",
  async start(ctx) {
    const webhooks = createWebhookDispatcher({
      common: ctx.common,
      pool: ctx.pool,
      queues: ctx.queues,
    });
    webhooks.start();
    const ledger = createLedger({ common: ctx.common, pool: ctx.pool });
    const withdrawals = createWithdrawals({
      common: ctx.common,
      pool: ctx.pool,
      ledger,
      ringWebhooks: () => webhooks.ring(),
    });
    const logger = ctx.common.logger.child({ component: "api-worker" });
    // The signer's request rows are the truth for withdrawals in flight, so this polls them. The
    // tx-outcomes doorbell only makes a final outcome act at once; it is consumed here (sweeps poll
    // their own rows) so its jobs complete and leave Redis instead of piling up.
    const outcomes = ctx.queues.worker<TxOutcomeJob>(
      TX_OUTCOMES_QUEUE,
      async (job) => {
        if (job.data.kind === "withdrawal") await withdrawals.syncOutcomes();
      },
      { concurrency: 1 },
    );
    const loops = [
      startLoop({
        name: "withdrawal outcomes",
        intervalMs: 1000,
        logger,
        fn: () => withdrawals.syncOutcomes(),
      }),
    ];
    // With no endpoint configured too: the events are stored as things happen, and an endpoint
    // added later is sent those from then on. Produced only once one was, the first endpoint was
    // sent the events of every deposit ever made (the API tells history: GET /v1/deposits).
    loops.push(
      startLoop({
        name: "deposit events",
        intervalMs: 1000,
        logger,
        fn: async () => {
          if ((await produceDepositEvents({ common: ctx.common, pool: ctx.pool })) > 0)
            await webhooks.ring();
        },
      }),
    );
    return {
      async stop() {
        await outcomes.close();
        await Promise.all(loops.map((l) => l.stop()));
        await webhooks.stop();
        await ledger.close();
      },
    };
  },
};
