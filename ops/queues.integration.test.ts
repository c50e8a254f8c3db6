import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";
import { createQueueFactory, jobId } from "./queues.js";
import { createTestRedis, type TestRedis } from "./testing/redis.js";

describe("BullMQ on real Redis", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await createTestRedis();
  });
  afterAll(async () => {
    await redis.cleanup();
  });

  it("round-trips jobs under the prefix, and a deterministic jobId is enqueued once", async () => {
    const queues = createQueueFactory({
      redis: redis.redis,
      prefix: redis.prefix,
      common: { logger: createLogger("silent") },
    });
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      queues.worker<{ depositId: string }>("deposits", async (job) => {
        seen.push(job.data.depositId);
        if (seen.length === 2) resolve();
        return { credited: job.data.depositId };
      });
    });
    const q = queues.queue<{ depositId: string }>("deposits");
    await q.add("credit", { depositId: "d1" }, { jobId: jobId("credit", "d1") });
    await q.add("credit", { depositId: "d1" }, { jobId: jobId("credit", "d1") }); // a retry of the doorbell
    await q.add("credit", { depositId: "d2" }, { jobId: jobId("credit", "d2") });
    await done;
    expect(seen.sort()).toEqual(["d1", "d2"]);
    const keys = await redis.redis.keys(`${redis.prefix}:deposits:*`);
    expect(keys.length).toBeGreaterThan(0);
    const other = await redis.redis.keys("bull:deposits:*");
    expect(other).toEqual([]);
    await queues.close();
  });
});
