/**
 * The per-key API rate limit comes from the config file (`api.rateLimit`), is validated at load
 * with the field named, and a low configured limit answers 429 RATE_LIMITED as problem+json. The
 * console's sign-in form has the failed-authentication limit of /v1: past it, 429
 * AUTH_RATE_LIMITED as problem+json, before the key is looked up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { type Config, loadConfig } from "../foundation/config.js";
import { ConfigError } from "../foundation/errors.js";
import { consoleSignIn, cookieOf } from "./console/testing/inject.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

const chain = {
  key: "local",
  chainId: 31337,
  name: "local",
  rpcUrls: ["http://127.0.0.1:8545"],
  confirmations: { kind: "blocks", blocks: 2 },
  reorgWindow: 8,
  blockTimeMs: 1000,
  feeModel: "eip1559",
};
const env = (file: unknown) => ({
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/unused",
  CUSTODY_CONFIG_JSON: JSON.stringify(file),
});

describe("api.rateLimit in the config", () => {
  it("defaults to 600 per minute and refuses bad values naming the field", () => {
    expect(loadConfig(chainSchema, env({ chains: [chain] })).api?.rateLimit).toEqual({
      max: 600,
      windowMs: 60_000,
    });
    for (const [rateLimit, field] of [
      [{ max: 0 }, "api.rateLimit.max"],
      [{ max: 1.5 }, "api.rateLimit.max"],
      [{ windowMs: 10 }, "api.rateLimit.windowMs"],
      [{ max: 5, perMinute: 5 }, "api.rateLimit"],
    ] as const) {
      let error: unknown;
      try {
        loadConfig(chainSchema, env({ chains: [chain], api: { rateLimit } }));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const issues = (error as ConfigError).issues.map((i) => i.field);
      expect(issues).toEqual([`env:CUSTODY_CONFIG_JSON.${field}`]);
      expect((error as ConfigError).message).toContain(field);
    }
  });
});

describe("a low configured limit", () => {
  let t: ApiTestContext;
  beforeAll(async () => {
    t = await createApiTestContext({
      // The limit as loadConfig reads it from a file, on the test context's config.
      configure: (ctx) => {
        const { api } = loadConfig(
          chainSchema,
          env({ chains: [chain], api: { rateLimit: { max: 3 } } }),
        );
        const config: Config = Object.freeze({ ...ctx.config, ...(api ? { api } : {}) });
        return { ...ctx, config, common: { ...ctx.common, config } };
      },
      v1: { authFailureLimit: { max: 3, windowMs: 60_000 } },
    });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it("answers the 4th request of a key within the window with 429 problem+json", async () => {
    const get = (key: string) => t.call(key, { method: "GET", url: "/v1/assets" });
    const key = t.keys["deposits:read"];
    for (let i = 0; i < 3; i++) expect((await get(key)).statusCode).toBe(200);
    const limited = await get(key);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(limited.json()).toMatchObject({ status: 429, code: "RATE_LIMITED" });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    // Per key: another key still has its own 3.
    expect((await get(t.keys.admin)).statusCode).toBe(200);
  });

  it("refuses console sign-in from an address past 3 failures with 429 problem+json, even with a good key", async () => {
    const from = "10.0.0.9";
    const page = await t.app.inject({
      method: "GET",
      url: "/console/sign-in",
      remoteAddress: from,
    });
    const login = cookieOf(page.headers["set-cookie"], "cn_console_login")!;
    const signIn = (apiKey: string) =>
      t.app.inject({
        method: "POST",
        url: "/console/sign-in",
        remoteAddress: from,
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          cookie: `cn_console_login=${login}`,
        },
        payload: new URLSearchParams({ _csrf: login, apiKey }).toString(),
      });
    const sessions = async () =>
      (await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.console_sessions")).rows[0].n;
    const before = await sessions();
    for (let i = 0; i < 3; i++)
      expect((await signIn(`cn_000000000000000${i}_nope`)).statusCode).toBe(401);
    const limited = await signIn(t.keys.admin);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(limited.json()).toMatchObject({ status: 429, code: "AUTH_RATE_LIMITED" });
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect(limited.headers["set-cookie"]).toBeUndefined();
    expect(await sessions()).toBe(before);
    // Another address still signs in.
    expect((await consoleSignIn(t.app, t.keys.admin)).res.statusCode).toBe(303);
  });
});
