/**
 * Withdrawal intake through the API (app.inject, real Postgres and Redis, the real ledger and signer
 * intake): auth, rate limit, idempotency, policy, hold and signer request per call. Also the cost of
 * an idempotent replay.
 */
import { zeroAddress } from "viem";
import { createLedger, transferId } from "../ledger/index.js";
import { figure, machineLine } from "../ops/bench/machine.js";
import { createApiTestContext } from "./testing/apiTestContext.js";
import { deployTestFactory } from "./testing/factory.js";

const N = 400;
const CONCURRENCY = 8;
console.log(
  `workload: ${N} withdrawals (4 customers, below the approval threshold) via app.inject at concurrency ${CONCURRENCY}, then ${N} idempotent replays`,
);
console.log(machineLine());

const t = await createApiTestContext({
  chains: [{ chainId: 31337, key: "local-a" }],
  v1: { rateLimit: { max: 1_000_000, timeWindowMs: 60_000 } },
});
await deployTestFactory(t.ctx);
const ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
const assetId = `31337:${zeroAddress}`;
for (const c of ["c0", "c1", "c2", "c3"])
  await ledger.transfer({
    id: transferId(`bench:fund:${c}`),
    assetId,
    debit: "custody:deposits",
    credit: `user:${c}`,
    amount: 10n ** 24n,
    kind: "manual",
  });

const send = (i: number) =>
  t.call(t.keys["withdrawals:write"], {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": `bench-${i}` },
    payload: {
      customerId: `c${i % 4}`,
      chain: "local-a",
      asset: "native",
      to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      amount: "1000",
    },
  });

async function run(label: string, expectStatus: number) {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const i = next++;
        const s = performance.now();
        const res = await send(i);
        latencies.push(performance.now() - s);
        if (res.statusCode !== expectStatus)
          throw new Error(`${label}: ${res.statusCode} ${res.body}`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  figure(`${label} throughput`, N / seconds, "req/s");
  figure(`${label} p50`, latencies[Math.floor(N * 0.5)]!, "ms", 1);
  figure(`${label} p99`, latencies[Math.floor(N * 0.99)]!, "ms", 1);
}

await run("create", 201);
await run("replay", 201);
await ledger.close();
await t.cleanup();
