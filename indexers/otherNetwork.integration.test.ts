/**
 * An endpoint of another network with our chain id (a devnet or fork of the chain, a provider
 * serving another network under the id) and a higher head, in the list of an indexer that holds
 * final blocks. Two real anvils with the same chain id: ours, indexed to a published finalized
 * block; the other's blocks are another chain's. On restart every endpoint's head is asked
 * (chains/rpc.ts askEveryHead) and the other's, the highest, was followed: its blocks fetched over
 * ours, a reorg reaching our final blocks. Now each endpoint must show our published final block
 * first (chains/rpc.ts holdFinal): the other is set aside (counted, logged), never followed, and
 * nothing final is rolled back.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { rpcMetrics } from "../chains/metrics.js";
import { endpointLabel } from "../chains/rpc.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { readFinalized } from "./finality.js";
import { openHalt } from "./halts.js";
import { loadTip } from "./store.js";
import {
  anvilRpc,
  canonicalFacts,
  freshAddress,
  sendAndMine,
  syncToHead,
} from "./testing/chain.js";
import { type IndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";
import { D1, startResumeTest } from "./testing/resumeTest.js";

let t: IndexerTest;
let other: Anvil;

beforeAll(async () => {
  t = await startResumeTest();
  other = await startAnvil({ chainId: TEST_CHAIN_ID, port: 0 });
  // The other network: same chain id, its own blocks (a transfer in its block 1: two anvils of one
  // second have the same empty blocks), a higher head than ours will reach.
  const otherRpc = anvilRpc(other.rpcUrl);
  await sendAndMine(otherRpc, { from: t.from, to: freshAddress(99), value: 1n });
  await otherRpc("anvil_mine", ["0x28"]);
});

/** Both endpoints, ours first: the other network's head is the highest. */
const bothEndpoints = () => ({ ...t.chain, rpcUrls: [t.chain.rpcUrls[0]!, other.rpcUrl] });

/** Ours 10 blocks on, indexed on its own to the head; its published finalized block (not the other's there). */
async function indexedAlone(): Promise<{ number: bigint; hash: string }> {
  await t.rpc("anvil_mine", ["0xa"]);
  const alone = await t.ingestor();
  await syncToHead(alone, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
  await alone.stop();
  const final = (await readFinalized(t.ctx.db.pool, TEST_CHAIN_ID))!;
  const theirs = await anvilRpc(other.rpcUrl)<{ hash: Hex }>("eth_getBlockByNumber", [
    `0x${final.number.toString(16)}`,
    false,
  ]);
  expect(theirs.hash.toLowerCase()).not.toBe(final.hash);
  return final;
}

async function otherChainCount(): Promise<number> {
  const { values } = await rpcMetrics(t.ctx.common.metrics.registry).otherChain.get();
  return values.find((v) => v.labels.endpoint === endpointLabel(other.rpcUrl))?.value ?? 0;
}

afterAll(async () => {
  await other?.stop();
  await t?.stop();
});

it("a restarted indexer sets aside an endpoint of another network with a higher head: ours is followed, nothing final rolled back", async () => {
  const final = await indexedAlone();

  // A deposit on ours; the indexer restarts with both endpoints.
  const deposit = await sendAndMine(t.rpc, { from: t.from, to: D1, value: 7n });
  const ingestor = await t.ingestor({ chain: bothEndpoints() });
  // Old code: "ingestor did not reach the head" (the other network's head was the best head, its
  // blocks read over ours: halted, "reorg reaches finalized block 7").
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);

  expect(await openHalt(t.ctx.db.pool, TEST_CHAIN_ID)).toBeNull();
  expect((await loadTip(t.ctx.db.pool, TEST_CHAIN_ID))!.number).toBe(BigInt(deposit.blockNumber));
  expect(await canonicalFacts(t.ctx.db.pool, TEST_CHAIN_ID)).toMatchObject([
    { tx_hash: deposit.transactionHash.toLowerCase(), amount: 7n },
  ]);
  expect((await readFinalized(t.ctx.db.pool, TEST_CHAIN_ID))!.number).toBeGreaterThanOrEqual(
    final.number,
  );
  expect(await otherChainCount()).toBe(1);
  await ingestor.stop();
});
