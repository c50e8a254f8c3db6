/**
 * A confirmed withdrawal re-included in another block by a reorg while the signer RUNS and its
 * first endpoint gets stuck on the losing fork (its consensus client gone: its head stopped at the
 * reorged head, it keeps answering the orphaned blocks, our transaction's receipt among them).
 * The signer had read every head from that endpoint (the first, healthy until then): its head was
 * the best head seen, and stayed so, no other endpoint ever asked. The snapshot's head and count,
 * and the re-inclusion check's canonical hashes, came from the stuck node for as long as it stayed
 * stuck (`atBestHead`: the nonce stages acted on its count): the request stayed `confirmed` at the
 * orphaned block. Now a snapshot head unchanged for a block time has every endpoint asked its head
 * (chains/rpc.ts askEveryHead; once the indexer has published a final block, which the snapshot
 * checks the answering node shows): the best head is the chain's, and the withdrawal is recorded
 * in the block it is in. (A signer that starts again learns it at resync: staleForkReinclusion.)
 * Real anvil behind the lying proxy (the stuck node's answers rewritten), Postgres, KMS emulator.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setPublishedFinalized } from "../indexers/testing/chain.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";
import { confirmedWithdrawal, reincludedOneBlockLater, stuckOnFork } from "./testing/staleFork.js";

let t: LyingSignerTest;
const DEST = "0x000000000000000000000000000000000000d1e8" as Hex;

beforeAll(async () => {
  // Final only 50 blocks deep: the reorg below is well above the finalized height.
  t = await startLyingSignerTest(2, { chain: { reorgWindow: 50 } });
});

afterAll(async () => {
  await t?.stop();
});

describe("a confirmed withdrawal re-included in another block while the running signer's first endpoint gets stuck on the losing fork", () => {
  it("is recorded in the block it is in, without a restart", async () => {
    const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
    t.chain = { ...t.chain, rpcUrls: [t.proxy!.url, anvilUrl] };
    await t.rpc("anvil_mine", ["0x4"]); // room for the reorg
    // The indexer's published final block (below the reorg): a node's answer can be checked to
    // be of our chain, so every endpoint may be asked its head.
    const final = await t.client.getBlock();
    await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, final);
    const first = await confirmedWithdrawal(t, "stuck-while-running", { to: DEST, value: 1_000n });

    // The first endpoint gets stuck now, the signer running: its head, its blocks from the
    // withdrawal's up, its receipt there.
    const stuckHead = await stuckOnFork(t, first);

    // The chain reorgs: the same signed bytes mine one block later, and it moves on.
    const again = await reincludedOneBlockLater(t, "stuck-while-running", first, stuckHead);

    // Old code: "timed out waiting for the withdrawal recorded in the block it is in" (confirmed
    // at the orphaned block all along).
    const back = await waitFor(
      "the withdrawal recorded in the block it is in",
      async () => {
        const o = await t.outcome("stuck-while-running");
        // Confirmed there, or already final (each poll mines a block: a slow pass may see it past
        // the finality rule).
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
  });
});
