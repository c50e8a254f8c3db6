/**
 * Under a blocks finality rule a block is final where it is that many blocks deep: one node must
 * show the block together with a block that many heights above it (a block's hash names its
 * ancestors). Two real anvils with the same chain id on different chains: ours answers the head
 * and the wallet's count but withholds receipts and its block at the fork's height (a provider
 * backend that has not got them), the other (a node on a minority fork) mined the same signed
 * withdrawal, reverted, at its head. The receipt and the block's hash came from the fork's node
 * and the finality height from ours, 20 blocks on: the withdrawal was failed as REVERTED (its
 * hold released) at a block one deep on the only chain that holds it, while on ours the same
 * nonce is used in another block; had a payment of ours used it there, the money left and the
 * hold was released too.
 */
import { type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest, TEST_CHAIN_ID } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let other: Anvil;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      config: {
        confirmations: { kind: "blocks", blocks: 1 },
        finality: { kind: "blocks", blocks: 10 },
      },
    },
    proxy: startRpcProxy,
  });
  other = await startAnvil({ chainId: TEST_CHAIN_ID, port: 0 });
});

afterAll(async () => {
  await other?.stop();
  await t?.stop();
});

/** The request's status and where it mined (block number, hash), as stored. */
async function stored(id: string) {
  const { rows } = await t.ctx.db.pool.query<{
    status: string;
    block_number: string | null;
    block_hash: string | null;
    receipt_success: boolean | null;
  }>(
    "SELECT status, block_number::text, block_hash, receipt_success FROM custody.tx_requests WHERE id = $1",
    [id],
  );
  return rows[0]!;
}

async function otherRpc<T>(method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(other.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return ((await res.json()) as { result: T }).result;
}

describe("a blocks finality rule with endpoints on two forks", () => {
  it("does not fail a withdrawal at a block no node shows that deep", async () => {
    // A contract that always reverts, on both chains (the gas limit skips the estimate).
    const reverter = "0x00000000000000000000000000000000000000aa";
    await t.rpc("anvil_setCode", [reverter, "0x60006000fd"]);
    await otherRpc("anvil_setCode", [reverter, "0x60006000fd"]);
    const account = await t.wallet(parseEther("10"));
    await otherRpc("anvil_setBalance", [account.address, toHex(parseEther("10"))]);
    // The fork's next block (1) holds the withdrawal there; ours withholds its block 1 and receipts.
    const forkHeight = BigInt(await otherRpc<Hex>("eth_blockNumber")) + 1n;
    t.proxy!.setIntercept((call) => {
      if (call.method === "eth_getTransactionReceipt") return { result: null };
      if (call.method === "eth_getBlockByNumber" && call.params?.[0] === toHex(forkHeight))
        return { result: null };
      return undefined;
    });
    const signer = t.run(account, {
      chain: { ...t.chain, rpcUrls: [t.proxy!.url, other.rpcUrl] },
      settings: { receiptGraceMs: 200, fullSearchIntervalMs: 200 },
    });
    try {
      await t.withdraw([{ id: "fork-reverted", to: reverter, gasLimit: 100_000n }], {
        from: account.address,
      });
      const raw = await waitFor("signed", async () => {
        const { rows } = await t.ctx.db.pool.query<{ raw_tx: Hex }>(
          "SELECT raw_tx FROM custody.tx_attempts WHERE request_id = 'fork-reverted'",
        );
        return rows[0]?.raw_tx;
      });
      await otherRpc("eth_sendRawTransaction", [raw]);
      const theirs = (await waitFor("mined on the fork", () =>
        otherRpc<{ hash: Hex } | null>("eth_getBlockByNumber", [toHex(forkHeight), false]),
      ))!;
      const mined = await waitFor(
        "mined in the fork's block",
        async () => {
          const r = await stored("fork-reverted");
          return r.status === "mined" ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect([mined.block_number, mined.block_hash, mined.receipt_success]).toEqual([
        forkHeight.toString(),
        theirs.hash.toLowerCase(),
        false,
      ]);
      // Our chain 20 blocks on: by its head the fork's height is final; the fork shows it 1 deep.
      await t.rpc("anvil_mine", ["0x14"]);
      const calls = t.proxy!.calls("eth_blockNumber");
      await waitFor("more ticks", async () => t.proxy!.calls("eth_blockNumber") > calls + 10, {
        timeoutMs: 10_000,
      });
      expect((await stored("fork-reverted")).status).toBe("mined");
      // Our node back whole: the request follows our block, final there, and fails as REVERTED.
      t.proxy!.setIntercept(undefined);
      await t.rpc("anvil_mine", ["0xa"]);
      const done = await waitFor(
        "failed on our chain",
        async () => {
          const r = await stored("fork-reverted");
          return r.status === "failed" ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(done.block_hash).not.toBe(theirs.hash.toLowerCase());
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });
});
