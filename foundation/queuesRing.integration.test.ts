import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedisServer } from "../ops/e2e/redisServer.js";
import { waitFor, within } from "../ops/testing/wait.js";
import { createLogger } from "./logger.js";
import { createMetrics } from "./metrics.js";
import { createQueueFactory, jobId, type QueueFactory } from "./queues.js";
import { createRedis, type Redis } from "./redis.js";

/** `ring` against a dedicated redis-server that the test kills and restarts (never the shared one). */
describe("doorbell ring with Redis down", () => {
  let server: RedisServer;
  let redis: Redis;
  let queues: QueueFactory;
  const metrics = createMetrics({ defaults: false });

  async function rings(result: "rung" | "failed"): Promise<number> {
    const m = await metrics.registry.getSingleMetric("custody_queue_doorbell_rings_total")?.get();
    return (
      m?.values.find((v) => v.labels.result === result && v.labels.queue === "bells")?.value ?? 0
    );
  }

  beforeAll(async () => {
    server = await startRedisServer();
    redis = createRedis(server.url);
    queues = createQueueFactory({
      redis,
      prefix: "ringtest",
      common: { logger: createLogger("silent"), metrics },
    });
  });
  afterAll(async () => {
    await queues?.close();
    await redis?.quit().catch(() => redis.disconnect());
    await server?.stop();
  });

  it("rings while Redis is up, returns false within its bound while down, and a worker resumes after", async () => {
    const seen: string[] = [];
    queues.worker<{ n: string }>("bells", async (job) => {
      seen.push(job.data.n);
    });
    const job = (n: string) => ({ name: "bell", data: { n }, opts: { jobId: jobId("bell", n) } });
    expect(await queues.ring("bells", job("a"))).toBe(true);
    await waitFor("the worker to run job a", () => seen.includes("a"));

    await server.stop();
    for (const [i, input] of [job("b"), [job("c"), job("d")]].entries()) {
      // The promised bound is 500 ms; a loaded machine may add seconds of event-loop lag, so the
      // deadline is 20x that. A ring that waited on the reconnecting client would never return.
      const ok = await within(
        `ring ${i} with Redis down (its bound: 500 ms)`,
        queues.ring("bells", input, { timeoutMs: 500 }),
        10_000,
      );
      expect(ok, `ring ${i} with Redis down`).toBe(false);
    }
    expect(await rings("failed")).toBe(2);

    await server.start();
    // The producer reconnects on its own; a ring after that is taken and the worker runs it.
    await waitFor(
      "a ring to be taken after Redis restarted",
      () => queues.ring("bells", job("e"), { timeoutMs: 500 }),
      { everyMs: 200 },
    );
    await waitFor(`the worker to run job e`, () => seen.includes("e"));
    expect(seen).not.toContain("b");
    expect(await rings("rung")).toBeGreaterThanOrEqual(2);
  }, 180_000);
});
