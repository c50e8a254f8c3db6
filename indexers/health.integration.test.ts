/**
 * Nodes are believed only when healthy (issue 12 item 1), on a real anvil behind the lying-chain
 * proxy: a primary answering HTTP 500 with a fallback 8 blocks behind (confirmations 3) records no
 * reorg and orphans nothing: the indexer waits (readiness false, metric) until a node has the
 * blocks, reads from the lagging node only what it has, and ends equal to a clean index with each
 * deposit stored once. A syncing fallback (head 0, null blocks) that answers some of the calls
 * during initial sync orphans nothing either.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import type { TestContext } from "../ops/testing/context.js";
import { createTestDatabase } from "../ops/testing/database.js";
import { waitFor } from "../ops/testing/wait.js";
import type { Ingestor } from "./createIngestor.js";
import { indexerHealthCheck } from "./health.js";
import { loadTip } from "./store.js";
import { canonicalFacts, freshAddress, freshIndex, sendAndMine, watch } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const D1 = freshAddress(1);
let t: IndexerTest;
let from: Hex;
let primary: FaultyProxy;
let fallback: FaultyProxy;

beforeAll(async () => {
  t = await startIndexerTest({
    proxies: 2,
    config: { confirmations: { kind: "blocks", blocks: 3 } },
  });
  ({ from } = t);
  [primary, fallback] = t.proxies as [FaultyProxy, FaultyProxy];
});

afterAll(async () => {
  await t?.stop();
});

async function count(pool: TestContext["db"]["pool"], sql: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(sql);
  return rows[0]!.n;
}

async function deposits(n: number, base: bigint): Promise<Hex[]> {
  const out: Hex[] = [];
  for (let i = 0n; i < BigInt(n); i++)
    out.push((await sendAndMine(t.rpc, { from, to: D1, value: base + i })).transactionHash);
  return out;
}

describe("healthy nodes only", () => {
  it("primary HTTP 500 and fallback 8 behind: waits, no reorg, nothing orphaned, stored once", async () => {
    const chain = t.chain;
    await watch(t.ctx.db.pool, CHAIN_ID, [{ address: D1 }]);
    fallback.setLag(8);
    await deposits(12, 1000n);
    // The primary's cool-down grows with each failure while it answers 500 (30 s at most by
    // default): capped at 2 s, its return is noticed within 2 s rather than waited out for 15 s.
    const ingestor = await t.ingestor({
      adapterOptions: { timeoutMs: 2000, maxCoolDownMs: 2000 },
      options: { pollIntervalMs: 100, batchBlocks: 4 },
    });
    const health = indexerHealthCheck({ chain, ingestor });
    try {
      ingestor.start();
      const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
      await waitFor("the stored tip at the head", async () => {
        const tip = await loadTip(t.ctx.db.pool, CHAIN_ID);
        return tip?.number === head;
      });

      // The primary fails; the fallback is 8 blocks behind our tip.
      primary.setFault("http500");
      await deposits(3, 2000n); // fallback now at head - 8 < our tip
      await waitFor("the indexer to report no healthy endpoint", async () =>
        ingestor.status().noHealthyEndpoint !== null ? true : undefined,
      );
      const check = await health.check();
      expect(check.ok).toBe(false);
      expect(check.detail).toContain("no RPC endpoint");
      const gauge = await t.ctx.common.metrics.registry.getSingleMetricAsString(
        "custody_indexer_no_healthy_endpoint",
      );
      expect(gauge).toMatch(/custody_indexer_no_healthy_endpoint\{chain_id="31337"[^}]*\} 1$/m);
      expect(fallback.stats().lagging ?? 0).toBeGreaterThan(0);
      expect(await count(t.ctx.db.pool, "SELECT count(*)::int AS n FROM chain.reorgs")).toBe(0);
      expect(
        await count(
          t.ctx.db.pool,
          "SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'",
        ),
      ).toBe(0);

      // The chain moves on: the lagging node now has blocks past our tip and is read for them.
      await deposits(10, 3000n);
      const lagged = BigInt(await t.rpc<Hex>("eth_blockNumber")) - 8n;
      await waitFor("the indexer to read the lagging node up to its head", async () => {
        const tip = await loadTip(t.ctx.db.pool, CHAIN_ID);
        return tip !== null && tip.number >= lagged;
      });
      const tipWhileLagging = (await loadTip(t.ctx.db.pool, CHAIN_ID))!.number;
      expect(tipWhileLagging).toBe(lagged); // never past what the fallback has

      // The primary comes back: the rest is read from it.
      primary.setFault("none");
      const finalHead = BigInt(await t.rpc<Hex>("eth_blockNumber"));
      await waitFor("the stored tip at the head again", async () => {
        const tip = await loadTip(t.ctx.db.pool, CHAIN_ID);
        return tip?.number === finalHead;
      });
      await waitFor("readiness back", async () => ((await health.check()).ok ? true : undefined));
    } finally {
      await ingestor.stop();
    }
    expect(await count(t.ctx.db.pool, "SELECT count(*)::int AS n FROM chain.reorgs")).toBe(0);
    expect(
      await count(
        t.ctx.db.pool,
        "SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'",
      ),
    ).toBe(0);
    // Each deposit stored once, and everything equals a clean index of the chain.
    expect(
      await count(
        t.ctx.db.pool,
        `SELECT count(*)::int AS n FROM (SELECT tx_hash FROM chain.transfers WHERE kind = 'native'
           GROUP BY tx_hash, position HAVING count(*) > 1) d`,
      ),
    ).toBe(0);
    const reference = await freshIndex({
      common: t.ctx.common,
      chain: { ...chain, rpcUrls: [t.ctx.anvils[0]!.rpcUrl] },
      sourcePool: t.ctx.db.pool,
    });
    expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
    expect(reference.facts.filter((f) => f.kind === "native").length).toBe(25);
    fallback.setLag(null);
  });

  it("a syncing fallback (head 0, null blocks) during initial sync orphans nothing", async () => {
    const db = await createTestDatabase();
    await watch(db.pool, CHAIN_ID, [{ address: D1 }]);
    fallback.setLag("syncing");
    // Every third request to the primary fails: those calls reach the syncing node.
    primary.setFault((n) => (n % 3 === 0 ? "http500" : "none"));
    let ingestor: Ingestor | undefined;
    try {
      ingestor = await t.ingestor({
        pool: db.pool,
        adapterOptions: { timeoutMs: 2000 },
        options: { pollIntervalMs: 50, batchBlocks: 3 },
      });
      ingestor.start();
      const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
      await waitFor("initial sync to the head", async () => {
        const tip = await loadTip(db.pool, CHAIN_ID);
        return tip?.number === head;
      });
      await deposits(4, 5000n);
      const head2 = BigInt(await t.rpc<Hex>("eth_blockNumber"));
      await waitFor("the new blocks", async () => {
        const tip = await loadTip(db.pool, CHAIN_ID);
        return tip?.number === head2;
      });
      expect(fallback.stats().syncing ?? 0).toBeGreaterThan(0);
      expect(await count(db.pool, "SELECT count(*)::int AS n FROM chain.reorgs")).toBe(0);
      expect(
        await count(db.pool, "SELECT count(*)::int AS n FROM chain.blocks WHERE NOT canonical"),
      ).toBe(0);
      expect(
        await count(
          db.pool,
          "SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'",
        ),
      ).toBe(0);
      expect(await count(db.pool, "SELECT count(*)::int AS n FROM chain.blocks")).toBe(
        Number(head2) + 1,
      );
    } finally {
      await ingestor?.stop();
      primary.setFault("none");
      fallback.setLag(null);
      await db.drop();
    }
  });
});
