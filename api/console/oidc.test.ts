/**
 * The console's OIDC settings and claim mapping, without a provider: config fields validated by
 * name (and the client secret read from the env var the file names), groups mapped to scopes,
 * the owner identity. The flow itself is in oidc.integration.test.ts.
 */
import { readFileSync } from "node:fs";
import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { chainSchema } from "../../chains/index.js";
import { apiConfigSchema, defaultConfigPath, loadConfig } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { configIssuesOf, writeConfigFile } from "../../ops/testing/configFile.js";
import {
  checkOidcScopes,
  createOidcRoutes,
  ownerOf,
  scopesForGroups,
  verifiedEmailOf,
} from "./oidc.js";

const OIDC = {
  issuer: "https://login.example.com/realms/custody",
  clientId: "custody-console",
  clientSecretEnv: "CONSOLE_OIDC_SECRET",
  redirectUrl: "https://custody.example.com/console/sso/callback",
  groups: { "custody-approvers": ["withdrawals:approve"], auditors: ["recon:read", "ledger:read"] },
};

function configWith(oidc: unknown): string {
  const base = JSON.parse(readFileSync(defaultConfigPath, "utf8"));
  return writeConfigFile({ ...base, api: { console: { oidc } } });
}

describe("api.console.oidc config", () => {
  it("is off unless configured, and fills the defaults when it is", () => {
    expect(apiConfigSchema.parse({ console: {} }).console?.oidc).toBeUndefined();
    expect(apiConfigSchema.parse({ console: { oidc: OIDC } }).console?.oidc).toEqual({
      ...OIDC,
      scopes: ["openid", "email", "profile", "groups"],
      groupsClaim: "groups",
      ownerClaim: "email",
      absoluteTimeoutMs: 28_800_000,
      groupsFreshForMs: 300_000,
    });
  });

  it("names each bad field", () => {
    const bad = apiConfigSchema.safeParse({
      console: {
        oidc: {
          issuer: "http://login.example.com",
          clientId: "",
          clientSecretEnv: "lower-case",
          redirectUrl: "https://custody.example.com/elsewhere",
          scopes: ["email"],
          ownerClaim: "name",
          groups: {},
          absoluteTimeoutMs: 1000,
          groupsFreshForMs: 1000,
          extra: true,
        },
      },
    });
    expect(bad.success).toBe(false);
    const byField = Object.fromEntries(
      bad.error!.issues.map((i) => [i.path.join("."), i.message] as const),
    );
    expect(Object.keys(byField).sort()).toEqual(
      [
        "console.oidc",
        "console.oidc.absoluteTimeoutMs",
        "console.oidc.clientId",
        "console.oidc.clientSecretEnv",
        "console.oidc.groups",
        "console.oidc.groupsFreshForMs",
        "console.oidc.issuer",
        "console.oidc.ownerClaim",
        "console.oidc.redirectUrl",
        "console.oidc.scopes",
      ].sort(),
    );
    expect(byField["console.oidc.issuer"]).toMatch(/https/);
    expect(byField["console.oidc.redirectUrl"]).toMatch(/\/console\/sso\/callback/);
    expect(byField["console.oidc.scopes"]).toMatch(/openid/);
    expect(byField["console.oidc"]).toMatch(/extra/);
    // http is accepted on loopback only (a provider on this machine, as the tests run one).
    expect(
      apiConfigSchema.safeParse({
        console: {
          oidc: {
            ...OIDC,
            issuer: "http://127.0.0.1:4000",
            redirectUrl: "http://localhost:8080/console/sso/callback",
          },
        },
      }).success,
    ).toBe(true);
  });

  it("reads the client secret from the env var the file names, and says when it is missing", () => {
    const file = configWith(OIDC);
    expect(configIssuesOf(() => loadConfig(chainSchema, { CUSTODY_CONFIG: file }))).toEqual([
      {
        field: "api.console.oidc.clientSecretEnv",
        message: "environment variable CONSOLE_OIDC_SECRET is not set",
      },
    ]);
    const config = loadConfig(chainSchema, { CUSTODY_CONFIG: file, CONSOLE_OIDC_SECRET: "s3cret" });
    expect(config.consoleOidcClientSecret).toBe("s3cret");
    // The secret is not in the file's section.
    expect(JSON.stringify(config.api)).not.toContain("s3cret");
    // A public client (PKCE only) names no secret.
    const { clientSecretEnv: _, ...publicClient } = OIDC;
    expect(
      loadConfig(chainSchema, { CUSTODY_CONFIG: configWith(publicClient) }).consoleOidcClientSecret,
    ).toBeUndefined();
  });

  it("refuses a group mapped to a scope the API does not have, naming the group", () => {
    expect(
      configIssuesOf(() =>
        checkOidcScopes({ groups: { ops: ["withdrawals:approve", "withdraw:all"] } }),
      ),
    ).toEqual([
      { field: "api.console.oidc.groups.ops", message: expect.stringMatching(/withdraw:all/) },
    ]);
    expect(() => checkOidcScopes(OIDC)).not.toThrow();
  });
});

describe("OIDC claims", () => {
  it("maps groups to the union of their scopes; unknown groups and odd claims give none", () => {
    expect(scopesForGroups(OIDC.groups, ["auditors", "custody-approvers", "staff"]).sort()).toEqual(
      ["ledger:read", "recon:read", "withdrawals:approve"],
    );
    expect(scopesForGroups(OIDC.groups, "auditors").sort()).toEqual(["ledger:read", "recon:read"]);
    expect(scopesForGroups(OIDC.groups, ["staff"])).toEqual([]);
    expect(scopesForGroups(OIDC.groups, undefined)).toEqual([]);
    expect(scopesForGroups(OIDC.groups, { auditors: true })).toEqual([]);
    expect(scopesForGroups(OIDC.groups, ["__proto__", "constructor"])).toEqual([]);
  });

  it("takes the owner from the verified email or the subject", () => {
    expect(
      ownerOf({ sub: "u1", email: "Anna@Example.COM", email_verified: true }, "email"),
    ).toEqual({ ok: true, owner: "oidc:anna@example.com" });
    expect(
      ownerOf({ sub: "u1", email: "anna@example.com", email_verified: false }, "email"),
    ).toEqual({ ok: false, reason: expect.stringMatching(/not verified/) });
    // Entra ID, Apple and Cognito send the claim as a string
    for (const unverified of ["false", "False", "", null, 0])
      expect(
        ownerOf({ sub: "u1", email: "anna@example.com", email_verified: unverified }, "email").ok,
        String(unverified),
      ).toBe(false);
    expect(
      ownerOf({ sub: "u1", email: "anna@example.com", email_verified: "true" }, "email").ok,
    ).toBe(true);
    expect(ownerOf({ sub: "u1" }, "email")).toEqual({
      ok: false,
      reason: expect.stringMatching(/no email/),
    });
    expect(ownerOf({ sub: "00u1abc", email: "x@y" }, "sub")).toEqual({
      ok: true,
      owner: "oidc:00u1abc",
    });
    expect(ownerOf({ sub: "s".repeat(120) }, "sub").ok).toBe(false);
  });

  it("gives the session the person's email only when the provider vouches for it", () => {
    expect(verifiedEmailOf({ email: " Anna@Example.COM", email_verified: true })).toBe(
      "anna@example.com",
    );
    // absent email_verified: the provider's own email, accepted as for the owner
    expect(verifiedEmailOf({ email: "anna@example.com" })).toBe("anna@example.com");
    for (const unverified of [false, "false", "no", 1])
      expect(verifiedEmailOf({ email: "anna@example.com", email_verified: unverified })).toBeNull();
    expect(verifiedEmailOf({ sub: "u1" })).toBeNull();
    expect(verifiedEmailOf({ email: "not an address", email_verified: true })).toBeNull();
  });
});

describe("OIDC routes without a reachable provider", () => {
  it("says the provider is unavailable (502) and refuses a callback this browser did not start", async () => {
    const app = Fastify();
    await app.register(
      createOidcRoutes({
        // Neither answer touches the database.
        pool: null as unknown as Pool,
        oidc: {
          ...OIDC,
          issuer: "http://127.0.0.1:1", // nothing listens on port 1
          redirectUrl: "http://127.0.0.1:8080/console/sso/callback",
          scopes: ["openid"],
          groupsClaim: "groups",
          ownerClaim: "email",
          absoluteTimeoutMs: 28_800_000,
          groupsFreshForMs: 300_000,
          clientSecret: "x",
        },
        idleTimeoutMs: 900_000,
        sessionCookie: "cn_console",
      }),
    );
    try {
      const start = await app.inject({ method: "GET", url: "/console/sso/start" });
      expect(start.statusCode).toBe(502);
      expect(start.body).toContain("CONSOLE_OIDC_UNAVAILABLE");
      expect(start.headers["set-cookie"]).not.toMatch(/cn_console_oidc=[^;]/);
      const callback = await app.inject({
        method: "GET",
        url: "/console/sso/callback?code=abc&state=xyz",
      });
      expect(callback.statusCode).toBe(400);
      expect(callback.body).toContain("CONSOLE_OIDC_STATE");
      expect(callback.headers["content-security-policy"]).toMatch(/default-src 'self'/);
    } finally {
      await app.close();
    }
  });
});
