import { Redis } from "ioredis";

export type { Redis };

/**
 * A Redis connection. BullMQ needs `maxRetriesPerRequest: null` on worker connections;
 * we use it everywhere so a Redis blip delays work instead of failing it (Postgres is the truth).
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
