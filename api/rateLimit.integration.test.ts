/**
 * The per-key API rate limit comes from the config file (`api.rateLimit`), is validated at load
 * with the field named, and a low configured limit answers 429 RATE_LIMITED as problem+json.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { type Config, loadConfig } from "../foundation/config.js";
import { ConfigError } from "../foundation/errors.js";
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
});
