/**
 * Halt below finality (issue 12 item 2), on a real anvil with confirmations 2 and finality 4
 * blocks: a reorg that stays above the published finalized block is handled automatically; one
 * that reaches it halts the chain: nothing orphaned, no reorg recorded, a chain.halts row and an
 * audit entry, `custody_chain_halted` 1 and readiness false. The real `custody-node chains halted`
 * lists it; `chains resume` closes the halt without a rollback when the node agrees again, refuses
 * while the reorg is still there, and with --accept-reorg <the ancestor it showed> rolls back once
 * (audited), after which the index equals a clean one. Evidence that does not hold on a second read is none: a node whose
 * `latest` was a sibling below the finalized block but whose block by number there is ours (a load
 * balancer's lagging backends disagreeing) orphans nothing above it, final or not, and halts nothing.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChainConfig, ChainDataInconsistentError } from "../chains/index.js";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { spawnCli } from "../ops/testing/process.js";
import { waitFor } from "../ops/testing/wait.js";
import type { Ingestor } from "./createIngestor.js";
import { indexerHealthCheck } from "./health.js";
import { readFinalized, readHalts } from "./index.js";
import { loadTip } from "./store.js";
import {
  anvilRpc,
  canonicalBlocks,
  canonicalFacts,
  freshAddress,
  freshIndex,
  sendAndMine,
  syncToHead,
} from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const D1 = freshAddress(1);
const D2 = freshAddress(2);
let t: IndexerTest;
let from: Hex;
let chain: ChainConfig;
let ingestor: Ingestor;
let configPath: string;
/** The chain's only RPC URL: a proxy that normally reaches anvil A. */
let proxy: FaultyProxy;
/** Another anvil with the same chain id: its blocks disagree with A's at every height. */
let other: Anvil;

beforeAll(async () => {
  t = await startIndexerTest({
    chain: {
      key: "local-a",
      config: {
        confirmations: { kind: "blocks", blocks: 2 },
        finality: { kind: "blocks", blocks: 4 },
        reorgWindow: 8,
        traces: false,
      },
    },
    proxies: 1,
    watch: [{ address: D1 }, { address: D2 }],
  });
  ({ from, chain } = t);
  proxy = t.proxies[0]!;
  other = await startAnvil({ chainId: CHAIN_ID, port: 0 });
  ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
  configPath = path.join(tmpdir(), `custody-halt-${process.pid}-${Date.now()}.json`);
  writeFileSync(
    configPath,
    JSON.stringify({
      chains: [
        {
          key: "local-a",
          chainId: CHAIN_ID,
          name: "local a",
          rpcUrls: chain.rpcUrls,
          confirmations: chain.confirmations,
          finality: chain.finality,
          reorgWindow: chain.reorgWindow,
          blockTimeMs: chain.blockTimeMs,
          feeModel: chain.feeModel,
        },
      ],
    }),
  );
});

afterAll(async () => {
  await t?.stop();
  await other?.stop();
});

async function cli(args: string[]) {
  const p = spawnCli(args, {
    DATABASE_URL: t.ctx.db.url,
    CUSTODY_CONFIG: configPath,
    LOG_LEVEL: "silent",
  });
  const { code } = await p.exited;
  return { code, out: p.output() };
}

async function count(sql: string): Promise<number> {
  const { rows } = await t.ctx.db.pool.query<{ n: number }>(sql);
  return rows[0]!.n;
}
const orphaned = () =>
  count("SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'");
const reorgs = () => count("SELECT count(*)::int AS n FROM chain.reorgs");

async function audit(): Promise<
  { actor: string; action: string; details: Record<string, unknown> }[]
> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT actor, action, details FROM audit.audit_log WHERE entity_type = 'chain' ORDER BY id",
  );
  return rows;
}

async function haltedGauge(): Promise<string> {
  const text = await t.ctx.common.metrics.registry.getSingleMetricAsString("custody_chain_halted");
  const line = text.split("\n").find((l) => l.startsWith("custody_chain_halted{"));
  return line?.split(" ").at(-1) ?? "absent";
}

/** A block replaced at each of the top `depth` heights, each holding a deposit to D2. */
async function reorg(depth: number, tag: number): Promise<void> {
  const txs = Array.from({ length: depth }, (_, i) => [
    { from, to: D2, value: `0x${(tag + i).toString(16)}` },
    i,
  ]);
  await t.rpc("anvil_reorg", [depth, txs]);
}

describe("halt below finality", () => {
  it("publishes finality 4 blocks deep and handles a reorg above it automatically", async () => {
    for (let i = 0n; i < 10n; i++) await sendAndMine(t.rpc, { from, to: D1, value: 100n + i });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    expect((await readFinalized(t.ctx.db.pool, CHAIN_ID))?.number).toBe(head - 3n);
    await reorg(3, 0x100); // heads - 2 .. head: above the finalized block
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    expect(await reorgs()).toBe(1);
    expect(await orphaned()).toBe(3);
    expect(await readHalts(t.ctx.db.pool)).toEqual([]);
  });

  it("halts when the node disagrees at the finalized block; resume without rollback once it agrees again", async () => {
    const tip = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
    const finalized = (await readFinalized(t.ctx.db.pool, CHAIN_ID))!;
    expect(finalized.number).toBe(tip.number - 3n);
    // The endpoint starts answering from another chain (a misrouted or lying node), past our tip.
    await anvilRpc(other.rpcUrl)("anvil_mine", [`0x${(tip.number + 2n).toString(16)}`]);
    proxy.setBackends([{ url: other.rpcUrl }]);
    await ingestor.syncOnce();
    const halts = await readHalts(t.ctx.db.pool);
    expect(halts).toHaveLength(1);
    expect(halts[0]).toMatchObject({
      chainId: CHAIN_ID,
      reason: `reorg reaches finalized block ${finalized.number}`,
      resumedAt: null,
    });
    expect(halts[0]!.details).toMatchObject({ finalized_hash: finalized.hash });
    expect(await orphaned()).toBe(3); // only the earlier, automatic reorg's
    expect(await reorgs()).toBe(1);
    expect(await loadTip(t.ctx.db.pool, CHAIN_ID)).toEqual(tip);
    expect(ingestor.status().halted).toContain("reorg reaches finalized block");
    expect(await haltedGauge()).toBe("1");
    const health = await indexerHealthCheck({ chain, ingestor }).check();
    expect(health.ok).toBe(false);
    expect(health.detail).toContain("chain halted");
    expect((await audit()).map((a) => [a.actor, a.action])).toEqual([["indexer", "chain.halted"]]);
    // Halted: further passes change nothing.
    await ingestor.syncOnce();
    expect(await loadTip(t.ctx.db.pool, CHAIN_ID)).toEqual(tip);
    expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);

    const listed = await cli(["chains", "halted"]);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(`local-a (chain ${CHAIN_ID}) halted`);
    expect(listed.out).toContain("still halted");

    // The endpoint is back on the chain we stored: resume closes the halt, nothing rolled back.
    proxy.setBackends([{ url: t.ctx.anvils[0]!.rpcUrl }]);
    const resumed = await cli([
      "chains",
      "resume",
      "local-a",
      "--by",
      "alice",
      "--reason",
      "node fixed",
    ]);
    expect(resumed.out).toContain("nothing rolled back");
    expect(resumed.code).toBe(0);
    expect(await readHalts(t.ctx.db.pool)).toEqual([]);
    const all = await readHalts(t.ctx.db.pool, { includeResumed: true });
    expect(all[0]).toMatchObject({ resumedBy: "alice", resumeReason: "node fixed" });
    expect((await audit()).at(-1)).toMatchObject({
      actor: "alice",
      action: "chain.resumed",
      details: { rollback: false },
    });
    await sendAndMine(t.rpc, { from, to: D1, value: 300n });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    expect(ingestor.status().halted).toBeNull();
    expect(await haltedGauge()).toBe("0");
    expect(await reorgs()).toBe(1);
  });

  it("resume refuses while the reorg is there, and rolls back once with --accept-reorg", async () => {
    const tip = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
    await reorg(6, 0x300);
    await ingestor.syncOnce();
    expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
    const orphanedBefore = await orphaned();

    const refused = await cli(["chains", "resume", "local-a", "--by", "bob", "--reason", "look"]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain("the reorg is still there");
    expect(refused.out).toContain(`common ancestor ${tip.number - 6n}, depth 6`);
    // The refusal names the exact acceptance: the ancestor it showed, height and hash.
    const accept = refused.out.match(/re-run with --accept-reorg (\S+)/)?.[1];
    expect(accept).toMatch(new RegExp(`^${tip.number - 6n}:0x[0-9a-f]{64}$`));
    expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
    expect(await orphaned()).toBe(orphanedBefore);
    expect(await loadTip(t.ctx.db.pool, CHAIN_ID)).toEqual(tip);

    const accepted = await cli([
      "chains",
      "resume",
      "local-a",
      "--by",
      "bob",
      "--reason",
      "deep reorg confirmed with the node operator",
      "--accept-reorg",
      accept!,
    ]);
    expect(accepted.out).toContain(`rolled back to block ${tip.number - 6n} (depth 6)`);
    expect(accepted.code).toBe(0);
    expect(await readHalts(t.ctx.db.pool)).toEqual([]);
    expect(await orphaned()).toBe(orphanedBefore + 6);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT depth, beyond_window FROM chain.reorgs ORDER BY id DESC LIMIT 1",
    );
    expect(rows[0]).toEqual({ depth: 6, beyond_window: false });
    expect((await readFinalized(t.ctx.db.pool, CHAIN_ID))?.number).toBe(tip.number - 6n);
    expect((await audit()).at(-1)).toMatchObject({
      actor: "bob",
      action: "chain.resumed",
      details: { rollback: true, accept_reorg: true, depth: 6, orphaned_facts: 6 },
    });
    // A second resume finds nothing to do: the rollback happened once.
    const again = await cli(["chains", "resume", "local-a", "--by", "bob", "--reason", "again"]);
    expect(again.code).toBe(1);
    expect(again.out).toContain("is not halted");

    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    expect(ingestor.status().halted).toBeNull();
    const reference = await freshIndex({ common: t.ctx.common, chain, sourcePool: t.ctx.db.pool });
    expect(await canonicalBlocks(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.blocks);
    expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
  });

  it("a lagging node's `latest` on a sibling below the finalized block, its block by number ours: nothing orphaned, no halt, it waits", async () => {
    for (let i = 0n; i < 3n; i++) await sendAndMine(t.rpc, { from, to: D1, value: 500n + i });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const tip = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
    const finalized = (await readFinalized(t.ctx.db.pool, CHAIN_ID))!;
    expect(finalized.number).toBe(tip.number - 3n);
    const blocksBefore = await canonicalBlocks(t.ctx.db.pool, CHAIN_ID);
    const factsBefore = await canonicalFacts(t.ctx.db.pool, CHAIN_ID);
    const orphanedBefore = await orphaned();
    const reorgsBefore = await reorgs();
    // The endpoint lags 5 blocks (below the finalized block), and its `latest` answer comes from a
    // backend on a sibling at that height while its blocks by number come from one on our chain.
    proxy.setLag(5);
    proxy.setMethodLie("eth_getBlockByNumber", (real, params) => {
      const block = real.result as { hash: Hex } | null;
      if (params[0] !== "latest" || !block) return { result: real.result };
      return { result: { ...block, hash: `0x${"5b".repeat(32)}` } };
    });
    const liesBefore = proxy.stats()["lie:eth_getBlockByNumber"] ?? 0;
    try {
      const passes: unknown[] = [];
      for (let i = 0; i < 3; i++) passes.push(await ingestor.syncOnce().catch((e: unknown) => e));
      expect(proxy.stats()["lie:eth_getBlockByNumber"] ?? 0).toBeGreaterThan(liesBefore);
      expect(await orphaned()).toBe(orphanedBefore);
      expect(await reorgs()).toBe(reorgsBefore);
      expect(await canonicalBlocks(t.ctx.db.pool, CHAIN_ID)).toEqual(blocksBefore);
      expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(factsBefore);
      expect(await loadTip(t.ctx.db.pool, CHAIN_ID)).toEqual(tip);
      expect(await readHalts(t.ctx.db.pool)).toEqual([]);
      // Each pass waited: the evidence did not hold when read again.
      expect(passes.map((p) => p instanceof ChainDataInconsistentError)).toEqual([
        true,
        true,
        true,
      ]);
    } finally {
      proxy.setLag(null);
      proxy.setMethodLie("eth_getBlockByNumber", null);
    }
    await sendAndMine(t.rpc, { from, to: D1, value: 600n });
    // The client asks the endpoint again once its lagging head is a probe interval old.
    await waitFor("the stored tip at the head", async () => {
      await ingestor.syncOnce().catch(() => {});
      const head = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
      return (await loadTip(t.ctx.db.pool, CHAIN_ID))?.hash === head.hash.toLowerCase();
    });
    expect(await reorgs()).toBe(reorgsBefore);
    const reference = await freshIndex({ common: t.ctx.common, chain, sourcePool: t.ctx.db.pool });
    expect(await canonicalBlocks(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.blocks);
    expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
  });
});
