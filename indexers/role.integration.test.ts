/**
 * The `indexer` role as `custody-node start` runs it, on an anvil mining a block per second:
 * readiness passes while the head advances, fails with a reason when the chain stops, metrics are
 * exported, the doorbell rings on the real queue, and a second instance stands by (one writer).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createHealth, type Health } from "../ops/health.js";
import { type RoleContext, type RoleHandle, roleRegistry } from "../ops/roles.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import "./role.js";
import { CHAIN_FACTS_QUEUE } from "./doorbell.js";
import { anvilRpc, freshAddress, type Rpc, sendTx, watch } from "./testing/chain.js";

const CHAIN_ID = 31337;
let ctx: TestContext;
let rpc: Rpc;
let health: Health;
const handles: RoleHandle[] = [];

function roleContext(h: Health): RoleContext {
  return {
    common: ctx.common,
    pool: ctx.db.pool,
    redis: ctx.redis.redis,
    queues: ctx.queues,
    health: h,
    chains: ctx.config.chains,
    httpPlugins: [],
  };
}

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      { chainId: CHAIN_ID, blockTime: 1, config: { confirmations: { kind: "blocks", blocks: 1 } } },
    ],
  });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  await watch(ctx.db.pool, CHAIN_ID, [{ address: freshAddress(1) }]);
});

afterAll(async () => {
  for (const h of handles) await h.stop();
  await ctx?.cleanup();
});

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

it("runs, reports readiness and metrics, rings the doorbell, and keeps one writer per chain", async () => {
  const def = roleRegistry.get("indexer")?.[0];
  expect(def).toBeDefined();
  health = createHealth();
  handles.push(await def!.start(roleContext(health)));
  const standbyHealth = createHealth();
  handles.push(await def!.start(roleContext(standbyHealth))); // same chain: must stand by

  const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
  const tx = await sendTx(rpc, { from, to: freshAddress(1), value: 5n });
  await until("the deposit is confirmed", async () => {
    const { rows } = await ctx.db.pool.query(
      "SELECT status FROM chain.transfers WHERE tx_hash = $1",
      [tx.toLowerCase()],
    );
    return rows[0]?.status === "confirmed";
  });
  const ready = await health.run();
  expect(ready.ok).toBe(true);
  expect(ready.checks[`indexer:test-${CHAIN_ID}`]).toEqual({ ok: true });

  const jobs = await ctx.queues.queue(CHAIN_FACTS_QUEUE).getJobs(["waiting"]);
  expect(jobs.length).toBeGreaterThan(0);

  const metrics = await ctx.common.metrics.registry.metrics();
  for (const name of [
    "custody_indexer_indexed_block",
    "custody_indexer_lag_blocks",
    "custody_indexer_blocks_total",
    "custody_indexer_facts_total",
    "custody_indexer_rpc_calls_per_block",
    "custody_rpc_requests_total",
    "custody_rpc_request_duration_seconds",
  ])
    expect(metrics).toContain(name);
  // Exactly one instance wrote: the other never raced it for the checkpoint.
  expect(metrics).not.toContain('code="INDEXER_TIP_MOVED"');
  expect((await standbyHealth.run()).ok).toBe(true);

  // The chain stops producing blocks: after 3 block times readiness fails and says why.
  await rpc("evm_setIntervalMining", [0]);
  await until("readiness to fail", async () => !(await health.run()).ok, 10_000);
  const failed = await health.run();
  expect(failed.checks[`indexer:test-${CHAIN_ID}`]?.detail).toContain("has not advanced");
  const gauge = await ctx.common.metrics.registry.getSingleMetricAsString(
    "custody_indexer_unhealthy",
  );
  expect(gauge).toMatch(/reason="head_stalled"[^\n]*} 1/);

  // Blocks again: readiness recovers.
  await rpc("evm_setIntervalMining", [1]);
  await until("readiness to recover", async () => (await health.run()).ok, 10_000);
});

it("follows new heads over WS when a wsUrl is configured (polling only as a slow backstop)", async () => {
  const { createIngestor } = await import("./createIngestor.js");
  const { createEvmAdapter } = await import("../chains/index.js");
  await rpc("evm_setIntervalMining", [0]);
  await rpc("evm_setAutomine", [true]); // blocks only when we send transactions
  const chain = {
    ...ctx.config.chains[0]!,
    wsUrl: ctx.anvils[0]!.rpcUrl.replace("http://", "ws://"),
  };
  const ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: ctx.common }),
    options: { pollIntervalMs: 60_000 },
  });
  // Let the role instances above go: this ingestor must take the chain's lease.
  for (const h of handles.splice(0)) await h.stop();
  ingestor.start();
  try {
    const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
    // Mine empty blocks until the subscription is live (it connects asynchronously).
    await until("the new-heads subscription", async () => {
      await rpc("evm_mine");
      return ingestor.status().wsHeads > 0;
    });
    const tx = await sendTx(rpc, { from, to: freshAddress(1), value: 6n });
    // With a 60 s poll interval, only the new-heads subscription can bring this in quickly.
    await until(
      "the WS-triggered pass",
      async () => {
        const { rows } = await ctx.db.pool.query(
          "SELECT 1 FROM chain.transfers WHERE tx_hash = $1",
          [tx.toLowerCase()],
        );
        return rows.length === 1;
      },
      10_000,
    );
  } finally {
    await ingestor.stop();
  }
});
