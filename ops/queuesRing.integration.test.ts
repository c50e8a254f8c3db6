import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedisServer } from "./e2e/redisServer.js";
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
    const m = await metrics.registry.getSingleMetric("queue_doorbell_rings_total")?.get();
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
    const upDeadline = Date.now() + 20_000;
    while (!seen.includes("a")) {
      if (Date.now() > upDeadline) throw new Error("worker did not run job a");
      await new Promise((r) => setTimeout(r, 50));
    }

    await server.stop();
    for (const [i, input] of [job("b"), [job("c"), job("d")]].entries()) {
      const started = Date.now();
      const ok = await queues.ring("bells", input, { timeoutMs: 500 });
      const took = Date.now() - started;
      expect(ok, `ring ${i} with Redis down`).toBe(false);
      expect(took).toBeLessThan(1500);
    }
    expect(await rings("failed")).toBe(2);

    await server.start();
    // The producer reconnects on its own; a ring after that is taken and the worker runs it.
    const deadline = Date.now() + 20_000;
    while (!(await queues.ring("bells", job("e"), { timeoutMs: 500 }))) {
      if (Date.now() > deadline)
        throw new Error("ring did not succeed within 20 s of Redis restarting");
      await new Promise((r) => setTimeout(r, 200));
    }
    while (!seen.includes("e")) {
      if (Date.now() > deadline) throw new Error(`worker did not run job e (seen ${seen})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).not.toContain("b");
    expect(await rings("rung")).toBeGreaterThanOrEqual(2);
  }, 60_000);
});
