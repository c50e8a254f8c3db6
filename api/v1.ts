/**
 * The /v1 API as one Fastify plugin (pushed onto `ctx.httpPlugins` by the api role, or passed to
 * `buildApp` by tests). Inside its encapsulated context: auth (every route declares scopes), a rate
 * limit per API key on Redis, idempotency for every POST, then one plugin per area.
 */
import rateLimit from "@fastify/rate-limit";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type { Common } from "../foundation/common.js";
import { DEFAULT_API_RATE_LIMIT } from "../foundation/config.js";
import type { Pool } from "../foundation/db.js";
import { closeRedis, createFailFastRedis } from "../foundation/redis.js";
import { createLedger, type Ledger } from "../ledger/index.js";
import {
  type AuthFailureLimit,
  createAuthFailureLimiter,
  DEFAULT_AUTH_FAILURE_LIMIT,
  registerAuth,
} from "./auth.js";
import { type ChainHeads, createChainHeads } from "./chainStatus.js";
import { scopesForGroups } from "./console/oidc.js";
import { createConsolePlugin } from "./console/plugin.js";
import { RateLimitedError } from "./errors.js";
import { registerIdempotency } from "./idempotency.js";
import { apiMetrics } from "./metrics.js";
import { auditRoutes } from "./routes/audit.js";
import { chainsRoutes } from "./routes/chains.js";
import { customersRoutes } from "./routes/customers.js";
import { depositsRoutes } from "./routes/deposits.js";
import type { V1Deps } from "./routes/deps.js";
import { proofsRoutes } from "./routes/proofs.js";
import { reconRoutes } from "./routes/recon.js";
import { treasuryRoutes } from "./routes/treasury.js";
import { webhooksRoutes } from "./routes/webhooks.js";
import { withdrawalsRoutes } from "./routes/withdrawals.js";
import { assetsWithoutPolicy } from "./withdrawals/policy.js";
import { createWithdrawals } from "./withdrawals/service.js";

export type V1Options = {
  common: Common;
  pool: Pool;
  redis: Redis;
  /** Requests per API key per window (default: the config's `api.rateLimit`, 600 per minute). */
  rateLimit?: { max: number; timeWindowMs: number };
  /**
   * Failed authentications per client address per window, counted across api tasks in Redis
   * (default 20 per minute); the console's sign-in has its own count with the same limit.
   */
  authFailureLimit?: AuthFailureLimit;
  /**
   * How long the limits' Redis connection waits for a reply before the limits count per process
   * (default 2 s, `failFastOptions`); an outage costs a request up to twice this.
   */
  limiterRedisTimeoutMs?: number;
  /** Called after committing webhook events so the dispatcher sends them without waiting. */
  ringWebhooks?: () => Promise<unknown>;
  heads?: ChainHeads;
  ledger?: Ledger;
};

export function createV1Plugin(options: V1Options): (app: FastifyInstance) => Promise<void> {
  const ringWebhooks = options.ringWebhooks ?? (async () => {});
  const ledger = options.ledger ?? createLedger({ common: options.common, pool: options.pool });
  const deps: V1Deps = {
    common: options.common,
    pool: options.pool,
    redis: options.redis,
    heads: options.heads ?? createChainHeads(),
    ringWebhooks,
    ledger,
    withdrawals: createWithdrawals({
      common: options.common,
      pool: options.pool,
      ledger,
      ringWebhooks,
    }),
  };
  const configured = options.common.config.api?.rateLimit ?? DEFAULT_API_RATE_LIMIT;
  const limits = options.rateLimit ?? {
    max: configured.max,
    timeWindowMs: configured.windowMs,
  };
  return async (root) => {
    // Holds need the assets to exist; idempotent, and the ledger's own worker does the same.
    await ledger.ensureAssetsFromConfig(options.common.config.chains);
    // Policies fail closed: say at start which assets cannot be withdrawn, and why.
    for (const assetId of assetsWithoutPolicy(options.common.config))
      options.common.logger.warn({
        msg: "asset has no withdrawal policy: its withdrawals are refused (WITHDRAWAL_POLICY_MISSING)",
        asset_id: assetId,
        field: "policies.withdrawals.limits",
      });
    // A connection of its own that fails fast: with Redis down or silent, the per-key limiter
    // lets requests through (skipOnError) and the failed-authentication limits count per process
    // (auth.ts), instead of queueing requests for the whole outage; auth and money live in Postgres.
    const limiterRedis = createFailFastRedis(
      deps.redis,
      options.limiterRedisTimeoutMs !== undefined
        ? { commandTimeoutMs: options.limiterRedisTimeoutMs }
        : {},
    );
    // Start counting from the first request when Redis is up; never block start-up on it.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      limiterRedis.once("ready", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    root.addHook("onClose", async () => {
      await closeRedis(limiterRedis);
    });
    const prefix = deps.common.config.env.REDIS_PREFIX;
    const authFailures = (name: "v1" | "console") =>
      createAuthFailureLimiter({
        limit: options.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT,
        shared: {
          redis: limiterRedis,
          keyPrefix: `${prefix}:authfail:${name}:`,
          name,
          logger: deps.common.logger,
        },
      });
    await root.register(
      async (app) => {
        const v1 = app.withTypeProvider<TypeBoxTypeProvider>();
        const metrics = apiMetrics(deps.common.metrics.registry);
        v1.addHook("onResponse", async (request, reply) => {
          metrics.requests.observe(
            {
              method: request.method,
              route: request.routeOptions.url ?? "unknown",
              status: String(reply.statusCode),
            },
            reply.elapsedTime / 1000,
          );
        });
        const oidc = options.common.config.api?.console?.oidc;
        await registerAuth(
          v1,
          deps.pool,
          authFailures("v1"),
          oidc && {
            scopesFor: (groups) => scopesForGroups(oidc.groups, groups),
            groupsFreshForMs: oidc.groupsFreshForMs,
          },
        );
        // After auth (onRequest), so the limit is per key; before parsing, so oversized or
        // malformed bodies count too.
        await v1.register(rateLimit, {
          hook: "preParsing",
          max: limits.max,
          timeWindow: limits.timeWindowMs,
          redis: limiterRedis,
          nameSpace: `${deps.common.config.env.REDIS_PREFIX}:ratelimit:`,
          keyGenerator: (request) => request.apiKey?.id ?? request.ip,
          skipOnError: true,
          errorResponseBuilder: (_request, context) => new RateLimitedError(context.after),
        });
        await registerIdempotency(v1, deps.pool);
        await v1.register(chainsRoutes(deps));
        await v1.register(depositsRoutes(deps));
        await v1.register(customersRoutes(deps));
        await v1.register(withdrawalsRoutes(deps));
        await v1.register(webhooksRoutes(deps));
        await v1.register(auditRoutes(deps));
        await v1.register(reconRoutes(deps));
        await v1.register(treasuryRoutes(deps));
        await v1.register(proofsRoutes(deps));
      },
      { prefix: "/v1" },
    );
    // The operator console (api/console): HTML over this API, called in-process with a session key.
    const consoleConfig = options.common.config.api?.console;
    await root.register(
      createConsolePlugin({
        pool: options.pool,
        chains: options.common.config.chains,
        ...(consoleConfig?.idleTimeoutMs ? { idleTimeoutMs: consoleConfig.idleTimeoutMs } : {}),
        signInFailures: authFailures("console"),
        ...(consoleConfig?.secureCookie !== undefined
          ? { secureCookie: consoleConfig.secureCookie }
          : {}),
        ...(consoleConfig?.oidc
          ? {
              oidc: {
                ...consoleConfig.oidc,
                clientSecret: options.common.config.consoleOidcClientSecret,
              },
            }
          : {}),
      }),
    );
  };
}
