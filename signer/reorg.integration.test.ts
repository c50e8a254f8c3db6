/**
 * A withdrawal confirmed with 3 confirmations is removed by a 5-block reorg (anvil_reorg): the
 * signer sees its block replaced, returns it to `broadcast`, resends the very same bytes (same
 * nonce), and it confirms again; the destination is paid exactly once, the wallet is not wedged
 * (the next request, signed while the reorged nonce was free, confirms too), and the request ends
 * `finalized` with the reorg on record. A node that still answers its receipt from the orphaned
 * block (a stale transaction index) does not keep it `mined` there: its bytes are resent.
 */
import { type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxOutcomes } from "./outcomes.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
/** The signer's RPC goes through this proxy so a test can count what it still asks for. */
let proxy: RpcProxy;
const DEST = "0x000000000000000000000000000000000000d00d" as Hex;
const NEXT = "0x000000000000000000000000000000000000d00e" as Hex;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 3 }, reorgWindow: 8 } },
    proxy: startRpcProxy,
    signer: {},
  });
  proxy = t.proxy!;
});

afterAll(async () => {
  await t?.stop();
});

/** Transactions from the hot wallet to `to` in canonical blocks [from, head]. */
async function paymentsTo(to: Hex, from: bigint): Promise<Hex[]> {
  const head = await t.client.getBlockNumber();
  const found: Hex[] = [];
  for (let b = from; b <= head; b++) {
    const block = await t.client.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions)
      if (tx.to?.toLowerCase() === to && tx.from.toLowerCase() === t.account.address.toLowerCase())
        found.push(tx.hash);
  }
  return found;
}

describe("a confirmed withdrawal reorged out", () => {
  it("is resent with the same bytes, confirms again, pays once, and the wallet keeps sending", async () => {
    await t.rpc("anvil_mine", ["0x4"]); // room for a 5-block reorg
    const startBlock = await t.client.getBlockNumber();
    const value = parseEther("1");
    await t.withdraw("reorged", { to: DEST, value });
    const first = await waitFor("mined", async () => {
      const o = await t.outcome("reorged");
      return o.blockNumber !== null ? o : undefined;
    });
    await t.rpc("anvil_mine", ["0x2"]); // 3 confirmations
    await waitFor("confirmed", async () => (await t.outcome("reorged")).status === "confirmed");
    expect(await t.client.getBalance({ address: DEST })).toBe(value);

    // Replace the last 5 blocks (the tx's block among them) with empty ones.
    const head = await t.client.getBlockNumber();
    expect(head - first.blockNumber! + 1n).toBe(3n);
    await t.rpc("anvil_reorg", [5, []]);
    expect(await t.client.getBlockNumber()).toBe(head);
    const gone = await t.client.getBlock({ blockNumber: first.blockNumber! });
    expect(gone.hash).not.toBe(first.blockHash);

    // Signed while nonce 0 is free again: it must not wait behind a hole for ever.
    await t.withdraw("next", { to: NEXT, value: 5n });

    const back = await waitFor("confirmed again", async () => {
      const o = await t.outcome("reorged");
      if (o.status === "confirmed" && o.reorgs === 1) return o;
      // Re-mined: give it its confirmations.
      if (o.reorgs === 1 && o.blockNumber !== null) await t.rpc("evm_mine");
      return undefined;
    });
    // The very same signed bytes, re-mined in another block.
    expect(back.txHash).toBe(first.txHash);
    expect(back.blockHash).not.toBe(first.blockHash);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'reorged'",
    );
    expect(rows[0].n).toBe(1);
    const events = await t.ctx.db.pool.query(
      "SELECT from_status, to_status, event FROM custody.tx_request_events WHERE request_id = 'reorged' ORDER BY id",
    );
    expect(events.rows).toEqual([
      { from_status: "confirmed", to_status: "broadcast", event: "reorged_out" },
    ]);

    await waitFor(
      "the next request mined",
      async () => (await t.outcome("next")).blockNumber !== null,
    );
    // Finality (8 blocks): both end finalized.
    await t.rpc("anvil_mine", ["0x9"]);
    const [next, reorged] = await waitFor("both finalized", async () => {
      const list = await getTxOutcomes(t.ctx.db.pool, { requestIds: ["reorged", "next"] });
      return list.every((o) => o.status === "finalized") ? list : undefined;
    });
    expect(reorged!.nonce).toBe(0n);
    expect(next!.nonce).toBe(1n);
    expect(next!.reorgs).toBe(0);
    expect(reorged!.finalizedAt).toBeInstanceOf(Date);

    // Paid exactly once on the canonical chain.
    expect(await t.client.getBalance({ address: DEST })).toBe(value);
    expect(await paymentsTo(DEST, startBlock + 1n)).toEqual([first.txHash]);
    expect(await paymentsTo(NEXT, startBlock + 1n)).toHaveLength(1);
    expect(await t.client.getTransactionCount({ address: t.account.address })).toBe(2);
  });

  it("does not take a receipt from the replaced block (a node's stale tx index) as mined: it resends", async () => {
    // A node whose transaction index still points at the orphaned block after a reorg (the tx is
    // in no canonical block) answers its receipt from that block. Taken as "mined" again, the
    // request stayed `mined` at a block no node has while its nonce was free: its bytes were
    // never resent and every later nonce of the wallet waited behind it, without an alert.
    await t.rpc("anvil_mine", ["0x5"]);
    const startBlock = await t.client.getBlockNumber();
    const to = "0x000000000000000000000000000000000000d00f" as Hex;
    await t.withdraw("staleIndex", { to, value: 7n });
    const first = await waitFor("mined", async () => {
      const o = await t.outcome("staleIndex");
      return o.blockNumber !== null ? o : undefined;
    });
    const stale = await t.rpc<Record<string, unknown>>("eth_getTransactionReceipt", [first.txHash]);
    expect(stale.blockHash).toBe(first.blockHash);
    await t.rpc("anvil_mine", ["0x2"]);
    await waitFor("confirmed", async () => (await t.outcome("staleIndex")).status === "confirmed");
    // The node answers that receipt from the orphaned block for as long as it has no other.
    proxy.setRewrite((call, result) =>
      call.method === "eth_getTransactionReceipt" &&
      String((call.params as unknown[])[0]).toLowerCase() === first.txHash!.toLowerCase() &&
      result === null
        ? stale
        : result,
    );
    try {
      await t.rpc("anvil_reorg", [5, []]);
      const gone = await t.client.getBlock({ blockNumber: first.blockNumber! });
      expect(gone.hash).not.toBe(first.blockHash);
      await t.withdraw("afterStale", { to, value: 8n });
      const back = await waitFor("re-mined in a canonical block and confirmed", async () => {
        const o = await t.outcome("staleIndex");
        if (o.status === "confirmed" && o.reorgs >= 1 && o.blockHash !== first.blockHash) return o;
        await t.rpc("evm_mine");
        return undefined;
      });
      expect(back.txHash).toBe(first.txHash);
      await waitFor("the next request mined", async () => {
        return (await t.outcome("afterStale")).blockNumber !== null;
      });
      const head = await t.client.getBlockNumber();
      const paid: Hex[] = [];
      for (let b = startBlock + 1n; b <= head; b++) {
        const block = await t.client.getBlock({ blockNumber: b, includeTransactions: true });
        for (const tx of block.transactions) if (tx.to?.toLowerCase() === to) paid.push(tx.hash);
      }
      expect(paid).toHaveLength(2); // each request once
      expect(await t.client.getBalance({ address: to })).toBe(15n);
    } finally {
      proxy.setRewrite(undefined);
    }
  });

  it("keeps a confirmed transaction watched until final, then stops", async () => {
    await t.rpc("anvil_setBalance", [t.account.address, toHex(parseEther("10"))]);
    await t.withdraw("watched", { to: DEST, value: 1n });
    await waitFor("mined", async () => (await t.outcome("watched")).blockNumber !== null);
    await t.rpc("anvil_mine", ["0x2"]);
    await waitFor("confirmed", async () => (await t.outcome("watched")).status === "confirmed");
    const before = await t.outcome("watched");
    expect(before.finalizedAt).toBeNull();
    await t.rpc("anvil_mine", ["0x6"]);
    const after = await waitFor("finalized", async () => {
      const o = await t.outcome("watched");
      return o.status === "finalized" ? o : undefined;
    });
    expect(after.changedAt.getTime()).toBeGreaterThanOrEqual(before.changedAt.getTime());
    expect(after.finalizedAt).toBeInstanceOf(Date);
    // Then it stops: over 40 more signer passes and at least 6 s (the full re-check of every
    // mined request runs each 5 s) while the chain moves on 20 more blocks, the signer asks neither for this tx's receipt nor for
    // the block at its height (how it re-checks a mined request against the canonical chain).
    const ownBlock = toHex(after.blockNumber!);
    let receiptAsks = 0;
    let blockAsks = 0;
    proxy.setIntercept((call) => {
      const first = String((call.params as unknown[] | undefined)?.[0]).toLowerCase();
      if (call.method === "eth_getTransactionReceipt" && first === after.txHash!.toLowerCase())
        receiptAsks += 1;
      if (call.method === "eth_getBlockByNumber" && first === ownBlock) blockAsks += 1;
      return undefined;
    });
    try {
      const passesBefore = proxy.calls("eth_blockNumber");
      const since = Date.now();
      let mined = 0;
      await waitFor("40 more signer passes, 6 s and 20 more blocks", async () => {
        if (mined < 20) {
          await t.rpc("evm_mine");
          mined += 1;
        }
        return (
          mined >= 20 &&
          Date.now() - since >= 6_000 &&
          proxy.calls("eth_blockNumber") >= passesBefore + 40
        );
      });
      expect(receiptAsks).toBe(0);
      expect(blockAsks).toBe(0);
      const still = await t.outcome("watched");
      expect(still.status).toBe("finalized");
      expect(still.changedAt.getTime()).toBe(after.changedAt.getTime());
    } finally {
      proxy.setIntercept(undefined);
    }
  });
});
