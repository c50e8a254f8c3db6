/**
 * `api.trustProxy`: behind a load balancer the per-address limit of failed authentications counts
 * each client (X-Forwarded-For from a trusted proxy), not the balancer; without the option every
 * client behind it shares the balancer's count, and a forwarded header from an address not listed
 * is ignored. The option is validated at load, naming the field. Real Postgres and Redis, the app
 * through `inject` with the connection's address set.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { type Config, loadConfig } from "../foundation/config.js";
import { ConfigError } from "../foundation/errors.js";
import { cookieOf } from "./console/testing/inject.js";
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
const env = (api: unknown) => ({
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/unused",
  CUSTODY_CONFIG_JSON: JSON.stringify({ chains: [chain], ...(api ? { api } : {}) }),
});

const BALANCER = "10.0.0.1";

describe("api.trustProxy in the config", () => {
  it("defaults to false, takes true or a list of addresses and ranges, refuses the rest naming the field", () => {
    expect(loadConfig(chainSchema, env(undefined)).api?.trustProxy).toBe(false);
    for (const ok of [true, ["10.0.0.1", "10.1.0.0/16", "fd00::/8", "loopback"]])
      expect(loadConfig(chainSchema, env({ trustProxy: ok })).api?.trustProxy).toEqual(ok);
    for (const [trustProxy, field] of [
      ["yes", "api.trustProxy"],
      [1, "api.trustProxy"],
      [[], "api.trustProxy"],
      [["10.0.0.1", "10.0.0.300"], "api.trustProxy.1"],
      [["10.0.0.0/33"], "api.trustProxy.0"],
      [["lb.example.com"], "api.trustProxy.0"],
    ] as const) {
      let error: unknown;
      try {
        loadConfig(chainSchema, env({ trustProxy }));
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(trustProxy)).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues.map((i) => i.field)).toEqual([
        `env:CUSTODY_CONFIG_JSON.${field}`,
      ]);
    }
  });
});

/** An api test context with `api` as loadConfig reads it and 2 failed authentications a minute. */
async function contextWith(api: unknown): Promise<ApiTestContext> {
  return createApiTestContext({
    configure: (ctx) => {
      const loaded = loadConfig(chainSchema, env(api)).api;
      const config: Config = Object.freeze({ ...ctx.config, ...(loaded ? { api: loaded } : {}) });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
    v1: { authFailureLimit: { max: 2, windowMs: 60_000 } },
  });
}

/** A request with a bad key from `client` (X-Forwarded-For) through the connection `from`. */
const badKey = (t: ApiTestContext, from: string, client: string) =>
  t.app.inject({
    method: "GET",
    url: "/v1/assets",
    remoteAddress: from,
    headers: { authorization: "Bearer cn_0000000000000000_nope", "x-forwarded-for": client },
  });

describe("failed authentications behind a load balancer", () => {
  let trusted: ApiTestContext;
  let untrusted: ApiTestContext;
  beforeAll(async () => {
    trusted = await contextWith({ trustProxy: [BALANCER] });
    untrusted = await contextWith(undefined);
  }, 120_000);
  afterAll(async () => {
    await trusted?.cleanup();
    await untrusted?.cleanup();
  }, 120_000);

  it("with the balancer trusted, two clients behind it are limited separately", async () => {
    for (let i = 0; i < 2; i++)
      expect((await badKey(trusted, BALANCER, "203.0.113.5")).statusCode).toBe(401);
    const limited = await badKey(trusted, BALANCER, "203.0.113.5");
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toMatchObject({ code: "AUTH_RATE_LIMITED" });
    // The other client behind the same balancer still has its own 2.
    expect((await badKey(trusted, BALANCER, "203.0.113.6")).statusCode).toBe(401);
    expect(
      (
        await trusted.call(trusted.keys.admin, {
          method: "GET",
          url: "/v1/assets",
          remoteAddress: BALANCER,
          headers: { "x-forwarded-for": "203.0.113.7" },
        })
      ).statusCode,
    ).toBe(200);
    // A forwarded header from an address not listed is ignored: counted as that address.
    for (const client of ["198.51.100.1", "198.51.100.2"])
      expect((await badKey(trusted, "10.0.0.66", client)).statusCode).toBe(401);
    expect((await badKey(trusted, "10.0.0.66", "198.51.100.3")).statusCode).toBe(429);
  });

  it("with the balancer trusted, the console's sign-in limit counts each client too", async () => {
    const signIn = async (client: string) => {
      const headers = { "x-forwarded-for": client };
      const page = await trusted.app.inject({
        method: "GET",
        url: "/console/sign-in",
        remoteAddress: BALANCER,
        headers,
      });
      const login = cookieOf(page.headers["set-cookie"], "cn_console_login")!;
      return trusted.app.inject({
        method: "POST",
        url: "/console/sign-in",
        remoteAddress: BALANCER,
        headers: {
          ...headers,
          "content-type": "application/x-www-form-urlencoded",
          cookie: `cn_console_login=${login}`,
        },
        payload: new URLSearchParams({
          _csrf: login,
          apiKey: "cn_0000000000000000_nope",
        }).toString(),
      });
    };
    for (let i = 0; i < 2; i++) expect((await signIn("203.0.113.8")).statusCode).toBe(401);
    expect((await signIn("203.0.113.8")).statusCode).toBe(429);
    expect((await signIn("203.0.113.9")).statusCode).toBe(401);
  });

  it("without the option, every client behind the balancer shares its limit", async () => {
    for (let i = 0; i < 2; i++)
      expect((await badKey(untrusted, BALANCER, "203.0.113.5")).statusCode).toBe(401);
    const other = await badKey(untrusted, BALANCER, "203.0.113.6");
    expect(other.statusCode).toBe(429);
    expect(other.json()).toMatchObject({ code: "AUTH_RATE_LIMITED" });
  });
});
