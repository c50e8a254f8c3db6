/**
 * A confirmed withdrawal reorged out while the signer's first endpoint is stuck on the losing fork
 * (an execution node whose consensus client died just after the fork: its head stops, and it keeps
 * answering the orphaned blocks, our transaction's among them, and its count). The signer that
 * takes the wallet over learns the chain's head from the second endpoint (resync asks at the
 * indexed tip, which the stuck node lacks), and that node counts the withdrawal's nonce unused.
 * The block hash at the withdrawal's height was asked of the first endpoint at or past that
 * height, the stuck one, which shows our block: "two nodes disagree; wait", for as long as that
 * node stays stuck. The withdrawal stayed `confirmed` (its posting standing for money that never
 * left), its bytes were never sent again, and every later nonce of the hot wallet waited behind
 * the hole. Now the hash is asked again of a node at the snapshot's head: the withdrawal goes back
 * to `broadcast`, its same bytes are resent, and it mines once.
 * Real anvil behind the lying proxy (the stuck node's answers rewritten), Postgres, KMS emulator.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";
import { confirmedWithdrawal, indexedAtHead, stuckOnFork } from "./testing/staleFork.js";

let t: LyingSignerTest;
const DEST = "0x000000000000000000000000000000000000d1e5" as Hex;

beforeAll(async () => {
  // Final only 50 blocks deep: the reorg below is well above the finalized height.
  t = await startLyingSignerTest(2, { chain: { reorgWindow: 50 } });
});

afterAll(async () => {
  await t?.stop();
});

describe("a confirmed withdrawal reorged out while the first endpoint is stuck on the losing fork", () => {
  it("is returned to broadcast and its same bytes mine again, decided by the node at the head", async () => {
    const anvilUrl = t.ctx.config.chains[0]!.rpcUrls[0]!;
    // The stuck node first: it is asked first for whatever it claims to hold.
    t.chain = { ...t.chain, rpcUrls: [t.proxy!.url, anvilUrl] };
    await t.rpc("anvil_mine", ["0x4"]); // room for the reorg
    const first = await confirmedWithdrawal(t, "stale-fork", { to: DEST, value: 1_000n });

    // The stuck node's view: its head, the blocks it imported from the withdrawal's block up,
    // the withdrawal's receipt there, and its count.
    const stuckHead = await stuckOnFork(t, first, { nonceCount: true });

    // The chain reorgs the withdrawal out (its blocks replaced by empty ones) and moves on: the
    // node at the head counts its nonce unused.
    const depth = Number(stuckHead - first.blockNumber! + 1n);
    await t.rpc("anvil_reorg", [depth, []]);
    await t.rpc("anvil_mine", ["0x3"]);
    expect(
      await t.client.getTransactionCount({ address: t.account.address, blockTag: "latest" }),
    ).toBe(Number(first.nonce));
    // Another signer takes the wallet over; the indexer (on the second node) is at the head.
    await t.signer!.stop();
    await indexedAtHead(t);
    t.signer = t.run();

    const back = await waitFor(
      "the withdrawal back from confirmed (reorged out) and mined again",
      async () => {
        const o = await t.outcome("stale-fork");
        if (o.reorgs >= 1 && o.blockNumber !== null && o.blockHash !== first.blockHash) return o;
        if (o.reorgs >= 1) await t.rpc("evm_mine");
        return undefined;
      },
      { timeoutMs: 20_000 },
    );
    // The very same signed bytes, once, recorded in the chain's block (not the stuck node's).
    expect(back.txHash).toBe(first.txHash);
    expect(back.blockHash).toBe((await t.client.getBlock({ blockNumber: back.blockNumber! })).hash);
    await t.rpc("anvil_mine", ["0x1"]);
    await waitFor("confirmed again in the chain's block", async () => {
      const o = await t.outcome("stale-fork");
      return o.status === "confirmed" && o.blockHash === back.blockHash;
    });
    expect(await t.client.getBalance({ address: DEST })).toBe(1_000n);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'stale-fork'",
    );
    expect(rows[0].n).toBe(1);
    const events = await t.ctx.db.pool.query(
      "SELECT from_status, to_status, event FROM custody.tx_request_events WHERE request_id = 'stale-fork' ORDER BY id",
    );
    expect(events.rows[0]).toEqual({
      from_status: "confirmed",
      to_status: "broadcast",
      event: "reorged_out",
    });
  });
});
