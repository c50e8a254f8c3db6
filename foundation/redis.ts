import { Redis, type RedisOptions } from "ioredis";

export type { Redis };

/**
 * A Redis connection for BullMQ workers (blocking commands): `maxRetriesPerRequest: null`, so a
 * Redis blip delays a worker's next job instead of failing it. Producers must not use it directly:
 * a command on it waits for the whole outage (see `failFastOptions`).
 */
export function createRedis(url: string, options: { lazyConnect?: boolean } = {}): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    lazyConnect: options.lazyConnect ?? false,
  });
  redis.on("error", () => {});
  return redis;
}

/**
 * Options for a connection whose commands fail fast while Redis is away (no offline queue, one
 * retry, short timeouts). Producers (doorbells, rate limits) use it: Postgres holds the work, so a
 * command that cannot run now is dropped and the periodic pass picks the work up.
 */
export const failFastOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  commandTimeout: 2000,
} as const satisfies RedisOptions;

/**
 * A fail-fast sibling of `redis` (same server and credentials). `commandTimeoutMs` replaces the
 * 2 s wait for a reply (tests of an outage wait it out once per command).
 */
export function createFailFastRedis(
  redis: Redis,
  options: { commandTimeoutMs?: number } = {},
): Redis {
  const connection = redis.duplicate({
    ...failFastOptions,
    ...(options.commandTimeoutMs !== undefined ? { commandTimeout: options.commandTimeoutMs } : {}),
    lazyConnect: false,
  });
  connection.on("error", () => {});
  return connection;
}

/**
 * Close a connection without waiting on an outage: QUIT when connected (bounded by `timeoutMs`),
 * otherwise drop it at once. A plain `quit()` on a connection that is reconnecting waits for Redis
 * to come back (it is queued like any command), which held SIGTERM until the stop timeout.
 */
export async function closeRedis(redis: Redis, timeoutMs = 2000): Promise<void> {
  if (redis.status !== "ready") {
    redis.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.quit(),
      new Promise<void>((_, reject) => {
        timer = setTimeout(() => reject(new Error("QUIT timed out")), timeoutMs);
      }),
    ]);
  } catch {
    redis.disconnect();
  } finally {
    clearTimeout(timer);
  }
}
