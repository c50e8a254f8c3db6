/**
 * One call for an integration test file: its own database, Redis prefix, Common (quiet logger,
 * private metrics registry) and optionally its own anvil chains on free ports.
 */

import { chainSchema } from "../../chains/index.js";
import { type Common, createCommon } from "../../foundation/common.js";
import {
  type Config,
  envSchema,
  type FileConfig,
  makeFileConfigSchema,
} from "../../foundation/config.js";
import { createLogger } from "../../foundation/logger.js";
import { createMetrics } from "../../foundation/metrics.js";
import { createQueueFactory, type QueueFactory } from "../../foundation/queues.js";
import { type Anvil, startAnvil } from "../devstack/anvil.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { createTestRedis, type TestRedis } from "./redis.js";

export type TestChainSpec = {
  chainId: number;
  key?: string;
  /** anvil --block-time in seconds; omitted: automine. */
  blockTime?: number;
  anvilArgs?: string[];
  /** Overrides for the chain's config entry (confirmations, tokens, …). */
  config?: Partial<FileConfig["chains"][number]> & Record<string, unknown>;
};

export type TestContext = {
  config: Config;
  common: Common;
  db: TestDatabase;
  redis: TestRedis;
  queues: QueueFactory;
  anvils: Anvil[];
  cleanup: () => Promise<void>;
};

function unlimitedPolicies(chains: { chainId: number; tokens?: unknown }[]) {
  const max = (2n ** 256n - 1n).toString();
  const limits: Record<
    string,
    { perTransaction: string; rolling24h: string; approvalThreshold: string }
  > = {};
  for (const chain of chains) {
    const tokens = Array.isArray(chain.tokens) ? (chain.tokens as { address?: unknown }[]) : [];
    const addresses = [
      "0x0000000000000000000000000000000000000000",
      ...tokens.map((t) => t.address),
    ];
    for (const address of addresses)
      if (typeof address === "string")
        limits[`${chain.chainId}:${address}`] = {
          perTransaction: max,
          rolling24h: max,
          approvalThreshold: max,
        };
  }
  return { withdrawals: { limits } };
}

export async function createTestContext(
  options: { chains?: TestChainSpec[]; file?: Partial<Record<keyof FileConfig, unknown>> } = {},
): Promise<TestContext> {
  const anvils: Anvil[] = [];
  let db: TestDatabase | undefined;
  let redis: TestRedis | undefined;
  try {
    for (const spec of options.chains ?? []) {
      anvils.push(
        await startAnvil({
          chainId: spec.chainId,
          port: 0,
          ...(spec.blockTime !== undefined ? { blockTime: spec.blockTime } : {}),
          ...(spec.anvilArgs ? { args: spec.anvilArgs } : {}),
        }),
      );
    }
    db = await createTestDatabase();
    redis = await createTestRedis();
    const chains = (options.chains ?? [{ chainId: 31337 }]).map((spec, i) => ({
      key: spec.key ?? `test-${spec.chainId}`,
      chainId: spec.chainId,
      name: `test chain ${spec.chainId}`,
      rpcUrls: [anvils[i]?.rpcUrl ?? "http://127.0.0.1:1"],
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 8,
      blockTimeMs: (spec.blockTime ?? 1) * 1000,
      feeModel: "eip1559",
      traces: true,
      ...spec.config,
    }));
    // Withdrawal policies fail closed (issue 14): a test that sets none gets an explicit policy
    // without limits or approvals for every asset of its chains; policy tests pass their own.
    const file = makeFileConfigSchema(chainSchema).parse({
      chains,
      policies: unlimitedPolicies(chains),
      ...options.file,
    });
    const env = envSchema.parse({
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      PORT: "0",
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    });
    const config: Config = Object.freeze({
      env,
      chains: file.chains,
      hotWallets: file.hotWallets,
      policies: file.policies,
      webhooks: file.webhooks,
      webhookSecrets: {},
      configPath: "(test)",
      api: file.api,
    });
    const common = createCommon(config, {
      logger: createLogger(env.LOG_LEVEL),
      metrics: createMetrics({ defaults: false }),
    });
    const queues = createQueueFactory({ redis: redis.redis, prefix: redis.prefix, common });
    const ctx: TestContext = {
      config,
      common,
      db,
      redis,
      queues,
      anvils,
      async cleanup() {
        await common.shutdown.kill("test cleanup");
        await queues.close().catch(() => {});
        await Promise.all(anvils.map((a) => a.stop()));
        await redis?.cleanup().catch(() => {});
        await db?.drop();
      },
    };
    return ctx;
  } catch (error) {
    await Promise.all(anvils.map((a) => a.stop()));
    await redis?.cleanup().catch(() => {});
    await db?.drop().catch(() => {});
    throw error;
  }
}
