/**
 * The process's Prometheus registry and the metrics every process exports (build info, DB pool,
 * BullMQ queue depth). One naming scheme for every module: `custody_<module>_<what>`, `_seconds`
 * for durations, `_total` for counters, base units (wei, token base units, seconds) in help text.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";
import type { Pool } from "pg";
import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { metricOnce } from "./metricOnce.js";
import type { QueueFactory } from "./queues.js";

export type Metrics = { registry: Registry };

/** One registry per process, shared by every module (each registers its own metrics on it). */
export function createMetrics({ defaults = true }: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "custody-node" });
  if (defaults) collectDefaultMetrics({ register: registry });
  buildInfo(registry);
  return { registry };
}

// The get-or-register helpers live apart (foundation/queues.ts uses them, and this file reads
// queue counts): re-exported here, where metrics are looked for.
export { counterOnce, gaugeOnce, metricOnce } from "./metricOnce.js";

export type BuildInfo = { version: string; commit: string; node: string };

let cachedBuild: BuildInfo | undefined;

/**
 * The running build: package.json's version, the commit (CUSTODY_BUILD_COMMIT, set by the image
 * build, else `git rev-parse` of a checkout, else "unknown") and the Node version.
 */
export function readBuildInfo(): BuildInfo {
  if (cachedBuild) return cachedBuild;
  let version = "unknown";
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    version = typeof pkg.version === "string" ? pkg.version : version;
  } catch {
    // dist/ layouts without package.json beside them: "unknown"
  }
  let commit = process.env.CUSTODY_BUILD_COMMIT ?? "";
  if (!/^[0-9a-f]{7,40}$/.test(commit)) {
    try {
      commit = execFileSync("git", ["rev-parse", "HEAD"], {
        cwd: new URL(".", import.meta.url),
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 2000,
      }).trim();
    } catch {
      commit = "unknown";
    }
  }
  cachedBuild = { version, commit, node: process.version };
  return cachedBuild;
}

function buildInfo(registry: Registry): void {
  metricOnce(registry, "custody_build_info", () => {
    const g = new Gauge({
      name: "custody_build_info",
      help: "Always 1; the labels say which build runs (version, git commit, Node version)",
      labelNames: ["version", "commit", "node"],
      registers: [registry],
    });
    g.set(readBuildInfo(), 1);
    return g;
  });
}

/** The BullMQ job states whose counts `custody_queue_jobs` exports. */
export const QUEUE_STATES = ["waiting", "active", "delayed", "failed"] as const;

/**
 * Metrics read at scrape time from the process's Postgres pool and its deployment's BullMQ queues
 * (every queue under the Redis prefix, found by its `meta` key; a scrape while Redis is out leaves
 * the queue gauges empty rather than waiting on it).
 */
export function registerRuntimeMetrics(
  registry: Registry,
  deps: { pool: Pool; redis: Redis; prefix: string; queues: QueueFactory; timeoutMs?: number },
): void {
  metricOnce(
    registry,
    "custody_db_pool_clients",
    () =>
      new Gauge({
        name: "custody_db_pool_clients",
        help: "Postgres clients of this process's pool by state (total = open connections, idle, waiting = callers queued for a client)",
        labelNames: ["state"],
        registers: [registry],
        collect() {
          this.set({ state: "total" }, deps.pool.totalCount);
          this.set({ state: "idle" }, deps.pool.idleCount);
          this.set({ state: "waiting" }, deps.pool.waitingCount);
        },
      }),
  );
  const timeoutMs = deps.timeoutMs ?? 2000;
  metricOnce(
    registry,
    "custody_queue_jobs",
    () =>
      new Gauge({
        name: "custody_queue_jobs",
        help: "BullMQ jobs per queue of this deployment by state (waiting, active, delayed, failed)",
        labelNames: ["queue", "state"],
        registers: [registry],
        async collect() {
          this.reset();
          let timer: NodeJS.Timeout | undefined;
          const counts = await Promise.race([
            queueCounts(deps),
            new Promise<undefined>((resolve) => {
              timer = setTimeout(() => resolve(undefined), timeoutMs);
            }),
          ])
            .catch(() => undefined)
            .finally(() => clearTimeout(timer));
          for (const [queue, byState] of counts ?? [])
            for (const state of QUEUE_STATES) this.set({ queue, state }, byState[state] ?? 0);
        },
      }),
  );
}

async function queueCounts(deps: {
  redis: Redis;
  prefix: string;
  queues: QueueFactory;
}): Promise<[string, Record<string, number>][]> {
  const names = new Set<string>();
  const head = `${deps.prefix}:`;
  let cursor = "0";
  do {
    const [next, keys] = await deps.redis.scan(cursor, "MATCH", `${head}*:meta`, "COUNT", 1000);
    cursor = next;
    for (const k of keys) names.add(k.slice(head.length, -":meta".length));
  } while (cursor !== "0");
  return Promise.all(
    [...names].sort().map(async (name): Promise<[string, Record<string, number>]> => {
      return [name, await deps.queues.queue(name).getJobCounts(...QUEUE_STATES)];
    }),
  );
}

/**
 * A scrape-time read of Postgres (a gauge's `collect`), or undefined when it fails or is slower
 * than `timeoutMs`: /metrics answers in time, and the caller keeps its last figures (no read is
 * no evidence).
 */
export async function withinTimeout<T>(
  read: Promise<T>,
  timeoutMs: number,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    read,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    }),
  ])
    .catch(() => undefined)
    .finally(() => clearTimeout(timer));
}
