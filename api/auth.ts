/**
 * Authentication and authorisation for /v1: every route declares the scopes that may call it
 * (`config.scopes`, any of them suffices); a route without one refuses to register, so nothing under
 * /v1 can answer without a key.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Pool } from "../foundation/db.js";
import type { Logger } from "../foundation/logger.js";
import type { Redis } from "../foundation/redis.js";
import { type ApiKey, hasScope, type Scope, verifyApiKey } from "./apiKeys.js";
import {
  AuthRateLimitedError,
  ForbiddenScopeError,
  SsoGroupsStaleError,
  UnauthorizedError,
} from "./errors.js";

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
 * This process's failed authentications per client address in a fixed window, in memory; at most
 * `maxClients` addresses (the oldest windows are forgotten first).
 */
function createLocalFailureCount(limit: AuthFailureLimit, maxClients: number) {
  const windows = new Map<string, { failures: number; resetAt: number }>();
  const current = (ip: string, now: number) => {
    const w = windows.get(ip);
    if (w && w.resetAt > now) return w;
    if (w) windows.delete(ip);
    return undefined;
  };
  return {
    /** Whether this address failed here in its current window. */
    seen: (ip: string, now: number): boolean => current(ip, now) !== undefined,
    blockedFor(ip: string, now: number): number {
      const w = current(ip, now);
      return w && w.failures >= limit.max ? Math.max(1, Math.ceil((w.resetAt - now) / 1000)) : 0;
    },
    fail(ip: string, now: number): void {
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

// One key per address, created by its window's first failure with the window as its expiry. The
// expiry is set whenever the key has none, so no key outlives a window whatever happened before.
const FAIL_SCRIPT = `local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;
const COUNT_SCRIPT = `return {tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('PTTL', KEYS[1])}`;

export type AuthFailureLimiter = {
  /** Seconds until this address may try again (0: it may try now). */
  blockedFor(ip: string): Promise<number>;
  /** Count one failed authentication from this address. */
  fail(ip: string): Promise<void>;
};

/**
 * Failed authentications per client address in a fixed window. Past `max`, the address is refused
 * (429 AUTH_RATE_LIMITED with Retry-After) before its key is looked up, so guessing keys costs no
 * database work.
 *
 * With `shared`, the count is kept in Redis under `keyPrefix` + address, so every api task behind
 * the balancer adds to one count (in memory alone, N tasks would allow N × max per window). Each
 * process counts its own failures in memory too, and an address is refused when either count is
 * past `max`; a task asks the shared count only for an address it has seen fail in the window
 * (blockedFor), so across N tasks an address gets at most max + N - 1. When Redis does not answer (not connected, or no reply within the connection's
 * command timeout), the process's own count decides: sign-in keeps working, limited to max per task
 * (failures seen before the outage included), rather than letting every guess through or refusing
 * everyone. That is logged once as AUTH_LIMIT_PER_PROCESS, and once again when Redis answers.
 * Without `shared` (a part tested alone), the process's count is the limit.
 */
export function createAuthFailureLimiter(options: {
  limit: AuthFailureLimit;
  /** A fail-fast connection (`createFailFastRedis`), the key prefix and which count it is. */
  shared?: { redis: Redis; keyPrefix: string; name: string; logger: Logger };
  maxClients?: number;
}): AuthFailureLimiter {
  const { limit, shared } = options;
  const local = createLocalFailureCount(limit, options.maxClients ?? 10_000);
  let unshared = false;
  /** `command`'s answer on the address's key, or undefined when Redis did not give one. */
  const ask = async <T>(
    ip: string,
    command: (redis: Redis, key: string) => Promise<T>,
  ): Promise<T | undefined> => {
    if (!shared) return undefined;
    try {
      // Not connected: answer from this process at once rather than wait on a reconnection.
      if (shared.redis.status !== "ready")
        throw new Error(`Redis connection is ${shared.redis.status}`);
      const answer = await command(shared.redis, `${shared.keyPrefix}${ip}`);
      if (unshared) {
        unshared = false;
        shared.logger.info({
          msg: "Redis answers again: failed authentications are counted across api tasks",
          limiter: shared.name,
        });
      }
      return answer;
    } catch (error) {
      if (!unshared) {
        unshared = true;
        shared.logger.warn({
          msg: "Redis did not answer: failed authentications are counted per api process until it does (each task allows the limit)",
          code: "AUTH_LIMIT_PER_PROCESS",
          limiter: shared.name,
          err: error,
        });
      }
      return undefined;
    }
  };
  return {
    async blockedFor(ip) {
      const now = Date.now();
      const mine = local.blockedFor(ip, now);
      // An address this task has seen no failure from in the window asks nothing: a round trip to
      // Redis before every request cost /v1 a third of its throughput (the withdrawals bench), and
      // nearly every request comes from an address that never fails. Its first failure here is
      // counted (fail), and from then on the shared count decides here too: across N tasks an
      // address gets at most max + N - 1 failures a window.
      if (mine > 0 || !local.seen(ip, now)) return mine;
      const count = await ask(ip, (redis, key) => redis.eval(COUNT_SCRIPT, 1, key));
      if (!Array.isArray(count)) return mine;
      const [failures = 0, ttlMs = 0] = count as number[];
      const all = failures >= limit.max && ttlMs > 0 ? Math.max(1, Math.ceil(ttlMs / 1000)) : 0;
      return Math.max(mine, all);
    },
    async fail(ip) {
      local.fail(ip, Date.now());
      await ask(ip, (redis, key) => redis.eval(FAIL_SCRIPT, 1, key, String(limit.windowMs)));
    },
  };
}

/** What an SSO console session may do, under the configuration this task runs with. */
export type SsoGrants = {
  /** The scopes a session's groups map to (api/console/oidc.ts scopesForGroups). */
  scopesFor: (groups: unknown) => readonly Scope[];
  /** How long after sign-in the provider's word on the groups lets a session act. */
  groupsFreshForMs: number;
};

/** A scope that only reads: an SSO session keeps it after its groups go stale. */
const readsOnly = (scope: Scope) => scope.endsWith(":read");

/**
 * The key an SSO console session acts with: the scopes its groups map to now, and once the
 * provider's word on those groups is older than `groupsFreshForMs`, only the reading ones (`stale`:
 * the key it would act with, and why it does not). The console asks it too (api/console/plugin.ts),
 * to offer a new sign-in instead of buttons this refuses.
 */
export function ssoKey(
  key: ApiKey,
  session: { groups: unknown; ageMs: number },
  sso: SsoGrants | undefined,
): { key: ApiKey; stale: { key: ApiKey; error: SsoGroupsStaleError } | null } {
  const mapped = sso ? sso.scopesFor(session.groups) : [];
  const current = { ...key, scopes: key.scopes.filter((s) => mapped.includes(s)) };
  if (!sso || session.ageMs <= sso.groupsFreshForMs) return { key: current, stale: null };
  return {
    key: { ...current, scopes: current.scopes.filter(readsOnly) },
    stale: {
      key: current,
      error: new SsoGroupsStaleError(
        Math.floor(session.ageMs / 1000),
        Math.floor(sso.groupsFreshForMs / 1000),
      ),
    },
  };
}

export async function registerAuth(
  app: FastifyInstance,
  pool: Pool,
  failures: AuthFailureLimiter,
  /** Absent: SSO is not configured, and SSO sessions' groups map to no scope. */
  sso?: SsoGrants,
): Promise<void> {
  app.decorateRequest("apiKey", null);
  app.addHook("onRoute", (route) => {
    const scopes = (route.config as { scopes?: readonly Scope[] } | undefined)?.scopes;
    if (!scopes || scopes.length === 0)
      throw new Error(`route ${route.method} ${route.url} declares no scopes`);
    // The OpenAPI document shows (and tests read) the scopes each route accepts.
    route.schema = { ...route.schema, security: [{ apiKey: [...scopes] }] };
  });
  app.addHook("onRequest", async (request, reply) => {
    const wait = await failures.blockedFor(request.ip);
    if (wait > 0) {
      reply.header("retry-after", String(wait));
      throw new AuthRateLimitedError(wait);
    }
    const plaintext = presentedKey(request);
    if (!plaintext) {
      await failures.fail(request.ip);
      throw new UnauthorizedError("send the key as `Authorization: Bearer cn_…` or `X-Api-Key`");
    }
    const result = await verifyApiKey(pool, plaintext);
    if (!result.ok) {
      await failures.fail(request.ip);
      throw new UnauthorizedError(result.reason);
    }
    // An SSO session's scopes were granted by its groups under the mapping of its sign-in: it keeps
    // only those its groups still map to now, so a mapping reduced (or SSO turned off) and the api
    // restarted takes effect for sessions already signed in, not up to absoluteTimeoutMs later.
    // The groups themselves are the provider's word at sign-in: a person removed from a group there
    // would keep approving until the session ended, so past groupsFreshForMs the session only
    // reads, and acting needs a sign-in (which asks the provider again).
    const { key, stale } = result.sso
      ? ssoKey(result.key, result.sso, sso)
      : { key: result.key, stale: null };
    request.apiKey = key;
    const scopes = request.routeOptions.config.scopes ?? [];
    if (!scopes.some((s) => hasScope(key, s))) {
      if (stale && scopes.some((s) => hasScope(stale.key, s))) throw stale.error;
      throw new ForbiddenScopeError(scopes.join(" or "));
    }
  });
}
