import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestRedis, type TestRedis } from "../ops/testing/redis.js";
import { waitFor, within } from "../ops/testing/wait.js";
import { createLogger } from "./logger.js";
import { createQueueFactory, jobId } from "./queues.js";

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
    // A queue name no other run uses, so "no key outside our prefix" reads only our own keys.
    const name = `deposits-${randomBytes(4).toString("hex")}`;
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      queues.worker<{ depositId: string }>(name, async (job) => {
        seen.push(job.data.depositId);
        if (seen.length === 2) resolve();
        return { credited: job.data.depositId };
      });
    });
    const q = queues.queue<{ depositId: string }>(name);
    await q.add("credit", { depositId: "d1" }, { jobId: jobId("credit", "d1") });
    await q.add("credit", { depositId: "d1" }, { jobId: jobId("credit", "d1") }); // a retry of the doorbell
    await q.add("credit", { depositId: "d2" }, { jobId: jobId("credit", "d2") });
    await within("both jobs to be processed", done, 60_000);
    // Both completed; d1's second add was the same job, so there is no third run.
    await waitFor("both jobs to be marked completed", async () => {
      const counts = await q.getJobCounts("completed", "failed");
      return counts.completed === 2 || (counts.failed ?? 0) > 0 ? counts : undefined;
    });
    expect(await q.getJobCounts("completed", "failed", "waiting", "active")).toEqual({
      completed: 2,
      failed: 0,
      waiting: 0,
      active: 0,
    });
    expect(seen.sort()).toEqual(["d1", "d2"]);
    // Every key of this queue lives under the test's prefix (and some do).
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.redis.scan(cursor, "MATCH", `*${name}*`, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !k.startsWith(`${redis.prefix}:${name}:`))).toEqual([]);
    await queues.close();
  });
});
