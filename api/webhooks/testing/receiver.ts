/**
 * For webhook integration tests: an exchange's receiver as a real HTTP server on loopback (each test
 * decides how it answers), the api test context configured to deliver to it, and a dispatcher on
 * quick retries. `cleanup` stops the dispatcher, the context and the receiver.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "../../../foundation/config.js";
import type { Pool } from "../../../foundation/db.js";
import { type ApiTestContext, createApiTestContext } from "../../testing/apiTestContext.js";
import {
  createWebhookDispatcher,
  type WebhookDispatcher,
  type WebhookDispatcherOptions,
} from "../dispatcher.js";

/** One delivery as the receiver got it (the whole body read). */
export type ReceivedDelivery = { path: string; headers: IncomingHttpHeaders; body: string };

export type WebhookTestContext = ApiTestContext & {
  /** The receiver's origin, `http://127.0.0.1:<port>`: endpoints are paths under it. */
  receiverUrl: string;
  dispatcher: WebhookDispatcher;
};

export type WebhookTestOptions = {
  /**
   * Answers one delivery: sets `res.statusCode` (and any header); the response is ended once it
   * returns, so holding it open is awaiting here.
   */
  receive: (delivery: ReceivedDelivery, res: ServerResponse) => void | Promise<void>;
  /** The configured endpoints, under the receiver's origin, and the secrets they name. */
  webhooks: (receiverUrl: string) => Config["webhooks"];
  webhookSecrets: Config["webhookSecrets"];
  dispatcher: Omit<WebhookDispatcherOptions, "common" | "pool" | "queues">;
  /** The pool the dispatcher reads through (e.g. one that refuses reads as an outage would). */
  dispatcherPool?: (pool: Pool) => Pool;
  /** Start the dispatcher now (default); a test that starts it later passes false. */
  start?: boolean;
};

export async function createWebhookTestContext(
  options: WebhookTestOptions,
): Promise<WebhookTestContext> {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    await options.receive({ path: req.url ?? "", headers: req.headers, body }, res);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const closeServer = () => new Promise((r) => server.close(r));
  const receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let t: ApiTestContext;
  try {
    t = await createApiTestContext({
      configure: (ctx) => {
        const config = Object.freeze({
          ...ctx.config,
          webhooks: options.webhooks(receiverUrl),
          webhookSecrets: options.webhookSecrets,
        });
        return { ...ctx, config, common: { ...ctx.common, config } };
      },
    });
  } catch (error) {
    await closeServer();
    throw error;
  }
  const dispatcher = createWebhookDispatcher({
    common: t.ctx.common,
    pool: options.dispatcherPool ? options.dispatcherPool(t.ctx.db.pool) : t.ctx.db.pool,
    queues: t.ctx.queues,
    ...options.dispatcher,
  });
  if (options.start ?? true) dispatcher.start();
  return {
    ...t,
    receiverUrl,
    dispatcher,
    async cleanup() {
      await dispatcher.stop();
      await t.cleanup();
      await closeServer();
    },
  };
}
