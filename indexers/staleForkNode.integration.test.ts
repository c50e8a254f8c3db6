/**
 * The first endpoint stuck on the losing fork: an execution node whose consensus client died just
 * after a fork. Its head stops at our stored tip and it keeps answering the orphaned blocks, a
 * deposit among them; the second endpoint follows the chain, which reorged the deposit out and
 * moved on. The realtime poll asked `latest` of the first endpoint at or past our tip: the stuck
 * one, whose `latest` is our tip, so "nothing new" for as long as it stays stuck (readiness only
 * said the head stalled). The deposit stayed canonical, credited, never held; nothing later was
 * indexed. Now a head that has not moved for a block time is asked past our tip (a node there
 * shows the chain moved on), and the ancestor search asks nodes at or past the best head seen:
 * the orphaned blocks are orphaned and the index equals a fresh index of the chain. The reorg's
 * record names the winning chain's head (it named the stuck node's), and the backfill from the
 * common ancestor reads blocks at or below the stuck head from a node at the best head (it read
 * the stuck node's orphaned blocks, and stayed at the ancestor while it was stuck).
 * Real anvil behind lying proxies (the stuck node's answers rewritten), Postgres.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import type { Ingestor } from "./createIngestor.js";
import { loadTip } from "./store.js";
import { canonicalFacts, freshAddress, freshIndex, sendAndMine } from "./testing/chain.js";
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

async function headOf(): Promise<{ number: bigint; hash: string }> {
  const b = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
  return { number: BigInt(b.number), hash: b.hash.toLowerCase() };
}

/**
 * A deposit, indexed; then the first endpoint stuck on the fork that held it, and the chain
 * reorging it out and moving on. Syncs `ingestor` until its tip is the chain's head, and checks
 * the index is the chain's. Returns the stuck head and the reorgs recorded meanwhile.
 */
async function reorgPastStuckNode(
  ingestor: Ingestor,
): Promise<{ stuckHead: { number: bigint; hash: string }; reorgs: ReorgRow[] }> {
  const before = await reorgRows();
  unstick(stuck);
  await t.rpc("anvil_mine", ["0x3"]);
  const deposit = await sendAndMine(t.rpc, { from: t.from, to: D1, value: 7n });
  await t.rpc("anvil_mine", ["0x1"]);
  const stuckHead = await headOf();
  for (let i = 0; i < 50; i++) {
    await ingestor.syncOnce();
    if ((await loadTip(t.ctx.db.pool, CHAIN_ID))?.hash === stuckHead.hash) break;
  }
  expect((await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).length).toBe(1);

  // The stuck node's view: its head, and its blocks from the deposit's up (both hydrations, their
  // receipts and traces); the chain reorgs the deposit out and moves on.
  expect(await stuckThroughReorg(t.rpc, stuck, BigInt(deposit.blockNumber))).toEqual(stuckHead);

  const deadline = Date.now() + 15_000;
  let head = await headOf();
  for (;;) {
    await ingestor.syncOnce().catch(() => {});
    head = await headOf();
    const tip = await loadTip(t.ctx.db.pool, CHAIN_ID);
    if (tip?.hash === head.hash) break;
    if (Date.now() > deadline)
      throw new Error(
        `indexer tip ${tip?.number}:${tip?.hash}, the chain's head ${head.number}:${head.hash}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
  // The deposit is no longer canonical, and the index is the chain's.
  const reference = await freshIndex({
    common: t.ctx.common,
    chain: { ...t.chain, rpcUrls: [t.ctx.anvils[0]!.rpcUrl] },
    sourcePool: t.ctx.db.pool,
  });
  expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
  expect(reference.facts).toEqual([]);
  return { stuckHead, reorgs: (await reorgRows()).slice(before.length) };
}

type ReorgRow = { new_tip_number: string; new_tip_hash: string };

async function reorgRows(): Promise<ReorgRow[]> {
  const { rows } = await t.ctx.db.pool.query<ReorgRow>(
    "SELECT new_tip_number, new_tip_hash FROM chain.reorgs WHERE chain_id = $1 ORDER BY id",
    [CHAIN_ID],
  );
  return rows;
}

describe("the first endpoint stuck on the losing fork", () => {
  it("the indexer follows the chain past it: the reorg is seen, the orphaned deposit orphaned", async () => {
    const { stuckHead, reorgs } = await reorgPastStuckNode(await t.ingestor());
    expect(reorgs.length).toBe(1);
    // The reorg's record names the head of the chain that won, not the stuck node's head (its
    // orphaned block). Old code: "expected 5 to be greater than 5" (the stuck head).
    const newTip = BigInt(reorgs[0]!.new_tip_number);
    expect(newTip).toBeGreaterThan(stuckHead.number);
    const chainAt = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [hex(newTip), false]);
    expect(reorgs[0]!.new_tip_hash).toBe(chainAt.hash.toLowerCase());
  });

  it("backfilling from the common ancestor, blocks at or below the stuck head come from the chain that won", async () => {
    // Ranges of one block: after the rollback, the first ranges lie at or below the stuck node's
    // head, where it is "at the height" and was asked first: its orphaned blocks (the deposit's),
    // which the range's other reads did not agree with (CHAIN_DATA_INCONSISTENT, refetched), for
    // as long as it stayed stuck: nothing past the ancestor indexed.
    // Old code: "Error: indexer tip 3:0x55f3…, the chain's head 8:0x2355…" (15 s at the ancestor).
    const { reorgs } = await reorgPastStuckNode(await t.ingestor({ options: { batchBlocks: 1 } }));
    expect(reorgs.length).toBe(1);
  });
});
