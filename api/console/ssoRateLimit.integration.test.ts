/**
 * The console's SSO callback counts failed sign-ins per client address with the API-key sign-in
 * form: past the limit it answers 429 AUTH_RATE_LIMITED (the refusal page, Retry-After, the flow
 * cookie cleared) before reading the response, and the form is refused too; another address is
 * not. The provider is never reached (every callback here fails before the code exchange). Real
 * Postgres and Redis, the app through `inject`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { consoleSignIn } from "./testing/inject.js";

const OIDC = {
  issuer: "https://login.example.com",
  clientId: "custody-console",
  redirectUrl: "https://custody.example.com/console/sso/callback",
  groups: { "custody-approvers": ["withdrawals:approve"] },
};

describe("failed SSO sign-ins per address", () => {
  let t: ApiTestContext;
  beforeAll(async () => {
    t = await createApiTestContext({
      file: { api: { console: { oidc: OIDC } } },
      v1: { authFailureLimit: { max: 3, windowMs: 60_000 } },
    });
  }, 120_000);
  afterAll(async () => {
    await t?.cleanup();
  }, 120_000);

  const callback = (from: string) =>
    t.app.inject({
      method: "GET",
      url: "/console/sso/callback?code=forged&state=forged",
      remoteAddress: from,
      // A flow cookie that is not one (not base64 JSON): refused as a sign-in never started.
      headers: { cookie: "cn_console_oidc=forged" },
    });

  it("answers 429 with the refusal page and Retry-After past the limit, shared with the sign-in form", async () => {
    const from = "10.0.0.7";
    for (let i = 0; i < 3; i++) {
      const res = await callback(from);
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain("CONSOLE_OIDC_STATE");
    }
    const limited = await callback(from);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["content-type"]).toMatch(/^text\/html/);
    expect(limited.body).toContain("AUTH_RATE_LIMITED");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect(String(limited.headers["set-cookie"])).toMatch(/^cn_console_oidc=; .*Max-Age=0/);

    // The API-key sign-in form from that address is past the same limit, a good key included.
    const form = (await consoleSignIn(t.app, t.keys.admin, { remoteAddress: from })).res;
    expect(form.statusCode).toBe(429);
    expect(form.json()).toMatchObject({ code: "AUTH_RATE_LIMITED" });

    // Another address has its own count.
    expect((await callback("10.0.0.8")).statusCode).toBe(400);
  });
});
