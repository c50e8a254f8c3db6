/**
 * What every simulated seed runs on: a fresh Postgres database cloned from a migrated template
 * (milliseconds instead of a migration per seed), a Redis prefix, a Common with its own metrics
 * registry, and its own anvil with manual mining (no automine, no block timer: the scenario mines,
 * so a seed's schedule replays).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { toHex } from "viem";
import { type ChainConfig, chainSchema } from "../../chains/index.js";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/proxy.js";
import { type Common, createCommon } from "../../foundation/common.js";
import { type Config, envSchema, policiesSchema } from "../../foundation/config.js";
import { createPool, type Pool } from "../../foundation/db.js";
import { createLogger } from "../../foundation/logger.js";
import { createMetrics } from "../../foundation/metrics.js";
import { createQueueFactory, type QueueFactory } from "../../foundation/queues.js";
import type { Rpc } from "../../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../devstack/anvil.js";
import { createTestDatabase, TEST_PG_ADMIN_URL } from "../testing/database.js";
import { createTestRedis, type TestRedis } from "../testing/redis.js";
import type { Random } from "./random.js";

export type SimLogLevel = "silent" | "error" | "warn" | "info" | "debug";

/** Shared by all seeds of one run. */
export type SimRun = {
  /** A database per seed, cloned from the migrated template. */
  createDatabase: () => Promise<SimDatabase>;
  logLevel: SimLogLevel;
  close: () => Promise<void>;
};

export type SimDatabase = {
  name: string;
  url: string;
  pool: Pool;
  drop: () => Promise<void>;
  /** Leave this database in place when the run closes (a failing seed kept for inspection). */
  keep: () => void;
};

function withDatabase(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createSimRun(options: { logLevel?: SimLogLevel } = {}): Promise<SimRun> {
  const template = await createTestDatabase();
  // A template must have no open connection while it is copied.
  await template.pool.end();
  const tag = randomBytes(3).toString("hex");
  let n = 0;
  // Seeds' databases not dropped yet (an interrupted seed's is dropped by close()).
  const live = new Set<() => Promise<void>>();
  return {
    logLevel: options.logLevel ?? "silent",
    async createDatabase() {
      const name = `custody_sim_${process.pid}_${tag}_${n++}`;
      await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template.name}`));
      const url = withDatabase(TEST_PG_ADMIN_URL, name);
      const pool = createPool(url, { max: 10, applicationName: name });
      let dropped = false;
      const drop = async () => {
        if (dropped) return;
        dropped = true;
        live.delete(drop);
        await pool.end().catch(() => {});
        await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
      };
      live.add(drop);
      // A kept database (--keep) is left alone by close().
      return { name, url, pool, drop, keep: () => live.delete(drop) };
    },
    async close() {
      for (const drop of [...live]) await drop().catch(() => {});
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${template.name} WITH (FORCE)`));
    },
  };
}

/** One seed's servers and plumbing. */
export type SimWorld = {
  db: SimDatabase;
  redis: TestRedis;
  queues: QueueFactory;
  anvil: Anvil;
  common: Common;
  config: Config;
  /** Tear everything down (the database too, unless `keep`). */
  close: (options?: { keep?: boolean }) => Promise<void>;
};

/** Parse a chain entry like the config file does (the finality rule and defaults included). */
export function parseChain(entry: Record<string, unknown>): ChainConfig {
  return chainSchema.parse(entry);
}

/** A scenario's chain as the service sees it: anvil behind two lying endpoints. */
export type ProxiedSimChain = {
  /** The first RPC endpoint, and the fallback the adapter turns to when it fails. */
  primary: LyingProxy;
  fallback: LyingProxy;
  /** The chain's config entry (both proxies as its rpcUrls), before parseChain. */
  entry: Record<string, unknown>;
};

/**
 * Start the two lying proxies in front of a seed's anvil (a hang lasts `hangMs` when a fault asks
 * for one) and write the chain entry that names them: block confirmations and finality, a 200 ms
 * block time, EIP-1559 fees, plus the scenario's own keys (`extra`).
 */
export async function proxiedSimChain(
  anvil: Anvil,
  {
    chainId,
    confirmations,
    finality,
    hangMs,
    extra = {},
  }: {
    chainId: number;
    confirmations: number;
    finality: number;
    hangMs: number;
    extra?: Record<string, unknown>;
  },
): Promise<ProxiedSimChain> {
  const primary = await startLyingProxy(anvil.rpcUrl);
  const fallback = await startLyingProxy(anvil.rpcUrl);
  primary.setHangMs(hangMs);
  fallback.setHangMs(hangMs);
  const entry = {
    key: "sim",
    chainId,
    name: "simulated chain",
    rpcUrls: [primary.url, fallback.url],
    confirmations: { kind: "blocks", blocks: confirmations },
    finality: { kind: "blocks", blocks: finality },
    reorgWindow: finality,
    blockTimeMs: 200,
    feeModel: "eip1559",
    ...extra,
  };
  return { primary, fallback, entry };
}

export async function createSimWorld(
  run: SimRun,
  {
    chainId,
    chains,
    policies = {},
    anvilArgs = [],
  }: {
    chainId: number;
    chains: (anvil: Anvil) => ChainConfig[] | Promise<ChainConfig[]>;
    /** The config file's `policies` section (validated like the file). */
    policies?: Record<string, unknown>;
    /** More of anvil's flags (e.g. `--slots-in-an-epoch`: its `finalized` tag's depth). */
    anvilArgs?: string[];
  },
): Promise<SimWorld> {
  const anvil = await startAnvil({ chainId, port: 0, args: ["--no-mining", ...anvilArgs] });
  let db: SimDatabase | undefined;
  let redis: TestRedis | undefined;
  try {
    db = await run.createDatabase();
    redis = await createTestRedis();
    const env = envSchema.parse({
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      REDIS_PREFIX: redis.prefix,
      PORT: "0",
      LOG_LEVEL: run.logLevel,
    });
    const config: Config = Object.freeze({
      env,
      chains: await chains(anvil),
      hotWallets: [],
      policies: policiesSchema.parse(policies),
      webhooks: [],
      webhookSecrets: {},
      configPath: "(sim)",
    });
    const common = createCommon(config, {
      logger: createLogger(run.logLevel),
      metrics: createMetrics({ defaults: false }),
    });
    const queues = createQueueFactory({ redis: redis.redis, prefix: redis.prefix, common });
    const world: SimWorld = {
      db,
      redis,
      queues,
      anvil,
      common,
      config,
      async close({ keep = false } = {}) {
        await common.shutdown.kill("sim seed done").catch(() => {});
        await queues.close().catch(() => {});
        await anvil.stop();
        await redis?.cleanup().catch(() => {});
        if (keep) {
          db?.keep();
          await db?.pool.end().catch(() => {});
        } else await db?.drop();
      },
    };
    return world;
  } catch (error) {
    await anvil.stop();
    await redis?.cleanup().catch(() => {});
    await db?.drop().catch(() => {});
    throw error;
  }
}

/**
 * Finality by the node's `finalized` tag (Ethereum's rule), drawn for 30% of the seeds from its own
 * stream (`finality-tag`: a seed without it runs as before). anvil's `finalized` block is its head
 * less two epochs (`--slots-in-an-epoch`), at least as deep as the drawn block rule `finality`, so
 * the reorgs a scenario draws above that rule stay above it; each lying endpoint answers the tag as
 * its view does (a lagging one: an older final block).
 */
export function drawTagFinality(rng: Random, finality: number) {
  const on = rng.fork("finality-tag").chance(0.3);
  const slots = Math.ceil((finality - 1) / 2);
  return {
    on,
    /** How deep below the head a block is final as the service counts it (the tag's, or the rule's). */
    finalDepth: BigInt(on ? 2 * slots : finality - 1),
    /** createSimWorld's `anvilArgs`. */
    anvilArgs: on ? ["--slots-in-an-epoch", String(slots)] : [],
    /** The chain entry's keys (proxiedSimChain's `extra`). */
    entry: on ? { finality: { kind: "finalized" } } : {},
    /** The seed's stat: the tag's depth below the head, 0 without it. */
    stat: on ? 2 * slots : 0,
  };
}

/**
 * Base-fee spikes, drawn for 40% of the seeds from their own stream (`fee-spikes`: a seed without
 * them runs as before): at a quarter of the steps the next block's base fee is set to 1..60 gwei,
 * from which it decays as blocks stay near empty. What was signed for the old market waits unmined
 * until replaced at the new one, and a lagging endpoint still tells the old market.
 */
export function drawFeeSpikes(rng: Random) {
  const stream = rng.fork("fee-spikes");
  const on = stream.chance(0.4);
  return {
    on,
    /** A step's spike, if it draws one; returns whether it did. */
    async atStep(rpc: Rpc, step: number, trace: (line: string) => void): Promise<boolean> {
      if (!on || !stream.chance(0.25)) return false;
      const gwei = stream.int(1, 60);
      await rpc("anvil_setNextBlockBaseFeePerGas", [toHex(BigInt(gwei) * 10n ** 9n)]);
      trace(`step ${step}: the next block's base fee set to ${gwei} gwei`);
      return true;
    },
  };
}
