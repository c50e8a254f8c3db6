/**
 * One request log line per API call: method, route template, status, ms and the key id; never the
 * Authorization header, the key's secret or other request values.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { capturedLogger, type LogLine } from "../ops/testing/logs.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

describe("request log", () => {
  let t: ApiTestContext;
  const { logger, lines, text, clear } = capturedLogger();
  const requestLines = () => lines.filter((l) => l.msg === "request");

  beforeAll(async () => {
    t = await createApiTestContext({
      configure: (ctx) => ({ ...ctx, common: { ...ctx.common, logger } }),
    });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it("logs each call once with method, route, status, ms and key id, and no secrets", async () => {
    clear();
    const key = t.keys["ledger:read"];
    const customerId = "cust-requestlog-1";
    const ok = await t.call(key, { method: "GET", url: `/v1/customers/${customerId}/balances` });
    expect(ok.statusCode).toBe(200);
    const unauth = await t.call("cn_nope_notasecret", {
      method: "GET",
      url: `/v1/customers/${customerId}/balances`,
    });
    expect(unauth.statusCode).toBe(401);
    const missing = await t.call(key, { method: "GET", url: "/v1/no-such-route?token=hunter2" });
    expect(missing.statusCode).toBe(404);

    const got = requestLines();
    expect(got).toHaveLength(3);
    const [first, second, third] = got as [LogLine, LogLine, LogLine];
    expect(first).toMatchObject({
      method: "GET",
      route: "/v1/customers/:customerId/balances",
      status: 200,
      keyId: t.keyRows["ledger:read"].id,
      component: "api",
      level: 30,
    });
    expect(typeof first.ms).toBe("number");
    expect(first.ms as number).toBeGreaterThanOrEqual(0);
    expect(typeof first.reqId).toBe("string");
    expect(second).toMatchObject({
      method: "GET",
      route: "/v1/customers/:customerId/balances",
      status: 401,
      keyId: null,
    });
    expect(third).toMatchObject({ method: "GET", route: null, status: 404 });

    // No secret, header or request value in any line the API wrote.
    // cn_<16 hex id>_<43 base64url chars>: the secret itself may contain "_"
    const secretPart = key.slice("cn_".length + 16 + 1);
    expect(secretPart.length).toBeGreaterThan(8);
    for (const needle of [key, secretPart, "notasecret", "hunter2", "authorization", "Bearer"]) {
      expect(text()).not.toContain(needle);
    }
    expect(text()).not.toMatch(/"(headers|req|res|body)"/);
  });

  it("health probes do not write info lines", async () => {
    clear();
    expect((await t.call(null, { method: "GET", url: "/healthz" })).statusCode).toBe(200);
    const probe = await t.call(t.keys["ledger:read"], { method: "GET", url: "/v1/chains" });
    expect(probe.statusCode).toBe(200);
    expect(requestLines().map((l) => l.route)).toEqual(["/v1/chains"]);
  });
});
