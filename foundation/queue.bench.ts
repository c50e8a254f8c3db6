/** BullMQ doorbell throughput on the local Redis: enqueue and process N jobs. */
import { figure, machineLine } from "../ops/bench/machine.js";
import { createTestRedis } from "../ops/testing/redis.js";
import { createLogger } from "./logger.js";
import { createQueueFactory, jobId } from "./queues.js";

const N = 20_000;
console.log(
  `workload: ${N} BullMQ jobs with deterministic ids, bulk-added, 1 worker at concurrency 50`,
);
console.log(machineLine());
const redis = await createTestRedis();
const queues = createQueueFactory({
  redis: redis.redis,
  prefix: redis.prefix,
  common: { logger: createLogger("silent") },
});
let processed = 0;
const done = new Promise<void>((resolve) => {
  queues.worker(
    "bench",
    async () => {
      if (++processed === N) resolve();
    },
    { concurrency: 50 },
  );
});
const q = queues.queue("bench");
const t0 = performance.now();
for (let i = 0; i < N; i += 1000) {
  await q.addBulk(
    Array.from({ length: 1000 }, (_, j) => ({
      name: "j",
      data: { i: i + j },
      opts: { jobId: jobId("b", i + j) },
    })),
  );
}
const t1 = performance.now();
await done;
const t2 = performance.now();
figure("enqueue", N / ((t1 - t0) / 1000), "jobs/s");
figure("round trip", N / ((t2 - t0) / 1000), "jobs/s");
await queues.close();
await redis.cleanup();
