/**
 * `api.trustProxy`: behind a load balancer the per-address limit of failed authentications counts
 * each client (X-Forwarded-For from a trusted proxy), not the balancer; without the option every
 * client behind it shares the balancer's count, and a forwarded header from an address not listed
 * is ignored. The option is validated at load, naming the field. Real Postgres and Redis, the app
 * through `inject` with the connection's address set.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { consoleSignIn } from "./console/testing/inject.js";
import { loadApiConfig, refusedApiConfig } from "./testing/apiConfig.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

const BALANCER = "10.0.0.1";

describe("api.trustProxy in the config", () => {
  it("defaults to false, takes true or a list of addresses and ranges, refuses the rest naming the field", () => {
    expect(loadApiConfig(undefined)?.trustProxy).toBe(false);
    for (const ok of [true, ["10.0.0.1", "10.1.0.0/16", "fd00::/8", "loopback"]])
      expect(loadApiConfig({ trustProxy: ok })?.trustProxy).toEqual(ok);
    for (const [trustProxy, field] of [
      ["yes", "api.trustProxy"],
      [1, "api.trustProxy"],
      [[], "api.trustProxy"],
      [["10.0.0.1", "10.0.0.300"], "api.trustProxy.1"],
      [["10.0.0.0/33"], "api.trustProxy.0"],
      [["lb.example.com"], "api.trustProxy.0"],
    ] as const) {
      expect(
        refusedApiConfig({ trustProxy }).issues.map((i) => i.field),
        JSON.stringify(trustProxy),
      ).toEqual([`env:CUSTODY_CONFIG_JSON.${field}`]);
    }
  });
});

/** An api test context with `api` in its config file and 2 failed authentications a minute. */
async function contextWith(api: Record<string, unknown>): Promise<ApiTestContext> {
  return createApiTestContext({
    file: { api },
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
    untrusted = await contextWith({});
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
    const signIn = async (client: string) =>
      (
        await consoleSignIn(trusted.app, "cn_0000000000000000_nope", {
          remoteAddress: BALANCER,
          headers: { "x-forwarded-for": client },
        })
      ).res;
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
