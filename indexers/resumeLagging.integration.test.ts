/**
 * `chains resume` re-checks the node before closing a halt. A node below our tip that agrees with
 * us at its own height has not seen the blocks the halt is about (it lags, or restarted from an old
 * snapshot): that is no agreement. On a real anvil (finality 4 blocks): a reorg of depth 6 halts
 * the chain; the endpoint then lags 10 blocks (below the fork point). Resume must not close the halt
 * as "the node agrees with the stored chain".
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEvmAdapter } from "../chains/index.js";
import { readHalts } from "./halts.js";
import { resumeChain } from "./resume.js";
import { freshAddress, sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";

const D1 = freshAddress(1);
let t: IndexerTest;

beforeAll(async () => {
  t = await startIndexerTest({
    chain: {
      config: {
        confirmations: { kind: "blocks", blocks: 2 },
        finality: { kind: "blocks", blocks: 4 },
        reorgWindow: 8,
        traces: false,
      },
    },
    proxies: 1,
    watch: [{ address: D1 }],
  });
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
    acceptReorg: false,
  }).catch((error: Error) => error);
  // The halt stays open: the node has not reached the blocks in question.
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
  expect(result).toBeInstanceOf(Error);
  expect(String((result as Error).message)).toMatch(/has reached block/);
});
