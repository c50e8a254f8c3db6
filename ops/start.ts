/**
 * `custody-node start`: build Common, answer liveness at once, connect Postgres and Redis, run the
 * selected roles, serve health and metrics (and the API when the api role runs), and stop cleanly
 * on SIGTERM/SIGINT.
 *
 * The port is bound before anything else: /healthz answers 200 while Postgres, Redis or the RPC
 * nodes are still out (an ECS liveness check must not restart a task for a dependency's outage),
 * /readyz answers 503 SERVICE_STARTING with the checks registered so far, and once the roles are up
 * the same server hands every request to the Fastify app. Before any role starts, the listed
 * tokens are checked against their contracts (ops/tokenConfig.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { buildApp, handlerProblem, type Problem } from "../api/app.js";
import type { ChainConfig } from "../chains/index.js";
import { type Common, createCommon } from "../foundation/common.js";
import { type Config, chainByKey } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import { createHealth, type Health } from "../foundation/health.js";
import { registerRuntimeMetrics } from "../foundation/metrics.js";
import { createQueueFactory } from "../foundation/queues.js";
import { closeRedis, createFailFastRedis, createRedis } from "../foundation/redis.js";
import type { RoleContext, RoleName } from "../foundation/roles.js";
import { migrate } from "./migrate.js";
import { ROLES } from "./roles.js";
import { registerStateMetrics } from "./stateMetrics.js";
import { checkTokenConfig } from "./tokenConfig.js";

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

  const health = createHealth();
  const http = await listenFirst(health, config.env.HOST, config.env.PORT);
  log.info({ msg: "listening (liveness up; starting roles)", url: http.url });

  // Work (roles, queues) must be done CLOSE_RESERVE_MS before the shutdown timeout, so closing
  // Redis and Postgres still fits: during an outage a BullMQ worker cannot close gracefully (its
  // connection queues the QUIT until Redis returns) and is abandoned, which is safe by design.
  let stopBy = Number.POSITIVE_INFINITY;
  const stop = async () => {
    stopBy = Date.now() + Math.max(1000, config.env.SHUTDOWN_TIMEOUT_S * 1000 - CLOSE_RESERVE_MS);
    await http.close();
    await common.shutdown.kill("stop");
  };
  if (options.handleSignals) installSignalHandlers(common, stop);

  if (options.migrate) await migrate(config.env.DATABASE_URL, { log: (m) => log.info({ msg: m }) });

  const pool = createPool(config.env.DATABASE_URL, {
    max: 20,
    idleInTransactionTimeoutMs: config.env.PG_IDLE_IN_TRANSACTION_TIMEOUT_S * 1000,
  });
  // pool.end() waits for every client: one a starting role holds, or one still connecting to a
  // hung server, would hold the exit past the stop timeout. Past the deadline the process exits
  // and the server sees the sockets close (session locks included).
  common.shutdown.add("postgres", async () => {
    if (!(await settlesWithin(pool.end(), POOL_END_TIMEOUT_MS)))
      log.warn({ msg: "postgres pool did not close in time; left to the exit", step: "postgres" });
  });
  const redis = createRedis(config.env.REDIS_URL);
  common.shutdown.add("redis", () => closeRedis(redis));
  const queues = createQueueFactory({ redis, prefix: config.env.REDIS_PREFIX, common });
  const bounded = (step: string, fn: () => Promise<void>) => async () => {
    if (!(await settlesWithin(fn(), Math.max(0, stopBy - Date.now()), true)))
      log.warn({ msg: "did not stop before the shutdown deadline; abandoned", step });
  };
  common.shutdown.add(
    "queues",
    bounded("queues", () => queues.close()),
  );
  registerRuntimeMetrics(common.metrics.registry, {
    pool,
    redis,
    prefix: config.env.REDIS_PREFIX,
    queues,
  });

  if (options.roles.includes("api"))
    registerStateMetrics(common.metrics.registry, {
      pool,
      chains,
      hotWallets: config.hotWallets,
    });

  health.add({
    name: "postgres",
    check: async () => {
      await pool.query("SELECT 1");
      return { ok: true };
    },
  });
  // Probed on a fail-fast connection: on the workers' one a PING would wait out the whole outage.
  const redisProbe = createFailFastRedis(redis);
  common.shutdown.add("redis probe", () => closeRedis(redisProbe));
  health.add({
    name: "redis",
    check: async () => ({ ok: (await redisProbe.ping()) === "PONG" }),
  });

  const ctx: RoleContext = { common, pool, redis, queues, health, chains, httpPlugins: [] };
  try {
    // Before any role: the listed tokens' config against their contracts (wrong decimals show
    // every amount of the token wrong; a token address without code sees no deposit).
    await checkTokenConfig({ common, config, chains, health });
    for (const role of options.roles) {
      const defs = ROLES[role];
      if (defs.length === 0)
        log.warn({ msg: "role has no implementation in this build yet", role });
      for (const def of defs) {
        const handle = await def.start(ctx);
        // A signal while this role was starting: the shutdown has already run without it.
        if (common.shutdown.isShuttingDown()) {
          await handle.stop();
          return await stopping();
        }
        // Roles stop in reverse start order, before queues, Redis and Postgres close.
        common.shutdown.add(`role:${role}`, bounded(`role:${role}`, handle.stop));
        log.info({ msg: "role started", role, part: def.description });
      }
    }
    const app = await buildApp({ common, health, plugins: ctx.httpPlugins });
    await app.ready();
    if (common.shutdown.isShuttingDown()) return await stopping();
    http.serve(app);
    common.shutdown.add("http", async () => {
      await http.close();
      await app.close();
    });
  } catch (error) {
    // A start cut short by SIGTERM (a pool closed under a starting role) is not a failure.
    if (common.shutdown.isShuttingDown()) return await stopping();
    await stop();
    throw error;
  }
  log.info({
    msg: "custody-node started",
    url: http.url,
    roles: options.roles,
    chains: chains.map((c) => c.key),
  });
  return { common, url: http.url, stop };
}

const CLOSE_RESERVE_MS = 5000;
const POOL_END_TIMEOUT_MS = 2000;

/**
 * True when `promise` settles within `ms`, false when it has not (it is left running). A rejection
 * is rethrown when `rethrow` is set (the shutdown logs it), else counts as settled.
 */
async function settlesWithin(
  promise: Promise<unknown>,
  ms: number,
  rethrow = false,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = promise.then(
    () => true,
    (error: unknown) => {
      if (rethrow) throw error;
      return true;
    },
  );
  try {
    return await Promise.race([
      settled,
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The start was overtaken by a stop: wait for the signal handler to exit the process. */
function stopping(): Promise<never> {
  return new Promise<never>(() => {});
}

/**
 * SIGTERM/SIGINT stop the service whenever they come, also while roles are still starting (a
 * dependency outage can hold a role's start): stop within SHUTDOWN_TIMEOUT_S and exit 0, or exit 1.
 */
function installSignalHandlers(common: Common, stop: () => Promise<void>): void {
  const log = common.logger.child({ component: "start" });
  const timeoutS = common.config.env.SHUTDOWN_TIMEOUT_S;
  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ msg: "signal received, stopping", signal });
    const timer = setTimeout(() => {
      log.error({ msg: "shutdown timed out, exiting", timeout_s: timeoutS });
      process.exit(1);
    }, timeoutS * 1000);
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

type EarlyHttp = {
  url: string;
  /** From now on every request goes to `app` (it must be ready, not listening). */
  serve: (app: FastifyInstance) => void;
  /** Stop accepting, let in-flight requests finish, drop idle keep-alive connections. */
  close: () => Promise<void>;
};

/** Bind the service port before any dependency is reached (see the module comment). */
async function listenFirst(health: Health, host: string, port: number): Promise<EarlyHttp> {
  let app: FastifyInstance | undefined;
  const send = (res: ServerResponse, status: number, body: unknown, type = "application/json") => {
    res.writeHead(status, { "content-type": type });
    res.end(JSON.stringify(body));
  };
  // Errors are problems with a stable code here too, as the app answers them once it serves.
  const sendProblem = (res: ServerResponse, body: Problem) =>
    send(res, body.status, body, "application/problem+json");
  const starting = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") return send(res, 200, { status: "ok" });
    const title = "The service is starting its roles";
    if (path === "/readyz") {
      const { checks } = await health.run();
      return sendProblem(res, handlerProblem("SERVICE_STARTING", title, { checks }));
    }
    sendProblem(res, handlerProblem("SERVICE_STARTING", title, { detail: "retry shortly" }));
  };
  const server = createServer((req, res) => {
    if (app) app.server.emit("request", req, res);
    else
      void starting(req, res).catch(() =>
        sendProblem(res, handlerProblem("INTERNAL", "Internal error")),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const h = address.family === "IPv6" ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${h}:${address.port}`,
    serve: (ready) => {
      app = ready;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}
