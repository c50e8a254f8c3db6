/**
 * A reorg replaces a mined withdrawal's block with one in which another transaction of the wallet's
 * key (from outside custody) uses its nonce. A node whose transaction index still points at the
 * orphaned block answers the withdrawal's receipt from there. The request is not in the chain:
 * `receipt_unknown`, then `needs_review` once the nonce is used at a final block with no attempt
 * of ours there. Taken as mined (the unmined path's receipt lookups, through the fallback client
 * or asked of every endpoint), it went back to `mined` in the orphaned block and the next hash
 * check moved it to receipt_unknown again: a flip-flop of outcomes callers see, never reviewed.
 * Real anvil (anvil_reorg) behind two proxies, Postgres and the KMS emulator.
 */
import { parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
/** The second endpoint: asked only when every endpoint is searched on its own. */
let other: RpcProxy;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 } },
    proxy: startRpcProxy,
  });
  other = await startRpcProxy(t.ctx.config.chains[0]!.rpcUrls[0]!);
  t.chain = { ...t.chain, rpcUrls: [t.proxy!.url, other.url] };
});

afterAll(async () => {
  await other?.close();
  await t?.stop();
});

async function events(id: string): Promise<{ event: string; to_status: string }[]> {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT event, to_status FROM custody.tx_request_events WHERE request_id = $1 ORDER BY id",
    [id],
  );
  return rows;
}

/**
 * A withdrawal mined, then its block replaced by one where the key's own transaction uses its
 * nonce, while `stale` answers its receipt from the orphaned block: it ends in needs_review
 * without ever being taken as mined there.
 */
async function reorgedUnderStaleIndex(id: string, stale: RpcProxy): Promise<void> {
  const account = await t.wallet();
  const signer = t.run(account, { settings: { receiptGraceMs: 300, fullSearchIntervalMs: 300 } });
  try {
    await t.withdraw(id, { from: account.address, value: 7n });
    const first = await waitFor("mined", async () => {
      const o = await t.outcome(id);
      return o.blockNumber !== null ? o : undefined;
    });
    const receipt = await t.rpc<Record<string, unknown>>("eth_getTransactionReceipt", [
      first.txHash,
    ]);
    expect(receipt.blockHash).toBe(first.blockHash);
    // The key used from outside custody at the same nonce (an operator's own transfer).
    const outside = await account.signTransaction({
      chainId: t.chain.chainId,
      type: "eip1559",
      to: account.address,
      value: 0n,
      gas: 21_000n,
      nonce: Number(first.nonce),
      maxFeePerGas: parseGwei("100"),
      maxPriorityFeePerGas: parseGwei("2"),
    });
    stale.setRewrite((call, result) =>
      call.method === "eth_getTransactionReceipt" &&
      String((call.params as unknown[])[0]).toLowerCase() === first.txHash!.toLowerCase() &&
      result === null
        ? receipt
        : result,
    );
    const depth = Number((await t.client.getBlockNumber()) - first.blockNumber! + 1n);
    await t.rpc("anvil_reorg", [depth, [[outside, 0]]]);
    const gone = await t.client.getBlock({ blockNumber: first.blockNumber! });
    expect(gone.hash).not.toBe(first.blockHash);
    const end = await waitFor("needs_review, or taken as mined in the orphaned block", async () => {
      const seen = await events(id);
      if (seen.some((e) => e.event === "receipt_found")) return "taken";
      const o = await t.outcome(id);
      if (o.status === "needs_review") return o;
      await t.rpc("evm_mine");
      return undefined;
    });
    expect(end).toMatchObject({
      status: "needs_review",
      reviewReason: "NONCE_CONSUMED_NO_KNOWN_ATTEMPT",
      blockHash: null,
    });
    // Never back to mined after the reorg: one receipt_unknown, then the review.
    expect((await events(id)).filter((e) => e.to_status === "mined")).toEqual([]);
  } finally {
    stale.setRewrite(undefined);
    await signer.stop();
  }
}

describe("a receipt from a block the nodes at its height have replaced, for an unmined request", () => {
  it("is not taken from the fallback client's lookup", async () => {
    await reorgedUnderStaleIndex("stale-fallback", t.proxy!);
  });

  it("is not taken from the search of every endpoint", async () => {
    await reorgedUnderStaleIndex("stale-everywhere", other);
  });
});
