/**
 * The `finalized` tag of one endpoint is not evidence about the blocks another endpoint served. Two
 * real anvils with the same chain id, on different chains (a node stuck on a minority fork and the
 * canonical one): the blocks (and a deposit) come from the first, and one transport failure sends
 * the `finalized` read to the second, whose finalized block is above our tip, or below it at a
 * height where its block is not ours. Nothing of the first node's fork may be confirmed or
 * published final on the strength of the second's tag. When the second's head is the higher, a
 * starting indexer asks both heads first and follows the second (chains/rpc.ts askEveryHead): the
 * first's fork is then never stored at all.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { readFinalized } from "./finality.js";
import { anvilRpc, freshAddress, sendAndMine, watch } from "./testing/chain.js";
import { type FailOnceProxy, startFailOnceProxy } from "./testing/failOnceProxy.js";
import { type IndexerTest, startIndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";

let t: IndexerTest;
let other: Anvil;
let proxy: FailOnceProxy;

beforeEach(async () => {
  t = await startIndexerTest({ chain: { config: { confirmations: { kind: "finalized" } } } });
  other = await startAnvil({ chainId: TEST_CHAIN_ID, port: 0 });
  proxy = await startFailOnceProxy(t.ctx.anvils[0]!.rpcUrl, '"finalized"');
});

afterEach(async () => {
  await proxy?.close();
  await other?.stop();
  await t?.stop();
});

/**
 * Our node: a deposit at block 1, then `oursAfter` more blocks; the other node: `theirs` blocks of
 * another chain. One pass with the tag read from the other node; the deposit's status after it.
 */
async function depositStatusAfterOnePass(
  oursAfter: number,
  theirs: number,
  storedFrom: "ours" | "theirs" = "ours",
) {
  const D = freshAddress(1);
  await watch(t.ctx.db.pool, TEST_CHAIN_ID, [{ address: D }]);
  const deposit = await sendAndMine(t.rpc, { from: t.from, to: D, value: 7n });
  await t.rpc("anvil_mine", [`0x${oursAfter.toString(16)}`]);
  const otherRpc = anvilRpc(other.rpcUrl);
  await otherRpc("anvil_mine", [`0x${theirs.toString(16)}`]);
  const theirBlock = await otherRpc<{ hash: string }>("eth_getBlockByNumber", ["0x1", false]);
  const ourBlock = await t.rpc<{ hash: string }>("eth_getBlockByNumber", ["0x1", false]);
  expect(theirBlock.hash).not.toBe(ourBlock.hash);

  const ingestor = await t.ingestor({
    chain: { ...t.chain, rpcUrls: [proxy.url, other.rpcUrl] },
    options: { batchBlocks: 200 },
  });
  await ingestor.syncOnce();
  await ingestor.stop();
  const { rows } = await t.ctx.db.pool.query<{ status: string; block_hash: string }>(
    "SELECT status, block_hash FROM chain.transfers WHERE tx_hash = $1",
    [deposit.transactionHash.toLowerCase()],
  );
  if (storedFrom === "ours") {
    expect(proxy.failed()).toBe(1); // the tag was read from the other node
    expect(rows[0]?.block_hash).toBe(ourBlock.hash.toLowerCase()); // stored from our node
  } else {
    // A starting indexer asks every endpoint its head (chains/rpc.ts askEveryHead) and reads the
    // blocks of the one at the best head: the minority fork's block 1 is not what it stored.
    const { rows: stored } = await t.ctx.db.pool.query<{ hash: string }>(
      "SELECT hash FROM chain.blocks WHERE chain_id = $1 AND number = 1",
      [TEST_CHAIN_ID],
    );
    expect(stored[0]?.hash).toBe(theirBlock.hash.toLowerCase());
  }
  return { status: rows[0]?.status, finalized: await readFinalized(t.ctx.db.pool, TEST_CHAIN_ID) };
}

it("confirms nothing of our node's chain from a finalized tag above our tip on another chain", async () => {
  // Ours: head 10 (no finalized block of its own); theirs: 150 blocks, finalized 86. The indexer
  // starts by asking both heads and follows theirs (the best): the deposit of ours is never stored.
  expect(await depositStatusAfterOnePass(9, 150, "theirs")).toMatchObject({ status: undefined });
});

it("confirms nothing of our node's chain from a finalized tag below our tip on another chain", async () => {
  // Ours: head 100 (its own finalized 36, not asked this pass); theirs: 70 blocks, finalized 6.
  expect(await depositStatusAfterOnePass(99, 70)).toEqual({ status: "seen", finalized: null });
});
