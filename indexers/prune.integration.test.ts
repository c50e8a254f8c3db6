/**
 * Blocks stay few: on a real anvil, after the indexer stores 40 blocks, only the blocks from
 * `finalized - blockRetention` up are left in chain.blocks, while every fact (of pruned blocks too)
 * stays; the published finalized block stays readable; a reorg within the window is still handled
 * (found, recorded, orphaned facts kept) with the older blocks gone.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Ingestor } from "./createIngestor.js";
import { readFinalized } from "./finality.js";
import { loadTip } from "./store.js";
import { freshAddress, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const D = freshAddress(7);
// finality 4 blocks, retention 8 (= 2 reorg windows of 4): blocks below finalized - 8 go.
const RETENTION = 8;
let t: IndexerTest;
let ingestor: Ingestor;
let from: Hex;

beforeAll(async () => {
  t = await startIndexerTest({
    config: {
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 4,
      finality: { kind: "blocks", blocks: 4 },
      blockRetention: RETENTION,
    },
    watch: [{ address: D }],
  });
  ({ from } = t);
  ingestor = await t.ingestor({ options: { batchBlocks: 5, pruneIntervalMs: 0 } });
});

afterAll(async () => {
  await t?.stop();
});

async function storedBlocks(): Promise<{ lo: number; hi: number; n: number }> {
  const { rows } = await t.ctx.db.pool.query(
    `SELECT min(number)::int AS lo, max(number)::int AS hi, count(*)::int AS n
       FROM chain.blocks WHERE chain_id = $1`,
    [CHAIN_ID],
  );
  return rows[0];
}

async function factCount(): Promise<number> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT count(*)::int AS n FROM chain.transfers WHERE chain_id = $1 AND to_address = $2 AND status <> 'orphaned'",
    [CHAIN_ID, D],
  );
  return rows[0].n;
}

it("keeps blocks from finalized - retention up, and every fact", async () => {
  for (let i = 1n; i <= 40n; i++) await sendAndMine(t.rpc, { from, to: D, value: i });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const tip = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
  const finalized = (await readFinalized(t.ctx.db.pool, CHAIN_ID))!;
  expect(tip.number).toBeGreaterThanOrEqual(40n);
  expect(finalized.number).toBe(tip.number - 3n);
  const blocks = await storedBlocks();
  expect(blocks).toEqual({
    lo: Number(finalized.number) - RETENTION,
    hi: Number(tip.number),
    n: Number(tip.number - finalized.number) + RETENTION + 1,
  });
  // Facts are evidence: all 40 stay, those of pruned blocks included.
  expect(await factCount()).toBe(40);
  // The finalized block itself is still stored (reconciliation and the ledger read its hash).
  const { rows } = await t.ctx.db.pool.query(
    "SELECT hash FROM chain.blocks WHERE chain_id = $1 AND number = $2 AND canonical",
    [CHAIN_ID, finalized.number.toString()],
  );
  expect(rows).toEqual([{ hash: finalized.hash }]);
});

it("still finds and records a reorg within the window over pruned history", async () => {
  const before = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM chain.reorgs");
  const tip = BigInt(await t.rpc<Hex>("eth_blockNumber"));
  // Replace the top 2 blocks (each holds one fact to D) with blocks holding other transfers.
  await t.rpc("anvil_reorg", [
    2,
    [
      [{ from, to: freshAddress(8), value: "0x1" }, 0],
      [{ from, to: freshAddress(8), value: "0x2" }, 1],
    ],
  ]);
  expect(BigInt(await t.rpc<Hex>("eth_blockNumber"))).toBe(tip);
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const { rows } = await t.ctx.db.pool.query(
    "SELECT depth, beyond_window FROM chain.reorgs ORDER BY id OFFSET $1",
    [before.rows[0].n],
  );
  expect(rows).toEqual([{ depth: 2, beyond_window: false }]);
  expect(await factCount()).toBe(38);
  const { rows: orphaned } = await t.ctx.db.pool.query(
    "SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'",
  );
  expect(orphaned[0].n).toBe(2);
  // The halt path was not taken and pruning goes on past the reorg.
  for (let i = 0; i < 6; i++) await sendAndMine(t.rpc, { from, to: D, value: 1000n });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const finalized = (await readFinalized(t.ctx.db.pool, CHAIN_ID))!;
  expect((await storedBlocks()).lo).toBe(Number(finalized.number) - RETENTION);
});
