/**
 * A head nobody can show is not evidence of finality: an endpoint answering one bogus head far above
 * the chain (a lying proxy, a node of another network with the same chain id) while the indexer
 * backfills must not make the stored blocks final. Under a `blocks` rule the published finalized
 * block stays at or below (highest stored, parent-linked block) - N + 1, whatever eth_blockNumber or
 * `latest` said; once the endpoint answers truly, finality follows the chain as before.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { NoHealthyEndpointError } from "../chains/index.js";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import type { Ingestor } from "./createIngestor.js";
import { readFinalized, readHalts } from "./index.js";
import { loadTip } from "./store.js";
import { syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
/** reorgWindow 8, no finality rule: finality is 8 blocks (head - 8 + 1). */
const FINALITY_BLOCKS = 8n;
const BOGUS_HEAD = 1_000_000n;

let t: IndexerTest;
let proxy: FaultyProxy;
let ingestor: Ingestor;

beforeAll(async () => {
  t = await startIndexerTest({ proxies: 1 });
  proxy = t.proxies[0]!;
  ingestor = await t.ingestor({ options: { batchBlocks: 4 } });
});

afterAll(async () => {
  await t?.stop();
});

const realHead = async () => BigInt(await t.rpc<Hex>("eth_blockNumber"));

async function blockHash(n: bigint): Promise<string> {
  const b = await t.rpc<{ hash: Hex }>("eth_getBlockByNumber", [`0x${n.toString(16)}`, false]);
  return b.hash.toLowerCase();
}

/** One pass with the endpoint lying; the lies are taken back whatever the pass did. */
async function passWhileLying(lies: () => void): Promise<unknown> {
  lies();
  try {
    return await ingestor.syncOnce().catch((e: unknown) => e);
  } finally {
    proxy.setMethodLie("eth_blockNumber", null);
    proxy.setMethodLie("eth_getBlockByNumber", null);
  }
}

async function expectNothingFinalAboveTheChain(): Promise<void> {
  const head = await realHead();
  const tip = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
  const finalized = await readFinalized(t.ctx.db.pool, CHAIN_ID);
  expect(finalized?.number ?? -1n).toBeLessThanOrEqual(head - FINALITY_BLOCKS + 1n);
  expect(finalized?.number ?? -1n).toBeLessThanOrEqual(tip.number - FINALITY_BLOCKS + 1n);
}

it("a bogus eth_blockNumber on the first pass (no stored tip): the backfilled blocks are not made final", async () => {
  await t.rpc("anvil_mine", ["0x1e"]); // 30 blocks
  const lied = await passWhileLying(() =>
    proxy.setMethodLie("eth_blockNumber", () => ({ result: `0x${BOGUS_HEAD.toString(16)}` })),
  );
  expect(proxy.stats()["lie:eth_blockNumber"] ?? 0).toBeGreaterThan(0);
  // The backfill stored the real blocks (and then found nothing above them), so the lie was seen.
  expect((await loadTip(t.ctx.db.pool, CHAIN_ID))?.number ?? -1n).toBeGreaterThan(FINALITY_BLOCKS);
  // The pass stopped where the real blocks end: no endpoint has the blocks the head promised.
  expect(lied).toBeInstanceOf(NoHealthyEndpointError);
  await expectNothingFinalAboveTheChain();
  expect(await readHalts(t.ctx.db.pool)).toEqual([]);
});

it("a bogus `latest` block during a backfill: the committed chunks' tips are not made final", async () => {
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const before = (await loadTip(t.ctx.db.pool, CHAIN_ID))!;
  await t.rpc("anvil_mine", ["0x28"]); // 40 blocks to backfill
  await passWhileLying(() =>
    proxy.setMethodLie("eth_getBlockByNumber", (real, params) => {
      const block = real.result as { number: Hex } | null;
      if (params[0] !== "latest" || !block) return { result: real.result };
      return { result: { ...block, number: `0x${BOGUS_HEAD.toString(16)}` } };
    }),
  );
  expect(proxy.stats()["lie:eth_getBlockByNumber"] ?? 0).toBeGreaterThan(0);
  expect((await loadTip(t.ctx.db.pool, CHAIN_ID))!.number).toBeGreaterThan(before.number);
  await expectNothingFinalAboveTheChain();
  expect(await readHalts(t.ctx.db.pool)).toEqual([]);
});

it("answered truly again, finality follows the chain: head - 8 + 1 with its hash", async () => {
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const head = await realHead();
  expect(await readFinalized(t.ctx.db.pool, CHAIN_ID)).toEqual({
    number: head - FINALITY_BLOCKS + 1n,
    hash: await blockHash(head - FINALITY_BLOCKS + 1n),
  });
  expect(await readHalts(t.ctx.db.pool)).toEqual([]);
});
