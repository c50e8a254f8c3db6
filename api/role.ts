/**
 * The api module's roles: `api` serves /v1 (pushed onto the process's HTTP server); `worker` runs the
 * webhook dispatcher (deliveries, retries, dead letters).
 */
import { registerRole } from "../ops/roles.js";
import { createV1Plugin } from "./v1.js";
import { createWebhookDispatcher } from "./webhooks/dispatcher.js";

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
  description: "webhook deliveries (signed, retried with backoff, dead-lettered)",
  async start(ctx) {
    const webhooks = createWebhookDispatcher({
      common: ctx.common,
      pool: ctx.pool,
      queues: ctx.queues,
    });
    webhooks.start();
    return { stop: () => webhooks.stop() };
  },
});
