/**
 * `chains resume` re-checks the node before closing a halt. A node below our tip that agrees with
 * us at its own height has not seen the blocks the halt is about (it lags, or restarted from an old
 * snapshot): that is no agreement. On a real anvil (finality 4 blocks): a reorg of depth 6 halts
 * the chain; the endpoint then lags 10 blocks (below the fork point). Resume must not close the halt
 * as "the node agrees with the stored chain". Nor, lagging 8 blocks with a first answer at its head
 * that differs and a second that is ours, may it describe or roll back (even with --accept-reorg) the
 * 8 blocks above: they were only missing from the node, never shown different. Nor, on a node that
 * disagrees with every stored block when older ones were pruned, may it roll back to the oldest
 * stored one: the pruned blocks' facts would stay as if the node agreed with them.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ChainDataInconsistentError, createEvmAdapter } from "../chains/index.js";
import { startAnvil } from "../ops/devstack/anvil.js";
import { ResumeAncestorPrunedError } from "./errors.js";
import { readFinalized } from "./finality.js";
import { readHalts } from "./halts.js";
import { resumeChain } from "./resume.js";
import { loadTip, pruneBlocks } from "./store.js";
import {
  anvilRpc,
  canonicalBlocks,
  canonicalFacts,
  sendAndMine,
  syncToHead,
} from "./testing/chain.js";
import { type IndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";
import { D1, resumeCaught, startResumeTest } from "./testing/resumeTest.js";

let t: IndexerTest;

beforeAll(async () => {
  t = await startResumeTest({ proxies: 1 });
});

afterAll(async () => {
  await t?.stop();
});

it("does not close a halt on the word of a node below our tip", async () => {
  const ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
  for (let i = 0n; i < 12n; i++) await sendAndMine(t.rpc, { from: t.from, to: D1, value: 1n + i });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
  // A reorg of 6 blocks: below the published finalized block (4 deep), so the chain halts.
  await t.rpc("anvil_reorg", [6, [[{ from: t.from, to: D1, value: "0x999" }, 0]]]);
  await ingestor.syncOnce();
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
  await ingestor.stop();

  // The endpoint now answers 10 blocks behind: below the fork point, where it agrees with us.
  t.proxies[0]!.setLag(10);
  const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
  const adapter = createEvmAdapter(t.chain, { common: t.ctx.common });
  expect(await adapter.getHead()).toBe(head - 10n);
  const result = await resumeChain({
    pool: t.ctx.db.pool,
    adapter,
    chain: t.chain,
    by: "alice",
    reason: "node looks fine",
    acceptReorg: null,
  }).catch((error: Error) => error);
  // The halt stays open: the node has not reached the blocks in question.
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
  expect(result).toBeInstanceOf(Error);
  expect(String((result as Error).message)).toMatch(/has reached block/);
});

it("does not roll back above a height the node read again as ours, even with --accept-reorg", async () => {
  // Still halted (the test above). The endpoint now lags 8 blocks: below the fork point (6 deep),
  // where its blocks are ours. Its first answer at its head is a sibling (a load balancer's other
  // backend); read again, the block there is ours. Nothing above it was shown different.
  const pool = t.ctx.db.pool;
  const tip = (await loadTip(pool, TEST_CHAIN_ID))!;
  const finalized = await readFinalized(pool, TEST_CHAIN_ID);
  const blocksBefore = await canonicalBlocks(pool, TEST_CHAIN_ID);
  const factsBefore = await canonicalFacts(pool, TEST_CHAIN_ID);
  const proxy = t.proxies[0]!;
  proxy.setLag(8);
  const h = `0x${(tip.number - 8n).toString(16)}`;
  let lied = false;
  proxy.setMethodLie("eth_getBlockByNumber", (real, params) => {
    const block = real.result as { hash: Hex } | null;
    if (params[0] !== h || !block || lied) return { result: real.result };
    lied = true;
    return { result: { ...block, hash: `0x${"5b".repeat(32)}` } };
  });
  try {
    const adapter = createEvmAdapter(t.chain, { common: t.ctx.common });
    expect(await adapter.getHead()).toBe(tip.number - 8n);
    // Neither described as a reorg of depth 8 nor rolled back when the operator accepts the
    // ancestor that reading would give (our block just below it).
    const below = tip.number - 9n;
    const { rows } = await pool.query<{ hash: string }>(
      "SELECT hash FROM chain.blocks WHERE chain_id = $1 AND number = $2 AND canonical",
      [TEST_CHAIN_ID, below.toString()],
    );
    for (const acceptReorg of [null, `${below}:${rows[0]!.hash}`]) {
      lied = false;
      const result = await resumeCaught(t, acceptReorg, adapter);
      expect(lied).toBe(true);
      expect(result).toBeInstanceOf(ChainDataInconsistentError);
      expect((result as Error).message).toMatch(/then read again as ours/);
    }
  } finally {
    proxy.setLag(null);
    proxy.setMethodLie("eth_getBlockByNumber", null);
  }
  // Nothing changed: the halt is open, no block or fact orphaned, the finalized block where it was.
  expect(await readHalts(pool)).toHaveLength(1);
  expect(await loadTip(pool, TEST_CHAIN_ID)).toEqual(tip);
  expect(await readFinalized(pool, TEST_CHAIN_ID)).toEqual(finalized);
  expect(await canonicalBlocks(pool, TEST_CHAIN_ID)).toEqual(blocksBefore);
  expect(await canonicalFacts(pool, TEST_CHAIN_ID)).toEqual(factsBefore);
  const { rows } = await pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM audit.audit_log WHERE action = 'chain.resumed'",
  );
  expect(rows[0]!.n).toBe(0);
});

it("does not roll back to the oldest stored block when the node disagrees with all of them and older ones were pruned", async () => {
  // Still halted. Blocks more than 9 below the tip are pruned (as the ingestor does below its
  // retention), and the endpoint now answers from another chain with the same id: it disagrees
  // at every stored block. The common ancestor is below, where our hashes are gone.
  const pool = t.ctx.db.pool;
  const tip = (await loadTip(pool, TEST_CHAIN_ID))!;
  const finalized = await readFinalized(pool, TEST_CHAIN_ID);
  expect(await pruneBlocks(pool, TEST_CHAIN_ID, tip.number - 9n, 1000)).toBeGreaterThan(0);
  const below = await pool.query(
    "SELECT 1 FROM chain.transfers WHERE chain_id = $1 AND block_number < $2 AND status <> 'orphaned'",
    [TEST_CHAIN_ID, (tip.number - 9n).toString()],
  );
  expect(below.rows.length).toBeGreaterThan(0); // deposits in the pruned blocks
  const blocksBefore = await canonicalBlocks(pool, TEST_CHAIN_ID);
  const factsBefore = await canonicalFacts(pool, TEST_CHAIN_ID);
  const other = await startAnvil({ chainId: TEST_CHAIN_ID, port: 0 });
  const proxy = t.proxies[0]!;
  const backends = proxy.backends();
  try {
    await anvilRpc(other.rpcUrl)("anvil_mine", [`0x${(tip.number + 2n).toString(16)}`]);
    proxy.setBackends([{ url: other.rpcUrl }]);
    const adapter = createEvmAdapter(t.chain, { common: t.ctx.common });
    // Not even when the operator accepts rolling back every stored block.
    for (const acceptReorg of [null, `${tip.number - 10n}:none`]) {
      const result = await resumeCaught(t, acceptReorg, adapter);
      expect(result).toBeInstanceOf(ResumeAncestorPrunedError);
      expect((result as Error).message).toContain(`down to ${tip.number - 9n}`);
    }
  } finally {
    proxy.setBackends(backends);
    await other.stop();
  }
  expect(await readHalts(pool)).toHaveLength(1);
  expect(await loadTip(pool, TEST_CHAIN_ID)).toEqual(tip);
  expect(await readFinalized(pool, TEST_CHAIN_ID)).toEqual(finalized);
  expect(await canonicalBlocks(pool, TEST_CHAIN_ID)).toEqual(blocksBefore);
  expect(await canonicalFacts(pool, TEST_CHAIN_ID)).toEqual(factsBefore);
});
