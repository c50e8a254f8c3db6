/**
 * Real deliveries from the dispatcher, verified by the `standardwebhooks` package (the reference
 * verifier of the spec our headers follow), and a receiver's redirect: not followed, a failed
 * attempt that is retried and ends dead, never "delivered".
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { createWebhookDispatcher, type WebhookDispatcher } from "./dispatcher.js";
import { emitEvent } from "./events.js";

type Received = { path: string; headers: Record<string, string>; body: string };

const SPEC_SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const RAW_SECRET = "a-plain-secret-configured-before-whsec";
let server: Server;
let baseUrl: string;
const received: Received[] = [];
let t: ApiTestContext;
let dispatcher: WebhookDispatcher;

function read(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    req.on("data", (c) => {
      data += c;
    });
    req.on("end", () => resolve(data));
  });
}

async function until<T>(fn: () => Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const delivery = async (endpoint: string, eventId: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number; last_error: string | null }>(
      `SELECT status, attempts, last_error FROM api.webhook_deliveries
        WHERE endpoint = $1 AND event_id = $2`,
      [endpoint, eventId],
    )
  ).rows[0];

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const body = await read(req);
    received.push({
      path: req.url ?? "",
      headers: Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, String(v)]),
      ) as Record<string, string>,
      body,
    });
    if (req.url === "/moved") {
      res.statusCode = 307;
      res.setHeader("location", `${baseUrl}/elsewhere`);
    } else res.statusCode = 204;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t = await createApiTestContext({
    configure: (ctx) => {
      const config = Object.freeze({
        ...ctx.config,
        webhooks: [
          { url: `${baseUrl}/spec`, secretEnv: "WH_SPEC", events: ["deposit.*"] },
          { url: `${baseUrl}/raw`, secretEnv: "WH_RAW", events: ["deposit.*"] },
          { url: `${baseUrl}/moved`, secretEnv: "WH_SPEC", events: ["withdrawal.*"] },
        ],
        webhookSecrets: { WH_SPEC: SPEC_SECRET, WH_RAW: RAW_SECRET },
      });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  });
  dispatcher = createWebhookDispatcher({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
    attempts: 3,
    backoffMs: 20,
    sweepIntervalMs: 100,
  });
  dispatcher.start();
});
afterAll(async () => {
  await dispatcher?.stop();
  await t?.cleanup();
  await new Promise((r) => server?.close(r));
});

describe("Standard Webhooks deliveries", () => {
  it("are accepted by the standardwebhooks verifier (whsec_ and raw secrets)", async () => {
    const data = { deposit_id: "d1", amount: "1000" };
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:d1:confirmed",
      data,
    });
    const spec = await until(
      async () => received.find((r) => r.path === "/spec" && r.headers["webhook-id"] === id),
      "the /spec delivery",
    );
    const raw = await until(
      async () => received.find((r) => r.path === "/raw" && r.headers["webhook-id"] === id),
      "the /raw delivery",
    );
    expect(spec.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(SPEC_SECRET).verify(spec.body, spec.headers)).toMatchObject({
      id,
      type: "deposit.confirmed",
      data,
    });
    expect(new Webhook(RAW_SECRET, { format: "raw" }).verify(raw.body, raw.headers)).toMatchObject({
      id,
      data,
    });
    // the wrong secret, a changed body, and a stale timestamp are refused by the same verifier
    expect(() =>
      new Webhook(`whsec_${randomBytes(32).toString("base64")}`).verify(spec.body, spec.headers),
    ).toThrow();
    expect(() => new Webhook(SPEC_SECRET).verify(`${spec.body} `, spec.headers)).toThrow();
    const stale = {
      ...spec.headers,
      "webhook-timestamp": String(Math.floor(Date.now() / 1000) - 3600),
    };
    expect(() => new Webhook(SPEC_SECRET).verify(spec.body, stale)).toThrow();
  });

  it("does not follow a redirect: a 3xx is a failed attempt, retried, then dead", async () => {
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "withdrawal.failed",
      name: "withdrawal:w-moved:failed",
      data: { withdrawal_id: "w-moved" },
    });
    const endpoint = `${baseUrl}/moved`;
    const dead = await until(async () => {
      const row = await delivery(endpoint, id);
      return row?.status === "dead" ? row : undefined;
    }, "the redirected delivery to go dead");
    expect(dead.attempts).toBe(3);
    expect(dead.last_error).toContain("307");
    expect(received.filter((r) => r.path === "/moved")).toHaveLength(3);
    // nothing was re-posted to the Location
    expect(received.filter((r) => r.path === "/elsewhere")).toHaveLength(0);
  });
});
