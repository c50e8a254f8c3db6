/**
 * Each case of issue 14's security pass ("Measured"), on real Postgres and Redis: NUL characters and
 * lone surrogates in paths, queries and bodies, customer ids named like Object members, cursors
 * above int64, router and parser errors, 101-128 character customer ids, failed authentication per
 * client address, and Postgres unreachable. Every answer is a 4xx (or a 503 when the database is
 * away) in application/problem+json, never a 500.
 */
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealth } from "../foundation/health.js";
import { createLedger, type Ledger, transferId } from "../ledger/index.js";
import { buildApp } from "./app.js";
import { consoleSignIn } from "./console/testing/inject.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";
import { createV1Plugin } from "./v1.js";

const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const UUID = "00000000-0000-5000-8000-000000000000";

let t: ApiTestContext;
let ledger: Ledger;
let n = 0;

beforeAll(async () => {
  t = await createApiTestContext({ chains: [{ chainId: 31337, key: "local-a" }] });
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig(t.ctx.config.chains);
  await ledger.transfer({
    id: transferId("test:fund:edge"),
    assetId: NATIVE,
    debit: "custody:deposits",
    credit: "user:alice",
    amount: 10n ** 18n,
    kind: "manual",
  });
});
afterAll(async () => {
  await ledger?.close();
  await t?.cleanup();
});

type Res = Awaited<ReturnType<ApiTestContext["call"]>>;
function expectProblem(res: Res, status: number, code?: string, field?: string) {
  expect({ status: res.statusCode, body: res.body.slice(0, 300) }).toMatchObject({ status });
  expect(res.headers["content-type"]).toContain("application/problem+json");
  const body = res.json();
  expect(body.status).toBe(status);
  if (code) expect(body.code).toBe(code);
  if (field) expect(body.errors?.map((e: { field: string }) => e.field)).toContain(field);
}
const admin = () => t.keys.admin;
const post = (url: string, payload: unknown, key = admin()) =>
  t.call(key, {
    method: "POST",
    url,
    headers: { "idempotency-key": `edge-${++n}`, "content-type": "application/json" },
    payload: typeof payload === "string" ? payload : JSON.stringify(payload),
  });

describe("NUL characters and lone surrogates", () => {
  const bad = ["a\u0000b", "\ud800", "x\udc00y"];
  it("in a JSON body (withdrawal fields, approve/reject reason, redrive endpoint) → 400 naming the field", async () => {
    for (const s of bad) {
      const w = await post("/v1/withdrawals", {
        customerId: `alice${s}`,
        chain: "local-a",
        asset: "native",
        to: DEST,
        amount: "1",
      });
      expectProblem(w, 400, "VALIDATION_FAILED", "body.customerId");
      for (const action of ["approve", "reject", "cancel"]) {
        const r = await post(`/v1/withdrawals/${UUID}/${action}`, { reason: `because ${s}` });
        expectProblem(r, 400, "VALIDATION_FAILED", "body.reason");
      }
      const redrive = await post(`/v1/webhooks/dead-letters/${UUID}/redrive`, {
        endpoint: `http://x/${s}`,
      });
      expectProblem(redrive, 400, "VALIDATION_FAILED", "body.endpoint");
      // an unknown key that is itself bad text is named too
      const key = await post("/v1/withdrawals", { [`k${s}`]: 1 });
      expectProblem(key, 400, "VALIDATION_FAILED");
    }
  });

  it("in a path parameter and a query string → 400 naming the field", async () => {
    for (const encoded of ["%00", "%ED%A0%80"]) {
      const path = await t.call(admin(), {
        method: "GET",
        url: `/v1/customers/alice${encoded}/balances`,
      });
      if (encoded === "%00") expectProblem(path, 400, "VALIDATION_FAILED", "params.customerId");
      // %ED%A0%80 is not UTF-8 at all: decoded to U+FFFD or refused, never a 500
      else expect(path.statusCode).toBeLessThan(500);
      const query = await t.call(admin(), {
        method: "GET",
        url: `/v1/deposits?customer_id=alice${encoded}`,
      });
      if (encoded === "%00")
        expectProblem(query, 400, "VALIDATION_FAILED", "querystring.customer_id");
      else expect(query.statusCode).toBeLessThan(500);
    }
  });
});

describe("customer ids named like Object members", () => {
  it("read balances, transfers and deposit addresses without a 5xx", async () => {
    for (const id of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      for (const url of [
        `/v1/customers/${id}/balances`,
        `/v1/customers/${id}/transfers?asset=${NATIVE}`,
        `/v1/customers/${id}/deposit-addresses`,
        `/v1/deposits?customer_id=${id}`,
      ]) {
        const res = await t.call(admin(), { method: "GET", url });
        expect({ url, status: res.statusCode }).toEqual({ url, status: 200 });
      }
    }
  });
});

describe("cursors", () => {
  it("above int64 are a 400 naming the cursor; int64 max itself is looked up (no such transfer)", async () => {
    const url = (cursor: string) =>
      `/v1/customers/alice/transfers?asset=${NATIVE}&cursor=${cursor}`;
    expectProblem(
      await t.call(admin(), { method: "GET", url: url("9223372036854775808") }),
      400,
      "VALIDATION_FAILED",
      "querystring.cursor",
    );
    expectProblem(
      await t.call(admin(), { method: "GET", url: url("99999999999999999999") }),
      400,
      "VALIDATION_FAILED",
      "querystring.cursor",
    );
    // Within the bound: Postgres is asked for it (no overflow, no 500); it names no transfer.
    expectProblem(
      await t.call(admin(), { method: "GET", url: url("9223372036854775807") }),
      400,
      "PAGE_CURSOR_UNKNOWN",
      "querystring.cursor",
    );
  });
});

describe("router and parser errors are problem+json", () => {
  it("unknown route, bad URL, long parameter, wrong method, media type, size and JSON", async () => {
    expectProblem(
      await t.call(admin(), { method: "GET", url: "/v1/nothing-here" }),
      404,
      "NOT_FOUND",
    );
    expectProblem(await t.call(null, { method: "GET", url: "/nothing" }), 404, "NOT_FOUND");
    expectProblem(await t.call(admin(), { method: "DELETE", url: "/v1/withdrawals" }), 404);
    expectProblem(
      await t.call(admin(), { method: "GET", url: "/v1/customers/%E0%A4%A/balances" }),
      400,
      "MALFORMED_URL",
    );
    expectProblem(
      await t.call(admin(), { method: "GET", url: `/v1/customers/${"a".repeat(3000)}/balances` }),
      414,
      "URI_TOO_LONG",
    );
    expectProblem(
      await t.call(admin(), {
        method: "POST",
        url: "/v1/withdrawals",
        headers: { "idempotency-key": "edge-media", "content-type": "application/xml" },
        payload: "<a/>",
      }),
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    );
    expectProblem(
      await post("/v1/withdrawals", `{"a":"${"x".repeat(70_000)}"}`),
      413,
      "BODY_TOO_LARGE",
    );
    expectProblem(await post("/v1/withdrawals", "{"), 400, "MALFORMED_JSON");
    expectProblem(await post("/v1/withdrawals", '{"__proto__": {"x": 1}}'), 400);
    expectProblem(await post("/v1/withdrawals", '{"constructor": {"prototype": {}}}'), 400);
  });

  it("a body that is not JSON is 415 on every /v1 POST; no body, and the console's forms, still go through", async () => {
    const doc = (await t.call(null, { method: "GET", url: "/docs/json" })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const posts = Object.entries(doc.paths)
      .filter(([p, ops]) => p.startsWith("/v1/") && ops.post)
      .map(([p]) => p.replace(/\{[^}]+\}/g, UUID));
    expect(posts.length).toBeGreaterThanOrEqual(10);
    const answers: string[] = [];
    for (const url of posts)
      for (const [type, payload] of [
        ["text/plain", "amount=1"],
        ["text/plain; charset=utf-8", '{"reason":"x"}'],
        ["text/csv", "a,b"],
      ] as const) {
        const res = await t.call(admin(), {
          method: "POST",
          url,
          headers: { "idempotency-key": `edge-${++n}`, "content-type": type },
          payload,
        });
        answers.push(`${url} ${type}: ${res.statusCode} ${res.json().code}`);
      }
    expect(answers.filter((a) => !a.endsWith(": 415 UNSUPPORTED_MEDIA_TYPE"))).toEqual([]);
    // A POST whose body is optional, sent with none (no Content-Type): it reaches its route.
    expectProblem(
      await t.call(admin(), {
        method: "POST",
        url: `/v1/withdrawals/${UUID}/cancel`,
        headers: { "idempotency-key": `edge-${++n}` },
      }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    // The console's sign-in form (application/x-www-form-urlencoded) is parsed and signs in.
    const { res, session } = await consoleSignIn(t.app, admin());
    expect(res.statusCode).toBe(303);
    expect(session).toBeTruthy();
  });

  it("the framework's other refusals answer under stable codes, never its own FST_ codes", async () => {
    // QUERY without a Content-Type: refused before routing, on any path.
    const query = await t.call(admin(), { method: "QUERY", url: "/v1/audit" });
    expectProblem(query, 400, "CONTENT_TYPE_MISSING", "headers.content-type");
    // The API document's static assets (/docs): a non-canonical path, a range past the end, a
    // failed precondition.
    expectProblem(
      await t.call(null, { method: "GET", url: "/docs/static//index.css" }),
      403,
      "PATH_FORBIDDEN",
    );
    expectProblem(
      await t.call(null, {
        method: "GET",
        url: "/docs/static/index.css",
        headers: { range: "bytes=99999999-" },
      }),
      416,
      "RANGE_NOT_SATISFIABLE",
    );
    expectProblem(
      await t.call(null, {
        method: "GET",
        url: "/docs/static/index.css",
        headers: { "if-match": '"not-this"' },
      }),
      412,
      "PRECONDITION_FAILED",
    );
    // The asset itself is served (the refusals above are about the request, not a missing file).
    const css = await t.call(null, { method: "GET", url: "/docs/static/index.css" });
    expect(css.statusCode).toBe(200);
  });

  it("customer ids of 101-128 characters are served, 129 are refused by the schema", async () => {
    for (const len of [101, 128]) {
      const res = await t.call(admin(), {
        method: "GET",
        url: `/v1/customers/${"c".repeat(len)}/balances`,
      });
      expect({ len, status: res.statusCode }).toEqual({ len, status: 200 });
    }
    // 128 non-ASCII characters, percent-encoded (6 bytes each), still reach the route
    const wide = await t.call(admin(), {
      method: "GET",
      url: `/v1/customers/${encodeURIComponent("é".repeat(128))}/balances`,
    });
    expect(wide.statusCode).toBe(200);
    expectProblem(
      await t.call(admin(), { method: "GET", url: `/v1/customers/${"c".repeat(129)}/balances` }),
      400,
      "VALIDATION_FAILED",
      "params.customerId",
    );
  });
});

describe("failed authentication", () => {
  it("is rate limited per client address, before any key lookup", async () => {
    const app = await buildApp({
      common: t.ctx.common,
      health: createHealth(),
      plugins: [
        createV1Plugin({
          common: t.ctx.common,
          pool: t.ctx.db.pool,
          redis: t.ctx.redis.redis,
          authFailureLimit: { max: 5, windowMs: 60_000 },
        }),
      ],
    });
    try {
      const from = (ip: string, key: string | null) =>
        app.inject({
          method: "GET",
          url: "/v1/assets",
          remoteAddress: ip,
          headers: key ? { authorization: `Bearer ${key}` } : {},
        });
      for (let i = 0; i < 5; i++)
        expectProblem(await from("10.0.0.1", "cn_bad"), 401, "AUTH_REQUIRED");
      const limited = await from("10.0.0.1", "cn_bad");
      expectProblem(limited, 429, "AUTH_RATE_LIMITED");
      expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
      // even a good key from that address waits: the address is refused before any lookup
      expectProblem(await from("10.0.0.1", admin()), 429, "AUTH_RATE_LIMITED");
      // other addresses are unaffected
      expectProblem(await from("10.0.0.2", "cn_bad"), 401, "AUTH_REQUIRED");
      expect((await from("10.0.0.2", admin())).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe("Postgres unreachable", () => {
  it("answers 503 DATABASE_UNAVAILABLE with Retry-After, and recovers", async () => {
    // A TCP proxy in front of the test database that can be cut: the api's own pool goes through it.
    const target = new URL(t.ctx.db.url);
    const sockets = new Set<Socket>();
    let up = true;
    const proxy: Server = createServer((client) => {
      if (!up) return client.destroy();
      const upstream = connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const url = new URL(t.ctx.db.url);
    url.host = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const pool = new pg.Pool({ connectionString: url.toString(), connectionTimeoutMillis: 2000 });
    pool.on("error", () => {});
    const app = await buildApp({
      common: t.ctx.common,
      health: createHealth(),
      plugins: [createV1Plugin({ common: t.ctx.common, pool, redis: t.ctx.redis.redis })],
    });
    try {
      const ask = () =>
        app.inject({
          method: "GET",
          url: "/v1/assets",
          headers: { authorization: `Bearer ${admin()}` },
        });
      expect((await ask()).statusCode).toBe(200);
      up = false;
      for (const s of sockets) s.destroy();
      const down = await ask();
      expectProblem(down, 503, "DATABASE_UNAVAILABLE");
      expect(down.headers["retry-after"]).toBe("5");
      const post503 = await app.inject({
        method: "POST",
        url: "/v1/withdrawals",
        headers: { authorization: `Bearer ${admin()}`, "idempotency-key": "edge-db-down" },
        payload: { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: "1" },
      });
      expectProblem(post503, 503, "DATABASE_UNAVAILABLE");
      up = true;
      const deadline = Date.now() + 30_000;
      let res = await ask();
      while (res.statusCode !== 200) {
        if (Date.now() > deadline)
          throw new Error(`still ${res.statusCode} after the database came back`);
        await new Promise((r) => setTimeout(r, 100));
        res = await ask();
      }
    } finally {
      await app.close();
      await pool.end().catch(() => {});
      await new Promise((r) => proxy.close(r));
    }
  });
});
