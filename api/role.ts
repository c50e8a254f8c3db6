/**
 * The api module's roles: `api` serves /v1 (pushed onto the process's HTTP server); `worker` runs the
 * webhook dispatcher (deliveries, retries, dead letters).
 */
import { createLedger } from "../ledger/index.js";
import { registerRole } from "../ops/roles.js";
import { createV1Plugin } from "./v1.js";
import { createWebhookDispatcher } from "./webhooks/dispatcher.js";
import { createWithdrawals } from "./withdrawals/service.js";
import { startWithdrawalTracker } from "./withdrawals/tracker.js";

registerRole({
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
    ctx.httpPlugins.push(
      createV1Plugin({
        common: ctx.common,
        pool: ctx.pool,
        redis: ctx.redis,
        ringWebhooks: () => webhooks.ring(),
      }),
    );
    return { stop: async () => {} };
  },
});

registerRole({
  name: "worker",
  description:
    "webhook deliveries (signed, retried, dead-lettered) and withdrawal outcomes from the signer",
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
    const tracker = startWithdrawalTracker({
      withdrawals,
      logger: ctx.common.logger.child({ component: "withdrawals" }),
    });
    return {
      async stop() {
        await tracker.stop();
        await webhooks.stop();
        await ledger.close();
      },
    };
  },
});
