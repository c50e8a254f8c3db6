/**
 * Reorgs on a real anvil at depth 1 and 5 (anvil_reorg, replacement blocks with other transfers)
 * and deeper than the reorg window (evm_snapshot/evm_revert and a longer branch). After each, the
 * stored canonical blocks and facts must equal a fresh index of the final chain, orphaned facts
 * are kept, and the reorg is recorded with its depth and whether confirmed facts were lost.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import type { Ingestor } from "./createIngestor.js";
import {
  call,
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
const D3 = freshAddress(3);
let t: IndexerTest;
let chain: ChainConfig;
let ingestor: Ingestor;
let from: Hex;
let token: Hex;

beforeAll(async () => {
  t = await startIndexerTest({
    token: true,
    config: {
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 8,
      // Finality deeper than every reorg here (the default, max(2, 8), would halt the 12-block one:
      // halting at finality is indexers/halt.integration.test.ts).
      finality: { kind: "blocks", blocks: 64 },
    },
    watch: [{ address: D1 }, { address: D2 }, { address: D3 }],
  });
  ({ from, chain } = t);
  token = t.token!;
  ingestor = await t.ingestor({ options: { batchBlocks: 3 } });
});

afterAll(async () => {
  await t?.stop();
});

/** `n` blocks, each with a native transfer and an ERC-20 transfer to watched addresses. */
async function produce(n: number, tag: bigint): Promise<void> {
  for (let i = 0n; i < BigInt(n); i++) {
    await sendAndMine(t.rpc, { from, to: D1, value: tag + i });
    await sendAndMine(t.rpc, {
      from,
      to: token,
      data: call("TestToken", "transfer", [D2, tag + i]),
    });
  }
}

async function expectEqualsFreshIndex(): Promise<void> {
  const reference = await freshIndex({ common: t.ctx.common, chain, sourcePool: t.ctx.db.pool });
  expect(await canonicalBlocks(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.blocks);
  expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
  expect(reference.facts.length).toBeGreaterThan(0);
}

async function reorgCount(): Promise<number> {
  const { rows } = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM chain.reorgs");
  return rows[0].n;
}

/** The one reorg recorded since `before` reorgs were (fails if none or several were). */
async function newReorg(before: number) {
  const { rows } = await t.ctx.db.pool.query(
    `SELECT depth, beyond_window, orphaned_confirmed_facts, old_tip_number::int, new_tip_number::int
       FROM chain.reorgs ORDER BY id OFFSET $1`,
    [before],
  );
  expect(rows).toHaveLength(1);
  return rows[0];
}

async function orphanedCount(): Promise<number> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'",
  );
  return rows[0].n;
}

describe("reorgs", () => {
  it("depth 1: a same-height replacement block", async () => {
    await produce(3, 100n);
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const [reorgs, orphans] = [await reorgCount(), await orphanedCount()];
    const tip = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    // Replace the tip with a block holding a different transfer (to D3).
    await t.rpc("anvil_reorg", [1, [[{ from, to: D3, value: "0x7b" }, 0]]]);
    expect(BigInt(await t.rpc<Hex>("eth_blockNumber"))).toBe(tip);
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    expect(await newReorg(reorgs)).toMatchObject({
      depth: 1,
      beyond_window: false,
      orphaned_confirmed_facts: 0,
      old_tip_number: Number(tip),
      new_tip_number: Number(tip),
    });
    // The replaced tip held one fact (the ERC-20 transfer to D2): kept, as orphaned.
    expect(await orphanedCount()).toBe(orphans + 1);
    await expectEqualsFreshIndex();
  });

  it("depth 5: confirmed facts orphaned within the window", async () => {
    await produce(3, 200n); // 6 blocks, one fact each
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const [reorgs, before] = [await reorgCount(), await orphanedCount()];
    const { rows: confirmedBefore } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.transfers WHERE orphaned_after_confirmation",
    );
    const pairs = [0, 1, 2, 3, 4].map((i) => [
      { from, to: D3, value: `0x${(300 + i).toString(16)}` },
      i,
    ]);
    await t.rpc("anvil_reorg", [5, pairs]);
    await sendAndMine(t.rpc, { from, to: D1, value: 999n }); // the new branch is longer
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    // 2 confirmations: of the 5 orphaned blocks (one fact each), the lower 4 were confirmed.
    expect(await newReorg(reorgs)).toMatchObject({
      depth: 5,
      beyond_window: false,
      orphaned_confirmed_facts: 4,
    });
    expect(await orphanedCount()).toBe(before + 5);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.transfers WHERE orphaned_after_confirmation",
    );
    expect(rows[0].n).toBe(confirmedBefore[0].n + 4);
    await expectEqualsFreshIndex();
  });

  it("deeper than the reorg window: handled, recorded, no crash", async () => {
    const snapshot = await t.rpc<Hex>("evm_snapshot");
    await produce(6, 400n); // 12 blocks, one fact each
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    const [reorgs, before] = [await reorgCount(), await orphanedCount()];
    await t.rpc("evm_revert", [snapshot]);
    for (let i = 0n; i < 13n; i++) await sendAndMine(t.rpc, { from, to: D3, value: 500n + i });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
    // 2 confirmations: all but the top one of the 12 orphaned facts had been confirmed.
    expect(await newReorg(reorgs)).toMatchObject({
      depth: 12,
      beyond_window: true,
      orphaned_confirmed_facts: 11,
    });
    expect(await orphanedCount()).toBe(before + 12);
    const metrics = await t.ctx.common.metrics.registry.getSingleMetricAsString(
      "custody_indexer_reorgs_total",
    );
    expect(metrics).toMatch(/depth="6-20",beyond_window="true".*\} 1$/m);
    await expectEqualsFreshIndex();
  });
});
