/**
 * Published finality (shared contract 1): after a sync the checkpoint carries the highest stored
 * canonical block meeting the finality rule, with its hash; it never moves down; `readHalts` is
 * empty on a healthy chain.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Ingestor } from "./createIngestor.js";
import { readFinalized, readHalts } from "./index.js";
import { freshAddress, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
let t: IndexerTest;
let ingestor: Ingestor;

beforeAll(async () => {
  // confirmations 2, reorgWindow 8, no finality rule: finality is 8 blocks.
  t = await startIndexerTest({ watch: [{ address: freshAddress(1) }] });
  ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
});

afterAll(async () => {
  await t?.stop();
});

async function blockHash(n: bigint): Promise<string> {
  const b = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [`0x${n.toString(16)}`, false]);
  return b.hash.toLowerCase();
}

it("publishes head - 8 + 1 with its hash, and nothing before 8 blocks exist", async () => {
  const from = (await t.rpc<Hex[]>("eth_accounts"))[0]!;
  for (let i = 0; i < 3; i++) await sendAndMine(t.rpc, { from, to: freshAddress(1), value: 1n });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  expect(await readFinalized(t.ctx.db.pool, CHAIN_ID)).toBeNull(); // head 3: nothing 8 deep yet
  for (let i = 0; i < 12; i++) await sendAndMine(t.rpc, { from, to: freshAddress(1), value: 1n });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
  expect(head).toBe(15n);
  expect(await readFinalized(t.ctx.db.pool, CHAIN_ID)).toEqual({
    number: head - 7n,
    hash: await blockHash(head - 7n),
  });
  expect(await readHalts(t.ctx.db.pool)).toEqual([]);
});
