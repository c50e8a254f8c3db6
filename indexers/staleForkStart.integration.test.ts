/**
 * An indexer that starts (fresh, or restarted on a stored tip) while its first endpoint is stuck
 * on a losing fork above the blocks it needs: an execution node whose consensus client died just
 * after a fork, its head stopped, answering the orphaned blocks (a deposit among them); the second
 * endpoint follows the chain, which reorged the deposit out and moved on. The process learned the
 * best head only from the reads it made, the first of them answered by the stuck node: its head
 * was the best head seen, and the backfill to it read its fork (the orphaned deposit stored and
 * confirmed, only orphaned a block time later, when a node past it was asked; a fork below the
 * chain's final blocks would have halted the chain). Now every endpoint is asked its head before
 * the first read, and the backfill reads the chain that won.
 * Real anvil behind lying proxies (the stuck node's answers rewritten), Postgres.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import type { Ingestor } from "./createIngestor.js";
import { loadTip } from "./store.js";
import { canonicalFacts, freshAddress, sendAndMine, syncToHead } from "./testing/chain.js";
import type { IndexerTest } from "./testing/indexerTest.js";
import { startStuckNodeTest, stuckThroughReorg, unstick } from "./testing/stuckNode.js";

const CHAIN_ID = 31337;
const D1 = freshAddress(1);
let t: IndexerTest;
let stuck: FaultyProxy;
const hex = (n: bigint) => `0x${n.toString(16)}`;

beforeAll(async () => {
  t = await startStuckNodeTest(D1);
  stuck = t.proxies[0]!;
});

afterAll(async () => {
  await t?.stop();
});

/**
 * A deposit; the first endpoint stuck at the head of the fork that holds it; the chain reorging
 * it out and moving on. Returns the stuck node's head.
 */
async function stuckAboveOurTip(): Promise<{ number: bigint; hash: string }> {
  unstick(stuck);
  await t.rpc("anvil_mine", ["0x3"]);
  const deposit = await sendAndMine(t.rpc, { from: t.from, to: D1, value: 7n });
  await t.rpc("anvil_mine", ["0x2"]);
  return stuckThroughReorg(t.rpc, stuck, BigInt(deposit.blockNumber));
}

/** After the ingestor's first pass: its tip is the chain's block there, and the deposit is not stored. */
async function firstPassFollowsTheChain(ingestor: Ingestor, stuckHead: bigint): Promise<void> {
  await ingestor.syncOnce();
  const tip = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
  const chainAt = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [hex(tip.number), false]);
  expect(tip.hash).toBe(chainAt.hash.toLowerCase());
  expect(tip.number).toBeGreaterThan(stuckHead);
  expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual([]);
}

describe("an indexer starting while its first endpoint is stuck on a losing fork above its tip", () => {
  it("a fresh indexer (nothing stored) backfills the chain that won, not the stuck node's fork", async () => {
    const stuckHead = await stuckAboveOurTip();
    const ingestor = await t.ingestor();
    // Old code: "expected '0x5d4ad7c7…' to be '0xee1ad5b0…'" (the tip was the stuck node's head,
    // its orphaned block, the deposit stored).
    await firstPassFollowsTheChain(ingestor, stuckHead.number);
    await ingestor.stop();
  });

  it("a restarted indexer backfills from its tip on the chain that won", async () => {
    // The index at the chain's head, on its own (from the endpoint that follows the chain).
    unstick(stuck);
    const before = await t.ingestor({ chain: { ...t.chain, rpcUrls: [t.proxies[1]!.url] } });
    await syncToHead(before, t.ctx.db.pool, t.rpc, CHAIN_ID);
    await before.stop();
    const stuckHead = await stuckAboveOurTip();
    expect((await loadTip(t.ctx.db.pool, CHAIN_ID))!.number).toBeLessThan(stuckHead.number);
    // Old code: "expected '0x3eff725a…' to be '0x791209cc…'" (the tip was the stuck node's head,
    // its orphaned block, the deposit stored).
    await firstPassFollowsTheChain(await t.ingestor(), stuckHead.number);
  });
});
