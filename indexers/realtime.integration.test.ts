/**
 * Following the head costs at most 2 RPC calls per block (issue 12 item 10), counted on a real
 * anvil: a pass that finds no new block is one call (the `latest` poll re-checks the tip's hash
 * too); a new block holding a listed token's Transfer is the poll plus eth_getLogs by block hash;
 * a new block whose bloom holds no listed Transfer (and no watched transaction) is the poll alone.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEvmAdapter, type EvmAdapter } from "../chains/index.js";
import type { Ingestor } from "./createIngestor.js";
import { loadTip } from "./store.js";
import { call, canonicalFacts, freshAddress, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const D1 = freshAddress(1);
let t: IndexerTest;
let from: Hex;
let token: Hex;
let adapter: EvmAdapter;
let ingestor: Ingestor;

beforeAll(async () => {
  t = await startIndexerTest({
    chain: { config: { traces: false } },
    token: true,
    watch: [{ address: D1 }],
  });
  ({ from } = t);
  token = t.token!;
  adapter = createEvmAdapter(t.chain, { common: t.ctx.common });
  ingestor = await t.ingestor({ adapter });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
});

afterAll(async () => {
  await t?.stop();
});

async function callsOfOnePass(): Promise<number> {
  const before = adapter.rpc.callCount();
  await ingestor.syncOnce();
  return adapter.rpc.callCount() - before;
}

it("a pass that finds no new block costs one call", async () => {
  expect(await callsOfOnePass()).toBe(1);
  expect(await callsOfOnePass()).toBe(1);
});

it("a new block with a listed token's Transfer costs two calls, and is stored", async () => {
  const r = await sendAndMine(t.rpc, {
    from,
    to: token,
    data: call("TestToken", "transfer", [D1, 77n]),
  });
  expect(await callsOfOnePass()).toBe(2);
  expect((await loadTip(t.ctx.db.pool, CHAIN_ID))?.hash).toBe(r.blockHash.toLowerCase());
  const facts = await canonicalFacts(t.ctx.db.pool, CHAIN_ID);
  expect(facts.filter((f) => f.tx_hash === r.transactionHash.toLowerCase())).toMatchObject([
    { kind: "erc20", amount: 77n, to_address: D1 },
  ]);
});

it("a new block whose bloom has no listed Transfer costs one call", async () => {
  const other = freshAddress(99); // not watched: no receipt needed
  const r = await sendAndMine(t.rpc, { from, to: other, value: 5n });
  expect(await callsOfOnePass()).toBe(1);
  expect((await loadTip(t.ctx.db.pool, CHAIN_ID))?.hash).toBe(r.blockHash.toLowerCase());
});
