/** A Redis key / BullMQ prefix per test file, with its keys deleted afterwards. */
import { randomBytes } from "node:crypto";
import { createRedis, type Redis } from "../../foundation/redis.js";

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export type TestRedis = { url: string; prefix: string; redis: Redis; cleanup: () => Promise<void> };

export async function createTestRedis(): Promise<TestRedis> {
  const prefix = `test:${process.env.VITEST_POOL_ID ?? "0"}:${process.pid}:${randomBytes(4).toString("hex")}`;
  const redis = createRedis(TEST_REDIS_URL);
  return {
    url: TEST_REDIS_URL,
    prefix,
    redis,
    async cleanup() {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
