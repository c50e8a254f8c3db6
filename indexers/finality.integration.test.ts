/**
 * Published finality (shared contract 1): after a sync the checkpoint carries the highest stored
 * canonical block meeting the finality rule, with its hash; it never moves down; `readHalts` is
 * empty on a healthy chain.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { TestContext } from "../ops/testing/context.js";
import type { Ingestor } from "./createIngestor.js";
import { readFinalized, readHalts } from "./index.js";
import { freshAddress, type Rpc, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
let t: IndexerTest;
let ctx: TestContext;
let rpc: Rpc;
let ingestor: Ingestor;

beforeAll(async () => {
  // confirmations 2, reorgWindow 8, no finality rule: finality is 8 blocks.
  t = await startIndexerTest({ watch: [{ address: freshAddress(1) }] });
  ({ ctx, rpc } = t);
  ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
});

afterAll(async () => {
  await t?.stop();
});

async function blockHash(n: bigint): Promise<string> {
  const b = await rpc<{ hash: Hex }>("eth_getBlockByNumber", [`0x${n.toString(16)}`, false]);
  return b.hash.toLowerCase();
}

it("publishes head - 8 + 1 with its hash, and nothing before 8 blocks exist", async () => {
  const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
  for (let i = 0; i < 3; i++) await sendAndMine(rpc, { from, to: freshAddress(1), value: 1n });
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
  expect(await readFinalized(ctx.db.pool, CHAIN_ID)).toBeNull(); // head 3: nothing 8 deep yet
  for (let i = 0; i < 12; i++) await sendAndMine(rpc, { from, to: freshAddress(1), value: 1n });
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
  const head = BigInt(await rpc<Hex>("eth_blockNumber"));
  expect(head).toBe(15n);
  expect(await readFinalized(ctx.db.pool, CHAIN_ID)).toEqual({
    number: head - 7n,
    hash: await blockHash(head - 7n),
  });
  expect(await readHalts(ctx.db.pool)).toEqual([]);
});
