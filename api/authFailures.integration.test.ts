/**
 * Failed authentications are counted per client address across every api task: two apps on one
 * database and Redis prefix (two ECS tasks behind the balancer) share the count, so failures split
 * between them reach the limit at the configured max, not twice it; on /v1, and on the console's
 * sign-in form and SSO callback together (apart from /v1's). The count's key expires with its
 * window. When Redis does not answer, sign-in keeps working and each task limits with its own count
 * (the failures it saw before included), logged once as AUTH_LIMIT_PER_PROCESS. Real Postgres and
 * Redis; the outage is a TCP proxy in front of Redis going silent.
 */
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedis, type Redis } from "../foundation/redis.js";
import { capturedLogger } from "../ops/testing/logs.js";
import { TEST_REDIS_URL } from "../ops/testing/redis.js";
import { startTcpProxy, type TcpProxy } from "../ops/testing/tcpProxy.js";
import { waitFor } from "../ops/testing/wait.js";
import { consoleSignIn } from "./console/testing/inject.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

const OIDC = {
  issuer: "https://login.example.com",
  clientId: "custody-console",
  redirectUrl: "https://custody.example.com/console/sso/callback",
  groups: { "custody-approvers": ["withdrawals:approve"] },
};
const LIMIT = { max: 3, windowMs: 60_000 };

const badKey = (app: FastifyInstance, from: string) =>
  app.inject({
    method: "GET",
    url: "/v1/assets",
    remoteAddress: from,
    headers: { authorization: "Bearer cn_0000000000000000_nope" },
  });
const goodKey = (app: FastifyInstance, from: string, key: string) =>
  app.inject({
    method: "GET",
    url: "/v1/assets",
    remoteAddress: from,
    headers: { authorization: `Bearer ${key}` },
  });
/** An SSO callback this browser did not start: refused 400 (and counted) before the provider. */
const forgedCallback = (app: FastifyInstance, from: string) =>
  app.inject({
    method: "GET",
    url: "/console/sso/callback?code=forged&state=forged",
    remoteAddress: from,
    headers: { cookie: "cn_console_oidc=forged" },
  });

function expectApiLimited(res: LightMyRequestResponse, windowS: number) {
  expect(res.statusCode).toBe(429);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status: 429, code: "AUTH_RATE_LIMITED" });
  const retryAfter = Number(res.headers["retry-after"]);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(windowS);
}

describe("failed authentications across two api tasks", () => {
  let t: ApiTestContext;
  let a: FastifyInstance;
  let b: FastifyInstance;
  beforeAll(async () => {
    t = await createApiTestContext({
      file: { api: { console: { oidc: OIDC } } },
      v1: { authFailureLimit: LIMIT },
    });
    a = t.app;
    b = await t.addApp();
  }, 120_000);
  afterAll(async () => {
    await t?.cleanup();
  }, 120_000);

  it("/v1: failures split between the tasks reach the limit at max, and both refuse", async () => {
    const from = "10.1.0.1";
    for (const app of [a, b, a]) expect((await badKey(app, from)).statusCode).toBe(401);
    expectApiLimited(await badKey(b, from), 60);
    expectApiLimited(await badKey(a, from), 60);
    // A good key from that address waits too, on either task.
    expectApiLimited(await goodKey(b, from, t.keys.admin), 60);
    // Another address has its own count.
    expect((await badKey(b, "10.1.0.2")).statusCode).toBe(401);
    expect((await goodKey(a, "10.1.0.2", t.keys.admin)).statusCode).toBe(200);
  });

  it("/v1: a task that has not seen the address fail asks nothing, counts its first failure, then refuses", async () => {
    const from = "10.1.0.4";
    for (let i = 0; i < LIMIT.max; i++) expect((await badKey(a, from)).statusCode).toBe(401);
    expectApiLimited(await badKey(a, from), 60);
    // Task b has seen nothing from it: a good key goes through without a round trip to Redis, a bad
    // one is counted (max + 1 across two tasks: the bound is max + tasks - 1), then b refuses too.
    expect((await goodKey(b, from, t.keys.admin)).statusCode).toBe(200);
    expect((await badKey(b, from)).statusCode).toBe(401);
    expectApiLimited(await badKey(b, from), 60);
    expectApiLimited(await goodKey(b, from, t.keys.admin), 60);
  });

  it("console: the sign-in form on one task and the SSO callback on the other share one count", async () => {
    const from = "10.1.0.3";
    const form = async (app: FastifyInstance, key: string) =>
      (await consoleSignIn(app, key, { remoteAddress: from })).res;
    expect((await form(a, "cn_0000000000000000_nope")).statusCode).toBe(401);
    expect((await forgedCallback(b, from)).statusCode).toBe(400);
    expect((await form(a, "cn_0000000000000001_nope")).statusCode).toBe(401);

    const callback = await forgedCallback(b, from);
    expect(callback.statusCode).toBe(429);
    expect(callback.headers["content-type"]).toMatch(/^text\/html/);
    expect(callback.body).toContain("AUTH_RATE_LIMITED");
    expect(Number(callback.headers["retry-after"])).toBeGreaterThan(0);
    const good = await form(b, t.keys.admin);
    expectApiLimited(good, 60);
    expect(good.headers["set-cookie"]).toBeUndefined();
    // Counted apart from /v1's failures.
    expect((await badKey(a, from)).statusCode).toBe(401);
  });

  it("keeps one Redis key per address and count, expiring with the window", async () => {
    const from = "10.1.0.5";
    expect((await badKey(a, from)).statusCode).toBe(401);
    expect((await forgedCallback(b, from)).statusCode).toBe(400);
    const redis = t.ctx.redis.redis;
    const keys = (await redis.keys(`${t.ctx.redis.prefix}:*`)).filter((k) => k.endsWith(from));
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(LIMIT.windowMs);
    }
  });

  it("lets an address try again once its window has passed", async () => {
    const short = await t.addApp({ v1: { authFailureLimit: { max: 1, windowMs: 1_000 } } });
    const from = "10.1.0.6";
    expect((await badKey(short, from)).statusCode).toBe(401);
    expectApiLimited(await badKey(short, from), 1);
    await waitFor(
      "the address's 1 s window to pass",
      async () => (await badKey(short, from)).statusCode === 401,
      { timeoutMs: 10_000, everyMs: 100 },
    );
  });
});

describe("failed authentications when Redis does not answer", () => {
  let t: ApiTestContext;
  let proxy: TcpProxy;
  let viaProxy: Redis;
  let task: FastifyInstance;
  const { logger, lines } = capturedLogger();
  beforeAll(async () => {
    const target = new URL(TEST_REDIS_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    viaProxy = createRedis(proxy.urlFor(TEST_REDIS_URL));
    t = await createApiTestContext({
      v1: { authFailureLimit: LIMIT },
      configure: (ctx) => ({ ...ctx, common: { ...ctx.common, logger } }),
    });
    // This task reaches Redis through the proxy; t.app directly. Each request in the outage waits
    // out the limiter's command timeout (twice: ask, then count); 500 ms instead of the 2 s default
    // changes no decision, only how long the silence takes to notice.
    task = await t.addApp({ redis: viaProxy, v1: { limiterRedisTimeoutMs: 500 } });
  }, 120_000);
  afterAll(async () => {
    await t?.cleanup();
    viaProxy?.disconnect();
    await proxy?.close();
  }, 120_000);

  it("keeps sign-in working, limited per task at max with the failures it saw before, and logs it once", async () => {
    const from = "10.2.0.1";
    expect((await badKey(task, from)).statusCode).toBe(401);
    expect((await badKey(t.app, from)).statusCode).toBe(401);
    proxy.blackhole();
    // The shared count (2) is out of reach: this task counts its own, 1 before the outage.
    expect((await badKey(task, from)).statusCode).toBe(401);
    expect((await badKey(task, from)).statusCode).toBe(401);
    expectApiLimited(await badKey(task, from), 60);
    // Sign-in keeps working: a good key from another address is let in.
    expect((await goodKey(task, "10.2.0.2", t.keys.admin)).statusCode).toBe(200);

    const fallback = lines.filter((l) => l.code === "AUTH_LIMIT_PER_PROCESS");
    expect(fallback).toHaveLength(1);
    expect(fallback[0]).toMatchObject({ level: 40, limiter: "v1" });
  }, 60_000);
});
