/**
 * Real deliveries from the dispatcher, verified by the `standardwebhooks` package (the reference
 * verifier of the spec our headers follow), and a receiver's redirect: not followed, a failed
 * attempt that is retried and ends dead, never "delivered".
 */
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../ops/testing/wait.js";
import { emitEvent } from "./events.js";
import { createWebhookTestContext, type WebhookTestContext } from "./testing/receiver.js";

type Received = { path: string; headers: Record<string, string>; body: string };

const SPEC_SECRET = `whsec_${randomBytes(32).toString("base64")}`;
const RAW_SECRET = "a-plain-secret-configured-before-whsec";
const received: Received[] = [];
let t: WebhookTestContext;

const delivery = async (endpoint: string, eventId: string) =>
  (
    await t.ctx.db.pool.query<{ status: string; attempts: number; last_error: string | null }>(
      `SELECT status, attempts, last_error FROM api.webhook_deliveries
        WHERE endpoint = $1 AND event_id = $2`,
      [endpoint, eventId],
    )
  ).rows[0];

beforeAll(async () => {
  t = await createWebhookTestContext({
    receive: ({ path, headers, body }, res) => {
      received.push({
        path,
        headers: Object.fromEntries(
          Object.entries(headers).map(([k, v]) => [k, String(v)]),
        ) as Record<string, string>,
        body,
      });
      if (path === "/moved") {
        res.statusCode = 307;
        res.setHeader("location", `${t.receiverUrl}/elsewhere`);
      } else res.statusCode = 204;
    },
    webhooks: (url) => [
      { url: `${url}/spec`, secretEnv: "WH_SPEC", events: ["deposit.*"] },
      { url: `${url}/raw`, secretEnv: "WH_RAW", events: ["deposit.*"] },
      { url: `${url}/moved`, secretEnv: "WH_SPEC", events: ["withdrawal.*"] },
    ],
    webhookSecrets: { WH_SPEC: SPEC_SECRET, WH_RAW: RAW_SECRET },
    dispatcher: { attempts: 3, backoffMs: 20, sweepIntervalMs: 100 },
  });
});
afterAll(async () => {
  await t?.cleanup();
});

describe("Standard Webhooks deliveries", () => {
  it("are accepted by the standardwebhooks verifier (whsec_ and raw secrets)", async () => {
    const data = { deposit_id: "d1", amount: "1000" };
    const id = await emitEvent(t.ctx.db.pool, t.ctx.common.config, {
      type: "deposit.confirmed",
      name: "deposit:d1:confirmed",
      data,
    });
    const spec = await waitFor("the /spec delivery", async () =>
      received.find((r) => r.path === "/spec" && r.headers["webhook-id"] === id),
    );
    const raw = await waitFor("the /raw delivery", async () =>
      received.find((r) => r.path === "/raw" && r.headers["webhook-id"] === id),
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
    const endpoint = `${t.receiverUrl}/moved`;
    const dead = await waitFor("the redirected delivery to go dead", async () => {
      const row = await delivery(endpoint, id);
      return row?.status === "dead" ? row : undefined;
    });
    expect(dead.attempts).toBe(3);
    expect(dead.last_error).toContain("307");
    expect(received.filter((r) => r.path === "/moved")).toHaveLength(3);
    // nothing was re-posted to the Location
    expect(received.filter((r) => r.path === "/elsewhere")).toHaveLength(0);
  });
});
