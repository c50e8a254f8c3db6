/**
 * BullMQ queues and workers. Queues are doorbells: jobs carry ids and deterministic jobIds, handlers
 * are idempotent, and Postgres records what work is owed. Every queue and key lives under the
 * deployment's prefix so tests (one prefix per worker) and deployments never share keys.
 */
import { type JobsOptions, type Processor, Queue, Worker, type WorkerOptions } from "bullmq";
import type { Redis } from "ioredis";
import type { Common } from "./common.js";

export type QueueFactory = {
  prefix: string;
  queue: <T = unknown>(name: string) => Queue<T>;
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

export function createQueueFactory({
  redis,
  prefix,
  common,
}: {
  redis: Redis;
  prefix: string;
  common?: Pick<Common, "logger">;
}): QueueFactory {
  const queues = new Map<string, Queue>();
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  return {
    prefix,
    queue<T>(name: string) {
      let q = queues.get(name);
      if (!q) {
        q = new Queue(name, { connection: redis, prefix, defaultJobOptions });
        q.on("error", (err) => common?.logger.warn({ msg: "queue error", queue: name, err }));
        queues.set(name, q);
      }
      return q as unknown as Queue<T>;
    },
    worker(name, processor, options = {}) {
      // Workers need their own blocking connection; duplicate() keeps the same options.
      const connection = redis.duplicate();
      connections.push(connection);
      const w = new Worker(name, processor, { concurrency: 4, ...options, connection, prefix });
      w.on("error", (err) => common?.logger.warn({ msg: "worker error", queue: name, err }));
      w.on("failed", (job, err) =>
        common?.logger.warn({
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
