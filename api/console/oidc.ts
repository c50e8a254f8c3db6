/**
 * Console sign-in through the company's OpenID Connect provider: the authorization code flow with
 * PKCE, state and nonce (openid-client, discovery from the issuer). The ID token's groups claim is
 * mapped to API scopes by `api.console.oidc.groups`; a person in no mapped group is refused (page +
 * audit entry, no session). A signed-in person gets the same kind of console session as an API-key
 * sign-in (sessions.ts `mintSession`), owned by `oidc:<email or sub>`, so /v1 auth, scope checks,
 * approvals and audit stay one path. The session key carries the person's verified email, so an
 * API key carrying the same email is the same approver (approvals count distinct persons).
 * OIDC sessions also end at an absolute time.
 *
 * Routes (outside the session guard, since no session exists yet): GET /console/sso/start and
 * GET /console/sso/callback. The flow's state, nonce and PKCE verifier live in a short-lived httpOnly
 * cookie scoped to /console/sso with SameSite=Lax (the provider's redirect back is a cross-site
 * navigation, which a Strict cookie would not survive).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import * as client from "openid-client";
import { appendAudit } from "../../foundation/audit.js";
import type { ConsoleOidcConfig } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { withTransaction } from "../../foundation/db.js";
import { ConfigError } from "../../foundation/errors.js";
import { normalizeOwner, parseEmail, SCOPES, type Scope } from "../apiKeys.js";
import {
  type AuthFailureLimiter,
  createAuthFailureLimiter,
  DEFAULT_AUTH_FAILURE_LIMIT,
} from "../auth.js";
import { esc, html, layout, setSecurityHeaders } from "./html.js";
import { mintSession } from "./sessions.js";

export type OidcOptions = ConsoleOidcConfig & { clientSecret?: string | undefined };

export type OidcRoutesOptions = {
  pool: Pool;
  oidc: OidcOptions;
  idleTimeoutMs: number;
  secureCookie?: boolean | undefined;
  /** The console's session cookie name (plugin.ts). */
  sessionCookie: string;
  /**
   * Failed sign-ins per client address, shared with the API-key sign-in form (plugin.ts): a
   * refused callback counts, and past the limit the callback is refused before any work.
   */
  signInFailures?: AuthFailureLimiter | undefined;
};

const FLOW_COOKIE = "cn_console_oidc";
const FLOW_PATH = "/console/sso";
const FLOW_MAX_AGE_S = 600;

type Flow = { state: string; nonce: string; verifier: string };

/** The scopes a person's groups grant (the union), given the configured mapping. */
export function scopesForGroups(
  groups: Readonly<Record<string, readonly string[]>>,
  claim: unknown,
): Scope[] {
  const mine = typeof claim === "string" ? [claim] : Array.isArray(claim) ? claim : [];
  const out = new Set<Scope>();
  // Own keys only: a group named `constructor` or `__proto__` maps to nothing.
  for (const g of mine)
    if (typeof g === "string" && Object.hasOwn(groups, g))
      for (const s of groups[g] ?? []) out.add(s as Scope);
  return [...out];
}

/** The configured group mapping names only real API scopes (checked when the api role starts). */
export function checkOidcScopes(oidc: Pick<OidcOptions, "groups">): void {
  const issues = Object.entries(oidc.groups).flatMap(([group, scopes]) =>
    scopes
      .filter((s) => !(SCOPES as readonly string[]).includes(s))
      .map((s) => ({
        field: `api.console.oidc.groups.${group}`,
        message: `unknown scope "${s}"; valid: ${SCOPES.join(", ")}`,
      })),
  );
  if (issues.length > 0) throw new ConfigError(issues);
}

/**
 * `email_verified` is optional (absent: accepted, as the provider vouches for its own emails); when
 * present, only `true` counts as verified. Entra ID, Apple and Cognito send it as a string, so a
 * `"false"` must refuse the sign-in as `false` does: an unverified email is anyone's owner name.
 */
function emailMayBeVerified(claim: unknown): boolean {
  if (claim === undefined || claim === true) return true;
  return typeof claim === "string" && claim.trim().toLowerCase() === "true";
}

/**
 * The person's email as the ID token vouches for it, or null (none, not verified, or not one
 * address): what ties the SSO session to API keys carrying the same email.
 */
export function verifiedEmailOf(claims: Record<string, unknown>): string | null {
  if (typeof claims.email !== "string" || !emailMayBeVerified(claims.email_verified)) return null;
  try {
    return parseEmail(claims.email);
  } catch {
    return null;
  }
}

/** Why the ID token's claims give no console owner (null: they do), else the owner. */
export function ownerOf(
  claims: Record<string, unknown>,
  ownerClaim: OidcOptions["ownerClaim"],
): { ok: true; owner: string } | { ok: false; reason: string } {
  if (ownerClaim === "email") {
    if (typeof claims.email !== "string" || claims.email === "")
      return { ok: false, reason: "the ID token has no email claim (request the email scope)" };
    if (!emailMayBeVerified(claims.email_verified))
      return { ok: false, reason: "the provider says this email is not verified" };
  }
  const value = ownerClaim === "email" ? String(claims.email) : String(claims.sub);
  const owner = normalizeOwner(`oidc:${value}`);
  if (owner.length > 100)
    return { ok: false, reason: "the identity is longer than 100 characters" };
  return { ok: true, owner };
}

export function createOidcRoutes(o: OidcRoutesOptions) {
  const { oidc } = o;
  checkOidcScopes(oidc);
  const failures =
    o.signInFailures ?? createAuthFailureLimiter({ limit: DEFAULT_AUTH_FAILURE_LIMIT });
  const issuerUrl = new URL(oidc.issuer);
  const insecure = issuerUrl.protocol === "http:";
  // Discovery once, at first use; a failure is not cached (the provider may be back next time).
  let discovered: Promise<client.Configuration> | null = null;
  const configuration = () => {
    discovered ??= client
      .discovery(
        issuerUrl,
        oidc.clientId,
        oidc.clientSecret,
        oidc.clientSecret ? client.ClientSecretPost(oidc.clientSecret) : client.None(),
        // http only on loopback (the config refuses it elsewhere): a provider run in tests or dev.
        insecure ? { execute: [client.allowInsecureRequests] } : {},
      )
      .catch((error: unknown) => {
        discovered = null;
        throw error;
      });
    return discovered;
  };

  return async (app: FastifyInstance) => {
    app.addHook("onRoute", (route) => {
      route.schema = { ...route.schema, hide: true };
    });
    app.addHook("onSend", async (_request, reply, payload) => {
      setSecurityHeaders(reply);
      return payload;
    });
    const secure = (request: FastifyRequest) => o.secureCookie ?? request.protocol === "https";
    const flowCookie = (request: FastifyRequest, value: string, maxAgeS: number) =>
      `${FLOW_COOKIE}=${encodeURIComponent(value)}; Path=${FLOW_PATH}; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure(request) ? "; Secure" : ""}`;
    const refuse = (
      request: FastifyRequest,
      reply: FastifyReply,
      status: number,
      code: string,
      message: string,
    ) =>
      reply
        .status(status)
        .header("set-cookie", flowCookie(request, "", 0))
        .type("text/html; charset=utf-8")
        .send(
          layout({
            title: "Sign-in refused",
            page: "sign-in",
            error: `${code}: ${message}`,
            body: html`<p><a href="/console/sign-in">Back to sign-in</a></p>`,
          }),
        );

    app.get(`${FLOW_PATH}/start`, async (request, reply) => {
      let config: client.Configuration;
      try {
        config = await configuration();
      } catch (error) {
        request.log.warn({ msg: "OIDC discovery failed", issuer: oidc.issuer, err: error });
        return refuse(
          request,
          reply,
          502,
          "CONSOLE_OIDC_UNAVAILABLE",
          `the identity provider ${oidc.issuer} could not be reached; try again, or sign in with an API key`,
        );
      }
      const flow: Flow = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        verifier: client.randomPKCECodeVerifier(),
      };
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: oidc.redirectUrl,
        scope: oidc.scopes.join(" "),
        code_challenge: await client.calculatePKCECodeChallenge(flow.verifier),
        code_challenge_method: "S256",
        state: flow.state,
        nonce: flow.nonce,
      });
      reply.header(
        "set-cookie",
        flowCookie(
          request,
          Buffer.from(JSON.stringify(flow)).toString("base64url"),
          FLOW_MAX_AGE_S,
        ),
      );
      return reply.redirect(url.href, 303);
    });

    app.get(`${FLOW_PATH}/callback`, async (request, reply) => {
      // The provider guards its own login, but not this route: a client replaying forged or stale
      // responses makes the console call the token endpoint (and write audit entries) each time.
      // Failed callbacks count per address with the API-key form's failures; past the limit the
      // callback is refused before anything is read or sent, a good response included.
      const wait = await failures.blockedFor(request.ip);
      if (wait > 0) {
        reply.header("retry-after", String(wait));
        return refuse(
          request,
          reply,
          429,
          "AUTH_RATE_LIMITED",
          `too many failed sign-ins from this address; try again in ${wait} s`,
        );
      }
      const refuseCounted = async (...args: Parameters<typeof refuse>) => {
        await failures.fail(args[0].ip);
        return refuse(...args);
      };
      const query = request.query as Record<string, unknown>;
      const flow = flowOf(request);
      if (!flow)
        return refuseCounted(
          request,
          reply,
          400,
          "CONSOLE_OIDC_STATE",
          "this sign-in was not started in this browser or took longer than 10 minutes; start again",
        );
      if (typeof query.error === "string")
        return refuseCounted(
          request,
          reply,
          401,
          "CONSOLE_OIDC_REFUSED",
          `the identity provider refused: ${query.error}${typeof query.error_description === "string" ? ` (${query.error_description})` : ""}`,
        );
      if (query.state !== flow.state)
        return refuseCounted(
          request,
          reply,
          400,
          "CONSOLE_OIDC_STATE",
          "the sign-in response does not match the sign-in this browser started; start again",
        );
      let claims: Record<string, unknown>;
      try {
        const config = await configuration();
        // The callback URL as registered, with the provider's query: behind a proxy the request's
        // own host may differ, and the token request must name the registered redirect URI.
        const current = new URL(oidc.redirectUrl);
        current.search = new URL(request.url, "http://console.invalid").search;
        const tokens = await client.authorizationCodeGrant(config, current, {
          pkceCodeVerifier: flow.verifier,
          expectedState: flow.state,
          expectedNonce: flow.nonce,
          idTokenExpected: true,
        });
        claims = (tokens.claims() ?? {}) as Record<string, unknown>;
      } catch (error) {
        request.log.warn({ msg: "OIDC code exchange failed", issuer: oidc.issuer, err: error });
        return refuseCounted(
          request,
          reply,
          401,
          "CONSOLE_OIDC_REFUSED",
          `the sign-in could not be verified: ${(error as Error).message}`,
        );
      }
      const issuer = String(claims.iss);
      const subject = String(claims.sub);
      const groups = claims[oidc.groupsClaim];
      const scopes = scopesForGroups(oidc.groups, groups);
      const owner = ownerOf(claims, oidc.ownerClaim);
      const reason = !owner.ok
        ? owner.reason
        : scopes.length === 0
          ? `none of your groups (claim "${oidc.groupsClaim}") is mapped to console scopes`
          : null;
      if (!owner.ok || reason) {
        await appendAudit(o.pool, {
          actor: owner.ok ? owner.owner : normalizeOwner(`oidc:${subject}`).slice(0, 100),
          action: "console.sign_in_refused",
          entityType: "oidc_subject",
          entityId: `${issuer} ${subject}`,
          details: { via: "oidc", issuer, subject, groups: groups ?? null, reason },
        });
        return refuseCounted(request, reply, 403, "CONSOLE_OIDC_NO_SCOPES", String(reason));
      }
      const session = await withTransaction(o.pool, (c) =>
        mintSession(c, {
          owner: owner.owner,
          email: verifiedEmailOf(claims),
          scopes,
          origin: { kind: "oidc", issuer, subject, groups },
          idleTimeoutMs: o.idleTimeoutMs,
          absoluteTimeoutMs: oidc.absoluteTimeoutMs,
          auditDetails: { groups: groups ?? null },
        }),
      );
      const sessionCookie = `${o.sessionCookie}=${encodeURIComponent(session.plaintext)}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${Math.ceil(oidc.absoluteTimeoutMs / 1000)}${secure(request) ? "; Secure" : ""}`;
      reply.header("set-cookie", [sessionCookie, flowCookie(request, "", 0)]);
      // A page, not a redirect: this response ends a cross-site navigation (from the provider), and
      // the browser sends the SameSite=Strict session cookie only on the same-site one that follows.
      return reply
        .status(200)
        .type("text/html; charset=utf-8")
        .send(
          `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console"><title>Signed in · custody console</title><link rel="stylesheet" href="/console/assets/console.css"></head><body><main id="main"><h1>Signed in</h1><p>Signed in as <strong>${esc(owner.owner)}</strong>. <a href="/console">Continue to the console</a></p></main></body></html>`,
        );
    });
  };
}

function flowOf(request: FastifyRequest): Flow | null {
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i <= 0 || part.slice(0, i).trim() !== FLOW_COOKIE) continue;
    try {
      const flow = JSON.parse(
        Buffer.from(decodeURIComponent(part.slice(i + 1).trim()), "base64url").toString("utf8"),
      ) as Partial<Flow>;
      if (
        typeof flow.state === "string" &&
        typeof flow.nonce === "string" &&
        typeof flow.verifier === "string"
      )
        return { state: flow.state, nonce: flow.nonce, verifier: flow.verifier };
    } catch {
      return null;
    }
  }
  return null;
}
