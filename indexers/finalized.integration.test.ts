/**
 * The `finalized` confirmation rule on anvil (finalized = head - 64): facts are confirmed when
 * their block is at or below the node's finalized block, also while no new block is indexed.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freshAddress, sendAndMine, syncToHead, watch } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
let t: IndexerTest;

beforeAll(async () => {
  t = await startIndexerTest({ chain: { config: { confirmations: { kind: "finalized" } } } });
});

afterAll(async () => {
  await t?.stop();
});

async function statusOf(tx: Hex): Promise<string> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT status FROM chain.transfers WHERE tx_hash = $1",
    [tx.toLowerCase()],
  );
  return rows[0]?.status;
}

it("confirms up to the finalized block and follows it as it moves", async () => {
  const D = freshAddress(1);
  await watch(t.ctx.db.pool, CHAIN_ID, [{ address: D }]);
  const early = await sendAndMine(t.rpc, { from: t.from, to: D, value: 1n });
  await t.rpc("anvil_mine", ["0x46"]); // 70 blocks
  const late = await sendAndMine(t.rpc, { from: t.from, to: D, value: 2n });
  const ingestor = await t.ingestor();
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  const finalized = await t.rpc<{ number: Hex }>("eth_getBlockByNumber", ["finalized", false]);
  expect(BigInt(finalized.number)).toBeGreaterThanOrEqual(BigInt(early.blockNumber));
  expect(BigInt(finalized.number)).toBeLessThan(BigInt(late.blockNumber));
  expect(await statusOf(early.transactionHash)).toBe("confirmed");
  expect(await statusOf(late.transactionHash)).toBe("seen");
  await t.rpc("anvil_mine", ["0x50"]);
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  expect(await statusOf(late.transactionHash)).toBe("confirmed");
  await ingestor.stop();
});
