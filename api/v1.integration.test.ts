import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit } from "../foundation/audit.js";
import { revokeApiKey, SCOPES } from "./apiKeys.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

let t: ApiTestContext;
beforeAll(async () => {
  t = await createApiTestContext({
    chains: [{ chainId: 31337, key: "local-a" }],
    v1: { rateLimit: { max: 1000, timeWindowMs: 60_000 } },
  });
});
afterAll(async () => {
  await t?.cleanup();
});

describe("auth", () => {
  it("refuses a request without a key, with a malformed, unknown or revoked key", async () => {
    const none = await t.call(null, { method: "GET", url: "/v1/assets" });
    expect(none.statusCode).toBe(401);
    expect(none.headers["content-type"]).toContain("application/problem+json");
    expect(none.json()).toMatchObject({ code: "AUTH_REQUIRED", status: 401 });

    const malformed = await t.call("nope", { method: "GET", url: "/v1/assets" });
    expect(malformed.json()).toMatchObject({ code: "AUTH_REQUIRED", detail: "malformed API key" });

    const forged = `cn_${t.keyRows["deposits:read"].id}_${"A".repeat(43)}`;
    expect(forged).not.toBe(t.keys["deposits:read"]);
    const unknown = await t.call(forged, { method: "GET", url: "/v1/assets" });
    expect(unknown.json()).toMatchObject({ code: "AUTH_REQUIRED", detail: "unknown API key" });

    const key = await t.newKey("leaver", ["deposits:read"]);
    expect((await t.call(key, { method: "GET", url: "/v1/assets" })).statusCode).toBe(200);
    await revokeApiKey(t.ctx.db.pool, key.split("_")[1]!);
    const revoked = await t.call(key, { method: "GET", url: "/v1/assets" });
    expect(revoked.json()).toMatchObject({ code: "AUTH_REQUIRED", detail: "revoked API key" });
  });

  it("accepts X-Api-Key too", async () => {
    const res = await t.app.inject({
      method: "GET",
      url: "/v1/assets",
      headers: { "x-api-key": t.keys["ledger:read"] },
    });
    expect(res.statusCode).toBe(200);
  });
});

describe("chains and assets", () => {
  it("lists the chain with RPC head, indexed block and lag", async () => {
    await t.ctx.db.pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES (31337, 0, '0x00')`,
    );
    const res = await t.call(t.keys["deposits:read"], { method: "GET", url: "/v1/chains" });
    expect(res.statusCode).toBe(200);
    const [chain] = res.json().chains;
    expect(chain).toMatchObject({ key: "local-a", chainId: 31337, indexed: "0" });
    expect(chain.head).toMatch(/^[0-9]+$/);
    expect(BigInt(chain.lag)).toBe(BigInt(chain.head));
  });

  it("lists the native asset", async () => {
    const res = await t.call(t.keys["withdrawals:write"], { method: "GET", url: "/v1/assets" });
    expect(res.json().assets).toEqual([
      {
        assetId: "31337:0x0000000000000000000000000000000000000000",
        chainId: 31337,
        chain: "local-a",
        address: "0x0000000000000000000000000000000000000000",
        symbol: "ETH",
        decimals: 18,
        native: true,
      },
    ]);
  });
});

describe("docs", () => {
  it("serves an OpenAPI document listing the /v1 routes", async () => {
    const res = await t.app.inject({ method: "GET", url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(Object.keys(doc.paths)).toContain("/v1/deposits/{id}");
    expect(doc.paths["/v1/withdrawals"].post.security).toEqual([{ apiKey: ["withdrawals:write"] }]);
    const docs = await t.app.inject({ method: "GET", url: "/docs" });
    expect(docs.statusCode).toBeLessThan(400);
    const page = await t.app.inject({
      method: "GET",
      url:
        docs.statusCode === 302
          ? new URL(String(docs.headers.location), "http://x/docs/").pathname
          : "/docs",
    });
    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
  });
});

describe("every /v1 route", () => {
  it("answers 401 problem+json without a key (routes taken from the OpenAPI document)", async () => {
    const doc = (await t.app.inject({ method: "GET", url: "/docs/json" })).json();
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, ops]) => Object.keys(ops).map((method) => ({ method: method.toUpperCase(), path })),
    );
    const v1 = routes.filter((r) => r.path.startsWith("/v1/"));
    expect(v1.length).toBeGreaterThanOrEqual(8);
    for (const r of v1) {
      const url = r.path.replace(/\{[^}]+\}/g, "00000000-0000-5000-8000-000000000000");
      const res = await t.call(null, {
        method: r.method as "GET",
        url,
        ...(r.method === "POST" ? { payload: {} } : {}),
      });
      expect({ route: `${r.method} ${r.path}`, status: res.statusCode }).toEqual({
        route: `${r.method} ${r.path}`,
        status: 401,
      });
      expect(res.json().code).toBe("AUTH_REQUIRED");
    }
  });
});

describe("rate limit", () => {
  it("limits each API key separately, on Redis, with a 429 problem+json", async () => {
    // Another task on the context's Redis: its failed-authentication count is the one the other
    // tests of this file add to from this address, at the context's limit.
    const app = await t.addApp({ v1: { rateLimit: { max: 3, timeWindowMs: 60_000 } } });
    const a = await t.newKey("rl-a", ["deposits:read"]);
    const b = await t.newKey("rl-b", ["deposits:read"]);
    const get = (key: string) =>
      app.inject({
        method: "GET",
        url: "/v1/assets",
        headers: { authorization: `Bearer ${key}` },
      });
    for (let i = 0; i < 3; i++) expect((await get(a)).statusCode).toBe(200);
    const limited = await get(a);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["content-type"]).toContain("application/problem+json");
    expect(limited.json()).toMatchObject({ code: "RATE_LIMITED" });
    expect((await get(b)).statusCode).toBe(200);
    const keys = await t.ctx.redis.redis.keys(`${t.ctx.redis.prefix}:ratelimit:*`);
    expect(keys.length).toBeGreaterThan(0);
  });
});

describe("scopes", () => {
  it("every route refuses each key without one of its scopes (403) and lets each with one through", async () => {
    const doc = (await t.app.inject({ method: "GET", url: "/docs/json" })).json();
    const problems: string[] = [];
    let checked = 0;
    for (const [path, ops] of Object.entries(
      doc.paths as Record<string, Record<string, { security: { apiKey: string[] }[] }>>,
    )) {
      if (!path.startsWith("/v1/")) continue;
      for (const [method, op] of Object.entries(ops)) {
        const accepted = op.security[0]!.apiKey;
        expect(accepted.length).toBeGreaterThan(0);
        const url = path.replace(/\{[^}]+\}/g, "00000000-0000-5000-8000-000000000000");
        for (const scope of SCOPES) {
          const res = await t.call(t.keys[scope], {
            method: method.toUpperCase() as "GET",
            url,
            ...(method === "post" ? { payload: {} } : {}),
          });
          const allowed = scope === "admin" || accepted.includes(scope);
          // Let through = the route itself answered (2xx, or a 4xx about the request such as 404
          // for the made-up id); a 5xx or a 429 is not "let through", it is a failure.
          const got =
            res.statusCode === 403
              ? "refused"
              : res.statusCode === 401
                ? "unauth"
                : res.statusCode >= 500 || res.statusCode === 429
                  ? "broken"
                  : "passed";
          if (
            got === "unauth" ||
            got === "broken" ||
            (allowed ? got !== "passed" : got !== "refused")
          )
            problems.push(
              `${method} ${path} with ${scope}: ${res.statusCode} ${res.body.slice(0, 120)}`,
            );
          if (got === "refused") expect(res.json().code).toBe("AUTH_SCOPE_MISSING");
          checked++;
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(SCOPES.length * 10);
  });
});

describe("audit", () => {
  it("lists entries by entity, oldest first, for admins; the log refuses updates and deletes", async () => {
    await appendAudit(t.ctx.db.pool, {
      actor: "cli",
      action: "apikey.created",
      entityType: "api_key",
      entityId: "k1",
      details: { owner: "x" },
    });
    await appendAudit(t.ctx.db.pool, {
      actor: "cli",
      action: "apikey.revoked",
      entityType: "api_key",
      entityId: "k1",
    });
    const res = await t.call(t.keys.admin, {
      method: "GET",
      url: "/v1/audit?entity_type=api_key&entity_id=k1",
    });
    expect(res.statusCode).toBe(200);
    const entries = res.json().entries;
    expect(entries.map((e: { action: string }) => e.action)).toEqual([
      "apikey.created",
      "apikey.revoked",
    ]);
    expect(entries[0]).toMatchObject({ actor: "cli", details: { owner: "x" } });
    const after = await t.call(t.keys.admin, {
      method: "GET",
      url: `/v1/audit?entity_id=k1&after=${entries[0].id}`,
    });
    expect(after.json().entries).toHaveLength(1);
    await expect(t.ctx.db.pool.query("UPDATE audit.audit_log SET actor = 'x'")).rejects.toThrow(
      /append-only/,
    );
    await expect(t.ctx.db.pool.query("DELETE FROM audit.audit_log")).rejects.toThrow(/append-only/);
  });
});

describe("reconciliation reads", () => {
  it("lists runs and answers 404 problem+json for an unknown run", async () => {
    const list = await t.call(t.keys["recon:read"], { method: "GET", url: "/v1/recon/runs" });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual({ runs: [] });
    const missing = await t.call(t.keys["recon:read"], {
      method: "GET",
      url: "/v1/recon/runs/999?format=csv",
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: "RECON_RUN_NOT_FOUND", run_id: 999 });
  });
});

describe("metrics", () => {
  it("counts /v1 requests by route and status on /metrics", async () => {
    await t.call(t.keys["deposits:read"], { method: "GET", url: "/v1/assets" });
    await t.call(null, { method: "GET", url: "/v1/assets" });
    const text = (await t.app.inject({ method: "GET", url: "/metrics" })).body;
    expect(text).toMatch(
      /custody_api_request_duration_seconds_count\{[^}]*route="\/v1\/assets"[^}]*status="200"[^}]*\} [1-9]/,
    );
    expect(text).toMatch(
      /custody_api_request_duration_seconds_count\{[^}]*route="\/v1\/assets"[^}]*status="401"[^}]*\} [1-9]/,
    );
  });
});
