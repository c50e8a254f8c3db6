/**
 * `custody-node start`: build Common, connect Postgres and Redis, run the selected roles, serve
 * health and metrics (and the API when the api role runs), and stop cleanly on SIGTERM/SIGINT.
 */
import { buildApp } from "../api/app.js";
import { type Common, createCommon } from "./common.js";
import { type ChainConfig, type Config, chainByKey } from "./config.js";
import { createPool } from "./db.js";
import { createHealth } from "./health.js";
import { registerRuntimeMetrics } from "./metrics.js";
import { migrate } from "./migrate.js";
import "./modules.js";
import { createQueueFactory } from "./queues.js";
import { createFailFastRedis, createRedis } from "./redis.js";
import { type RoleContext, type RoleHandle, type RoleName, roleRegistry } from "./roles.js";

export type StartOptions = {
  roles: RoleName[];
  chains?: string[] | undefined;
  /** Apply migrations before starting (the dev/demo default). */
  migrate?: boolean;
  /** Install SIGTERM/SIGINT handlers that stop and exit the process. */
  handleSignals?: boolean;
};

export type Service = { common: Common; url: string; stop: () => Promise<void> };

export async function startService(config: Config, options: StartOptions): Promise<Service> {
  const common = createCommon(config);
  const log = common.logger.child({ component: "start" });
  const chains: readonly ChainConfig[] = options.chains?.length
    ? options.chains.map((key) => chainByKey(config, key))
    : config.chains;

  if (options.migrate) await migrate(config.env.DATABASE_URL, { log: (m) => log.info({ msg: m }) });

  const pool = createPool(config.env.DATABASE_URL, { max: 20 });
  common.shutdown.add("postgres", () => pool.end());
  const redis = createRedis(config.env.REDIS_URL);
  common.shutdown.add("redis", async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  const queues = createQueueFactory({ redis, prefix: config.env.REDIS_PREFIX, common });
  common.shutdown.add("queues", () => queues.close());
  registerRuntimeMetrics(common.metrics.registry, {
    pool,
    redis,
    prefix: config.env.REDIS_PREFIX,
    queues,
  });

  const health = createHealth();
  health.add({
    name: "postgres",
    check: async () => {
      await pool.query("SELECT 1");
      return { ok: true };
    },
  });
  // Probed on a fail-fast connection: on the workers' one a PING would wait out the whole outage.
  const redisProbe = createFailFastRedis(redis);
  common.shutdown.add("redis probe", async () => {
    await redisProbe.quit().catch(() => redisProbe.disconnect());
  });
  health.add({
    name: "redis",
    check: async () => ({ ok: (await redisProbe.ping()) === "PONG" }),
  });

  const ctx: RoleContext = { common, pool, redis, queues, health, chains, httpPlugins: [] };
  const handles: { name: string; handle: RoleHandle }[] = [];
  for (const role of options.roles) {
    const defs = roleRegistry.get(role) ?? [];
    if (defs.length === 0) log.warn({ msg: "role has no implementation in this build yet", role });
    for (const def of defs) {
      handles.push({ name: role, handle: await def.start(ctx) });
      log.info({ msg: "role started", role, part: def.description });
    }
  }
  // Roles stop in reverse start order, before queues, Redis and Postgres close.
  for (const { name, handle } of handles) common.shutdown.add(`role:${name}`, () => handle.stop());

  const app = await buildApp({ common, health, plugins: ctx.httpPlugins });
  const url = await app.listen({ host: config.env.HOST, port: config.env.PORT });
  common.shutdown.add("http", () => app.close());
  log.info({
    msg: "custody-node started",
    url,
    roles: options.roles,
    chains: chains.map((c) => c.key),
  });

  const stop = async () => {
    await common.shutdown.kill("stop");
  };

  if (options.handleSignals) {
    const onSignal = (signal: NodeJS.Signals) => {
      log.info({ msg: "signal received, stopping", signal });
      const timer = setTimeout(() => {
        log.error({ msg: "shutdown timed out, exiting", timeout_s: config.env.SHUTDOWN_TIMEOUT_S });
        process.exit(1);
      }, config.env.SHUTDOWN_TIMEOUT_S * 1000);
      timer.unref();
      stop().then(
        () => {
          log.info({ msg: "stopped" });
          process.exit(0);
        },
        (error) => {
          log.error({ msg: "shutdown failed", err: error });
          process.exit(1);
        },
      );
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }
  return { common, url, stop };
}
