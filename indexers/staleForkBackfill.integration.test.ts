/**
 * A running indexer in a long backfill whose first endpoint gets stuck on a losing fork above its
 * tip (an execution node whose consensus client died, a deposit in its orphaned blocks), while the
 * chain reorgs and moves on past it. Every endpoint's head was asked only at start: the stuck node
 * stayed at the best head seen, and the backfill read (and stored) its fork until it ended. Now the
 * heads are asked again each block time of the backfill: the ranges after that are the chain's.
 * Real anvil behind lying proxies (the stuck node's answers rewritten), Postgres.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadTip } from "./store.js";
import { canonicalFacts, freshAddress, sendAndMine } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";
import { stickAtHead } from "./testing/stuckNode.js";

const D1 = freshAddress(1);
let t: IndexerTest;

beforeAll(async () => {
  t = await startIndexerTest({
    proxies: 2,
    config: {
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 8,
      finality: { kind: "blocks", blocks: 64 },
    },
    watch: [{ address: D1 }],
  });
});

afterAll(async () => {
  await t?.stop();
});

it("reads the chain that won, not the fork of a first endpoint stuck above its tip, once a block time has passed", async () => {
  // A deposit in block 1 (kept), one in block 12 (to be orphaned), the head at 30.
  const kept = await sendAndMine(t.rpc, { from: t.from, to: D1, value: 1n });
  await t.rpc("anvil_mine", ["0xa"]);
  const orphaned = await sendAndMine(t.rpc, { from: t.from, to: D1, value: 2n });
  expect(BigInt(orphaned.blockNumber)).toBe(12n);
  await t.rpc("anvil_mine", ["0x12"]);

  // After the first range is stored (its deposit rings the doorbell), a block time and more
  // passes: the first endpoint gets stuck at 30 holding blocks 10 to 30, the chain reorgs them out
  // and moves on to 40.
  let stuck = false;
  const ingestor = await t.ingestor({
    options: { batchBlocks: 4, concurrency: 1 },
    doorbell: async () => {
      if (stuck) return;
      stuck = true;
      await stickAtHead(t.rpc, t.proxies[0]!, 10n);
      await t.rpc("anvil_reorg", [21, []]);
      await t.rpc("anvil_mine", ["0xa"]);
      await new Promise((r) => setTimeout(r, t.chain.blockTimeMs));
    },
  });
  await ingestor.syncOnce(); // the backfill to 30, the head seen at start
  expect(stuck).toBe(true);

  const tip = (await loadTip(t.ctx.db.pool, TEST_CHAIN_ID))!;
  const chainAt = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [
    `0x${tip.number.toString(16)}`,
    false,
  ]);
  // before the fix: "expected '0x…' to be '0x…'" (the tip, 30, was the stuck node's orphaned block)
  expect(tip.hash).toBe(chainAt.hash.toLowerCase());
  expect((await canonicalFacts(t.ctx.db.pool, TEST_CHAIN_ID)).map((f) => f.tx_hash)).toEqual([
    kept.transactionHash.toLowerCase(),
  ]);
});
