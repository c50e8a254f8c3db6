/**
 * The first endpoint stuck on the losing fork: an execution node whose consensus client died just
 * after a fork. Its head stops at our stored tip and it keeps answering the orphaned blocks, a
 * deposit among them; the second endpoint follows the chain, which reorged the deposit out and
 * moved on. The realtime poll asked `latest` of the first endpoint at or past our tip: the stuck
 * one, whose `latest` is our tip, so "nothing new" for as long as it stays stuck (readiness only
 * said the head stalled). The deposit stayed canonical, credited, never held; nothing later was
 * indexed. Now a head that has not moved for a block time is asked past our tip (a node there
 * shows the chain moved on), and the ancestor search asks nodes at or past the best head seen:
 * the orphaned blocks are orphaned and the index equals a fresh index of the chain.
 * Real anvil behind lying proxies (the stuck node's answers rewritten), Postgres.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import type { Ingestor } from "./createIngestor.js";
import { loadTip } from "./store.js";
import { canonicalFacts, freshAddress, freshIndex, sendAndMine } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const D1 = freshAddress(1);
let t: IndexerTest;
let stuck: FaultyProxy;
let ingestor: Ingestor;
const hex = (n: bigint) => `0x${n.toString(16)}`;

beforeAll(async () => {
  t = await startIndexerTest({
    proxies: 2,
    config: {
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 8,
      finality: { kind: "blocks", blocks: 64 },
    },
    watch: [{ address: D1 }],
  });
  stuck = t.proxies[0]!;
  ingestor = await t.ingestor();
});

afterAll(async () => {
  await t?.stop();
});

async function headOf(): Promise<{ number: bigint; hash: string }> {
  const b = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
  return { number: BigInt(b.number), hash: b.hash.toLowerCase() };
}

describe("the first endpoint stuck on the losing fork", () => {
  it("the indexer follows the chain past it: the reorg is seen, the orphaned deposit orphaned", async () => {
    await t.rpc("anvil_mine", ["0x3"]);
    const deposit = await sendAndMine(t.rpc, { from: t.from, to: D1, value: 7n });
    await t.rpc("anvil_mine", ["0x1"]);
    const stuckHead = await headOf();
    for (let i = 0; i < 50; i++) {
      await ingestor.syncOnce();
      if ((await loadTip(t.ctx.db.pool, CHAIN_ID))?.hash === stuckHead.hash) break;
    }
    expect((await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).length).toBe(1);

    // The stuck node's view: its head, and its blocks from the deposit's up (both hydrations).
    const depositBlock = BigInt(deposit.blockNumber);
    const old = new Map<string, unknown>();
    for (let n = depositBlock; n <= stuckHead.number; n++)
      for (const full of [false, true])
        old.set(`${n}:${full}`, await t.rpc("eth_getBlockByNumber", [hex(n), full]));
    stuck.setMethodLie("eth_blockNumber", () => ({ result: hex(stuckHead.number) }));
    stuck.setMethodLie("eth_getBlockByNumber", (real, params) => {
      const [tag, full] = params as [string, boolean];
      const n = tag === "latest" || tag === "pending" ? stuckHead.number : BigInt(tag);
      if (old.has(`${n}:${full}`)) return { result: old.get(`${n}:${full}`) };
      if (n > stuckHead.number) return { result: null };
      return real.error ? { error: real.error } : { result: real.result };
    });

    // The chain reorgs the deposit out (its blocks replaced by empty ones) and moves on.
    await t.rpc("anvil_reorg", [Number(stuckHead.number - depositBlock + 1n), []]);
    await t.rpc("anvil_mine", ["0x3"]);

    const deadline = Date.now() + 15_000;
    let head = await headOf();
    for (;;) {
      await ingestor.syncOnce().catch(() => {});
      head = await headOf();
      const tip = await loadTip(t.ctx.db.pool, CHAIN_ID);
      if (tip?.hash === head.hash) break;
      if (Date.now() > deadline)
        throw new Error(
          `indexer tip ${tip?.number}:${tip?.hash}, the chain's head ${head.number}:${head.hash}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
    // The deposit is no longer canonical, and the index is the chain's.
    const reference = await freshIndex({
      common: t.ctx.common,
      chain: { ...t.chain, rpcUrls: [t.ctx.anvils[0]!.rpcUrl] },
      sourcePool: t.ctx.db.pool,
    });
    expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
    expect(reference.facts).toEqual([]);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT depth FROM chain.reorgs WHERE chain_id = $1",
      [CHAIN_ID],
    );
    expect(rows.length).toBe(1);
  });
});
