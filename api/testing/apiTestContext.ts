/**
 * For api integration tests: a test context (own database, Redis prefix, optional anvils), the app
 * built with the /v1 plugin, and one API key per scope (plus helpers to call with them).
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { createHealth } from "../../ops/health.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../ops/testing/context.js";
import { type ApiKey, createApiKey, SCOPES, type Scope } from "../apiKeys.js";
import { buildApp } from "../app.js";
import { createV1Plugin, type V1Options } from "../v1.js";

export type ApiTestContext = {
  ctx: TestContext;
  app: FastifyInstance;
  /** Plaintext key per scope (owner `owner-<scope>`). */
  keys: Record<Scope, string>;
  keyRows: Record<Scope, ApiKey>;
  newKey: (owner: string, scopes: Scope[]) => Promise<string>;
  call: (key: string | null, opts: InjectOptions) => Promise<LightMyRequestResponse>;
  cleanup: () => Promise<void>;
};

export async function createApiTestContext(
  options: {
    chains?: TestChainSpec[];
    file?: Parameters<typeof createTestContext>[0] extends infer O
      ? O extends { file?: infer F }
        ? F
        : never
      : never;
    v1?: Partial<Omit<V1Options, "common" | "pool" | "redis">>;
    /** Change the test config (webhooks and their secrets) before the app is built. */
    configure?: (ctx: TestContext) => TestContext;
  } = {},
): Promise<ApiTestContext> {
  const base = await createTestContext({
    ...(options.chains ? { chains: options.chains } : {}),
    ...(options.file ? { file: options.file } : {}),
  });
  const ctx = options.configure ? options.configure(base) : base;
  const app = await buildApp({
    common: ctx.common,
    health: createHealth(),
    plugins: [
      createV1Plugin({
        common: ctx.common,
        pool: ctx.db.pool,
        redis: ctx.redis.redis,
        // Tests call from one address and many expect 401s; the limiter's own test sets its limit.
        authFailureLimit: { max: 1_000_000, windowMs: 60_000 },
        ...options.v1,
      }),
    ],
  });
  const keys = {} as Record<Scope, string>;
  const keyRows = {} as Record<Scope, ApiKey>;
  for (const scope of SCOPES) {
    const { key, plaintext } = await createApiKey(ctx.db.pool, {
      owner: `owner-${scope}`,
      scopes: [scope],
    });
    keys[scope] = plaintext;
    keyRows[scope] = key;
  }
  return {
    ctx,
    app,
    keys,
    keyRows,
    async newKey(owner, scopes) {
      return (await createApiKey(ctx.db.pool, { owner, scopes })).plaintext;
    },
    call(key, opts) {
      return app.inject({
        ...opts,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...opts.headers },
      });
    },
    async cleanup() {
      await app.close();
      await base.cleanup();
    },
  };
}
