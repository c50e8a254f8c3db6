/**
 * A confirmed withdrawal re-included in another block by a reorg while the signer's first endpoint
 * is stuck on the losing fork (its consensus client gone: its head stopped, it keeps answering the
 * orphaned blocks, our transaction's among them, and its receipt there). The nonce stays used on
 * the chain, so only a hash check sees the move; the canonical hash at the withdrawal's height was
 * asked of the first endpoint at that height, the stuck one, which shows our old block: the
 * request stayed `confirmed` at the orphaned block's number and hash for as long as that node
 * stayed stuck (the money right, the record, callers' webhooks and its finality wrong). Now the
 * canonical hashes are asked of a node at the best head first: the withdrawal is recorded in the
 * block it is in, and confirms there.
 * Real anvil behind the lying proxy (the stuck node's answers rewritten), Postgres, KMS emulator.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";
import {
  confirmedWithdrawal,
  indexedAtHead,
  reincludedOneBlockLater,
  stuckOnFork,
} from "./testing/staleFork.js";

let t: LyingSignerTest;
const DEST = "0x000000000000000000000000000000000000d1e7" as Hex;

beforeAll(async () => {
  // Final only 50 blocks deep: the reorg below is well above the finalized height.
  t = await startLyingSignerTest(2, { chain: { reorgWindow: 50 } });
});

afterAll(async () => {
  await t?.stop();
});

describe("a confirmed withdrawal re-included in another block while the first endpoint is stuck on the losing fork", () => {
  it("is recorded in the block it is in, not the orphaned one", async () => {
    const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
    // The stuck node first: it is asked first for whatever it claims to hold.
    t.chain = { ...t.chain, rpcUrls: [t.proxy!.url, anvilUrl] };
    await t.rpc("anvil_mine", ["0x4"]); // room for the reorg
    const first = await confirmedWithdrawal(t, "stale-fork-again", { to: DEST, value: 1_000n });
    await t.signer!.stop();

    // The stuck node's view: its head, its blocks from the withdrawal's up, its receipt there.
    const stuckHead = await stuckOnFork(t, first);

    // The chain reorgs: the same signed bytes mine one block later (the nonce stays used), and it
    // moves on.
    const again = await reincludedOneBlockLater(t, "stale-fork-again", first, stuckHead);
    // The signer starts again; the indexer (past the stuck node) is at the head: the resync asks
    // a node at the indexed tip, which shows the best head.
    await indexedAtHead(t);
    t.signer = t.run();

    // Old code: "timed out waiting for the withdrawal recorded in the block it is in" (confirmed
    // at the orphaned block all along).
    const back = await waitFor(
      "the withdrawal recorded in the block it is in",
      async () => {
        const o = await t.outcome("stale-fork-again");
        // Confirmed there, or already final (each poll mines a block).
        if (o.blockHash === again.blockHash && ["confirmed", "finalized"].includes(o.status))
          return o;
        await t.rpc("evm_mine");
        return undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(back.txHash).toBe(first.txHash);
    expect(back.blockNumber).toBe(again.blockNumber);
    expect(back.reorgs).toBe(1);
    expect(await t.client.getBalance({ address: DEST })).toBe(1_000n);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'stale-fork-again'",
    );
    expect(rows[0].n).toBe(1);
  });
});
