/**
 * Authentication and authorisation for /v1: every route declares the scopes that may call it
 * (`config.scopes`, any of them suffices); a route without one refuses to register, so nothing under
 * /v1 can answer without a key.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Pool } from "../foundation/db.js";
import { type ApiKey, hasScope, type Scope, verifyApiKey } from "./apiKeys.js";
import { AuthRateLimitedError, ForbiddenScopeError, UnauthorizedError } from "./errors.js";

declare module "fastify" {
  interface FastifyRequest {
    apiKey: ApiKey | null;
  }
  interface FastifyContextConfig {
    /** The scopes that may call this route (any one suffices; `admin` always does). */
    scopes?: readonly Scope[];
  }
}

export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === "string" && header.startsWith("Bearer ")) return header.slice(7).trim();
  const alt = request.headers["x-api-key"];
  return typeof alt === "string" ? alt.trim() : undefined;
}

/** The authenticated key of a request that passed the auth hook. */
export function callerOf(request: FastifyRequest): ApiKey {
  if (!request.apiKey) throw new UnauthorizedError("no API key on this request");
  return request.apiKey;
}

export type AuthFailureLimit = { max: number; windowMs: number };
export const DEFAULT_AUTH_FAILURE_LIMIT: AuthFailureLimit = Object.freeze({
  max: 20,
  windowMs: 60_000,
});

/**
 * Failed authentications per client address in a fixed window. Past `max`, the address is refused
 * (429 AUTH_RATE_LIMITED with Retry-After) before its key is looked up, so guessing keys costs no
 * database work. In memory, per process: a fleet of N api tasks allows N × max per window.
 */
export function createAuthFailureLimiter(limit: AuthFailureLimit, maxClients = 10_000) {
  const windows = new Map<string, { failures: number; resetAt: number }>();
  const current = (ip: string, now: number) => {
    const w = windows.get(ip);
    if (w && w.resetAt > now) return w;
    if (w) windows.delete(ip);
    return undefined;
  };
  return {
    /** Seconds until this address may try again (0: it may try now). */
    blockedFor(ip: string, now = Date.now()): number {
      const w = current(ip, now);
      return w && w.failures >= limit.max ? Math.max(1, Math.ceil((w.resetAt - now) / 1000)) : 0;
    },
    fail(ip: string, now = Date.now()): void {
      const w = current(ip, now);
      if (w) {
        w.failures++;
        return;
      }
      if (windows.size >= maxClients) {
        for (const [key, old] of windows) if (old.resetAt <= now) windows.delete(key);
        // Still full: forget the oldest windows (Map keeps insertion order).
        for (const key of windows.keys()) {
          if (windows.size < maxClients) break;
          windows.delete(key);
        }
      }
      windows.set(ip, { failures: 1, resetAt: now + limit.windowMs });
    },
  };
}

export async function registerAuth(
  app: FastifyInstance,
  pool: Pool,
  failureLimit: AuthFailureLimit = DEFAULT_AUTH_FAILURE_LIMIT,
): Promise<void> {
  const failures = createAuthFailureLimiter(failureLimit);
  app.decorateRequest("apiKey", null);
  app.addHook("onRoute", (route) => {
    const scopes = (route.config as { scopes?: readonly Scope[] } | undefined)?.scopes;
    if (!scopes || scopes.length === 0)
      throw new Error(`route ${route.method} ${route.url} declares no scopes`);
    // The OpenAPI document shows (and tests read) the scopes each route accepts.
    route.schema = { ...route.schema, security: [{ apiKey: [...scopes] }] };
  });
  app.addHook("onRequest", async (request, reply) => {
    const wait = failures.blockedFor(request.ip);
    if (wait > 0) {
      reply.header("retry-after", String(wait));
      throw new AuthRateLimitedError(wait);
    }
    const plaintext = presentedKey(request);
    if (!plaintext) {
      failures.fail(request.ip);
      throw new UnauthorizedError("send the key as `Authorization: Bearer cn_…` or `X-Api-Key`");
    }
    const result = await verifyApiKey(pool, plaintext);
    if (!result.ok) {
      failures.fail(request.ip);
      throw new UnauthorizedError(result.reason);
    }
    request.apiKey = result.key;
    const scopes = request.routeOptions.config.scopes ?? [];
    if (!scopes.some((s) => hasScope(result.key, s)))
      throw new ForbiddenScopeError(scopes.join(" or "));
  });
}
