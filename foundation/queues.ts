/**
 * BullMQ queues and workers. Queues are doorbells: jobs carry ids and deterministic jobIds, handlers
 * are idempotent, and Postgres records what work is owed. Every queue and key lives under the
 * deployment's prefix so tests (one prefix per worker) and deployments never share keys.
 *
 * Producers ring with `ring(...)`: it returns within `timeoutMs`, never throws, and on failure logs,
 * counts (`custody_queue_doorbell_rings_total{result="failed"}`) and leaves the work to the periodic pass
 * that reads Postgres. Queues use a fail-fast connection; workers keep a blocking one each.
 */

import { type JobsOptions, type Processor, Queue, Worker, type WorkerOptions } from "bullmq";
import type { Redis } from "ioredis";
import type { Counter, Registry } from "prom-client";
import { BaseError } from "./errors.js";
import type { Logger } from "./logger.js";
import { counterOnce } from "./metricOnce.js";
import { createFailFastRedis } from "./redis.js";

/** One job of a doorbell ring; `jobId` is required so a re-rung bell is one job. */
export type DoorbellJob<T = unknown> = {
  name: string;
  data: T;
  opts: JobsOptions & { jobId: string };
};

export type RingOptions = {
  /** Give up (and count a failure) after this long; default 1000 ms. */
  timeoutMs?: number;
};

export type QueueFactory = {
  prefix: string;
  /** A queue on the fail-fast producer connection (for reads and tests; producers use `ring`). */
  queue: <T = unknown>(name: string) => Queue<T>;
  /**
   * Enqueue doorbell jobs without ever blocking the caller on Redis: resolves `true` when Redis
   * took them, `false` (logged and counted) when it did not answer in time or failed.
   */
  ring: <T = unknown>(
    queue: string,
    jobs: DoorbellJob<T> | readonly DoorbellJob<T>[],
    options?: RingOptions,
  ) => Promise<boolean>;
  worker: <T = unknown, R = unknown>(
    name: string,
    processor: Processor<T, R>,
    options?: Partial<Omit<WorkerOptions, "connection" | "prefix">>,
  ) => Worker<T, R>;
  close: () => Promise<void>;
};

export const defaultJobOptions: JobsOptions = {
  attempts: 10,
  backoff: { type: "exponential", delay: 1000 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

export const DEFAULT_RING_TIMEOUT_MS = 1000;
/** At most one "doorbell not rung" warning per queue per this interval (outages ring often). */
const WARN_EVERY_MS = 10_000;

function ringCounter(registry: Registry): Counter<"queue" | "result"> {
  return counterOnce(registry, {
    name: "custody_queue_doorbell_rings_total",
    help: "Doorbell rings by queue and result (failed: Redis did not take it; the periodic pass will)",
    labelNames: ["queue", "result"],
  });
}

export function createQueueFactory({
  redis,
  prefix,
  common,
}: {
  /** A blocking-capable connection (`createRedis`): workers duplicate it. */
  redis: Redis;
  prefix: string;
  /** The process's logger and, when given, its metrics registry (a Common fits). */
  common?: { logger: Logger; metrics?: { registry: Registry } };
}): QueueFactory {
  const queues = new Map<string, Queue>();
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  const log = common?.logger.child({ component: "queues" });
  const rings = common?.metrics ? ringCounter(common.metrics.registry) : undefined;
  const lastWarn = new Map<string, { at: number; suppressed: number }>();
  let producer: Redis | undefined;

  function producerConnection(): Redis {
    if (!producer) {
      producer = createFailFastRedis(redis);
      connections.push(producer);
    }
    return producer;
  }

  function queue<T>(name: string): Queue<T> {
    let q = queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: producerConnection(), prefix, defaultJobOptions });
      q.on("error", (err) => warnThrottled("queue error", name, { err }));
      queues.set(name, q);
    }
    return q as unknown as Queue<T>;
  }

  /** One warning per (what, queue) per WARN_EVERY_MS; an outage would otherwise log every retry. */
  function warnThrottled(what: string, name: string, fields: Record<string, unknown>) {
    const key = `${what}\u0000${name}`;
    const now = Date.now();
    const last = lastWarn.get(key);
    if (last && now - last.at < WARN_EVERY_MS) {
      last.suppressed++;
      return;
    }
    lastWarn.set(key, { at: now, suppressed: 0 });
    log?.warn({ msg: what, queue: name, suppressed_since_last: last?.suppressed ?? 0, ...fields });
  }

  function ringFailed(name: string, jobs: number, error: unknown) {
    rings?.inc({ queue: name, result: "failed" });
    warnThrottled("doorbell not rung; the periodic pass will pick the work up", name, {
      jobs,
      err: error,
    });
  }

  async function ring<T>(
    name: string,
    input: DoorbellJob<T> | readonly DoorbellJob<T>[],
    options: RingOptions = {},
  ): Promise<boolean> {
    const jobs = (Array.isArray(input) ? input : [input]) as readonly DoorbellJob<T>[];
    if (jobs.length === 0) return true;
    const timeoutMs = options.timeoutMs ?? DEFAULT_RING_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      const q = queue<T>(name);
      const connection = producerConnection();
      // Lost: do not even start (BullMQ would wait for the connection). Still connecting for
      // the first time: let the timeout bound the wait.
      if (["reconnecting", "close", "end"].includes(connection.status))
        throw new BaseError(`Redis connection is ${connection.status}`, {
          code: "REDIS_UNAVAILABLE",
          meta: { status: connection.status },
        });
      const add =
        jobs.length === 1
          ? q.add(jobs[0]!.name as never, jobs[0]!.data as never, jobs[0]!.opts)
          : q.addBulk(jobs.map((j) => ({ name: j.name, data: j.data, opts: j.opts })) as never);
      add.catch(() => {}); // a late failure after the timeout is already counted
      await Promise.race([
        add,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
      rings?.inc({ queue: name, result: "rung" });
      return true;
    } catch (error) {
      ringFailed(name, jobs.length, error);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    prefix,
    queue,
    ring,
    worker(name, processor, options = {}) {
      // Workers need their own blocking connection; duplicate() keeps the same options.
      const connection = redis.duplicate();
      connection.on("error", () => {});
      connections.push(connection);
      const w = new Worker(name, processor, { concurrency: 4, ...options, connection, prefix });
      w.on("error", (err) => warnThrottled("worker error", name, { err }));
      w.on("failed", (job, err) =>
        log?.warn({
          msg: "job failed",
          queue: name,
          job_id: job?.id,
          attempts: job?.attemptsMade,
          err,
        }),
      );
      workers.push(w as unknown as Worker);
      return w;
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all([...queues.values()].map((q) => q.close()));
      await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
}

/**
 * A deterministic BullMQ jobId from parts (BullMQ forbids ":" in custom ids, so parts are joined
 * with "_"). The same work always gets the same id, so a re-rung doorbell is enqueued once.
 */
export function jobId(...parts: (string | number | bigint)[]): string {
  return parts.map((p) => String(p).replaceAll(":", "_")).join("_");
}
