/**
 * The per-key API rate limit comes from the config file (`api.rateLimit`), is validated at load
 * with the field named, and a low configured limit answers 429 RATE_LIMITED as problem+json. The
 * console's sign-in form has the failed-authentication limit of /v1: past it, 429
 * AUTH_RATE_LIMITED as problem+json, before the key is looked up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleSignIn } from "./console/testing/inject.js";
import { loadApiConfig, refusedApiConfig } from "./testing/apiConfig.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

describe("api.rateLimit in the config", () => {
  it("defaults to 600 per minute and refuses bad values naming the field", () => {
    expect(loadApiConfig(undefined)?.rateLimit).toEqual({
      max: 600,
      windowMs: 60_000,
    });
    for (const [rateLimit, field] of [
      [{ max: 0 }, "api.rateLimit.max"],
      [{ max: 1.5 }, "api.rateLimit.max"],
      [{ windowMs: 10 }, "api.rateLimit.windowMs"],
      [{ max: 5, perMinute: 5 }, "api.rateLimit"],
    ] as const) {
      const error = refusedApiConfig({ rateLimit });
      expect(error.issues.map((i) => i.field)).toEqual([`env:CUSTODY_CONFIG_JSON.${field}`]);
      expect(error.message).toContain(field);
    }
  });
});

describe("a low configured limit", () => {
  let t: ApiTestContext;
  beforeAll(async () => {
    t = await createApiTestContext({
      // The limit from the config file, read through the file schema as loadConfig reads it.
      file: { api: { rateLimit: { max: 3 } } },
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
    const signIn = async (apiKey: string) =>
      (await consoleSignIn(t.app, apiKey, { remoteAddress: "10.0.0.9" })).res;
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
