/**
 * `chains resume` while the first endpoint is stuck on the fork that lost: an execution node whose
 * consensus client died before a reorg below our final blocks (finality 4 blocks, a reorg of 6),
 * so it still answers our stored chain, its head stopped at our tip; the second endpoint follows
 * the chain, which moved on. The resume asked the first endpoint its head and its block at our
 * tip: ours, so it closed the halt as "the node agrees with the stored chain", no reorg described,
 * the orphaned deposits still credited. Now every endpoint is asked its head, and the re-check and
 * the new tip are read from a node at the best head: the reorg is described, and accepted, rolled
 * back to the chain's head.
 * Real anvil behind lying proxies (the stuck node's answers rewritten), Postgres.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { readHalts } from "./halts.js";
import type { ResumeResult } from "./resume.js";
import { loadTip } from "./store.js";
import { sendAndMine, syncToHead } from "./testing/chain.js";
import { type IndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";
import { D1, resumeCaught, startResumeTest } from "./testing/resumeTest.js";
import { stickAtHead } from "./testing/stuckNode.js";

let t: IndexerTest;

beforeAll(async () => {
  t = await startResumeTest({ proxies: 2 });
});

afterAll(async () => {
  await t?.stop();
});

it("describes the reorg, and rolls back to the chain's head, with the first endpoint stuck on our stored chain", async () => {
  const [stuck, follows] = t.proxies as [(typeof t.proxies)[0], (typeof t.proxies)[0]];
  // Indexed (from the endpoint that follows the chain), then halted by a reorg of 6 blocks.
  const ingestor = await t.ingestor({
    chain: { ...t.chain, rpcUrls: [follows.url] },
    options: { batchBlocks: 4 },
  });
  for (let i = 0n; i < 12n; i++) await sendAndMine(t.rpc, { from: t.from, to: D1, value: 1n + i });
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
  const tip = (await loadTip(t.ctx.db.pool, TEST_CHAIN_ID))!;
  // The first endpoint stuck at our tip, on our stored chain.
  await stickAtHead(t.rpc, stuck, tip.number - 8n);
  await t.rpc("anvil_reorg", [6, [[{ from: t.from, to: D1, value: "0x999" }, 0]]]);
  await t.rpc("anvil_mine", ["0x3"]);
  await ingestor.syncOnce();
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);
  await ingestor.stop();

  // Old code: "expected 'resumed' to be 'refused'" (the halt closed on the stuck node's word).
  const refused = (await resumeCaught(t, null)) as ResumeResult;
  expect(refused.kind).toBe("refused");
  if (refused.kind !== "refused") return;
  expect(refused.ancestor).toBe(tip.number - 6n);
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(1);

  const accepted = (await resumeCaught(t, refused.accept)) as ResumeResult;
  expect(accepted.kind).toBe("resumed");
  // The rollback's new tip (its record's) is the chain's head, not the stuck node's (our old tip).
  const head = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
  expect(accepted.kind === "resumed" && accepted.rollback?.newTip).toEqual({
    number: BigInt(head.number),
    hash: head.hash.toLowerCase(),
  });
  expect(await readHalts(t.ctx.db.pool)).toHaveLength(0);
});
