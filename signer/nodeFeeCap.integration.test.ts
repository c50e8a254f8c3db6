/**
 * geth's node-local --rpc.txfeecap (reth's too; Besu's --rpc-tx-feecap): the node refuses a send
 * whose gas limit x max fee is above its own setting, "tx fee (1.23 ether) exceeds the configured
 * cap (1.00 ether)". Those bytes are valid on chain (another node, or this one with its setting
 * raised, would take them). Read as bytes that can never be included, the attempt was rejected,
 * its nonce cancelled and the customer's withdrawal failed for one node's configuration. They must
 * keep their nonce, be resent, and raise an alert until a node takes them.
 */
import { type Hex, parseEther, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 1 } } },
    proxy: startRpcProxy,
  });
});

afterAll(async () => {
  await t?.stop();
});

describe("a node's own fee cap on sends", () => {
  it("keeps the nonce and the bytes, alerts, and sends them once a node takes them", async () => {
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const tx = parseTransaction((call.params as Hex[])[0]!);
      return tx.gas !== undefined && tx.gas > 100_000n
        ? {
            error: {
              code: -32000,
              message: "tx fee (1.23 ether) exceeds the configured cap (1.00 ether)",
            },
          }
        : undefined;
    });
    const account = await t.wallet(parseEther("10"));
    const signer = t.run(account);
    try {
      await t.withdraw([{ id: "big-fee", gasLimit: 200_000n }], { from: account.address });
      // Time for a refusal, a cancel and its block (the 1-block confirmation here).
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const { rows } = await t.ctx.db.pool.query(
        "SELECT purpose, status, last_error_class FROM custody.tx_attempts WHERE request_id = 'big-fee' ORDER BY id",
      );
      expect(rows).toEqual([
        { purpose: "send", status: "signed", last_error_class: "node_fee_cap" },
      ]);
      const waiting = (await getTxRequest(t.ctx.db.pool, "big-fee"))!;
      expect(waiting.status).toBe("signed");
      expect(waiting.nonce).toBe(0n);
      expect(await t.alertCount("node_fee_cap", account.address)).toBeGreaterThan(0);
      // The node's setting raised: the very same bytes go out and pay.
      t.proxy!.setIntercept(undefined);
      const done = await waitFor(
        "confirmed",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "big-fee");
          if (r?.status === "mined") await t.rpc("evm_mine");
          return r?.status === "confirmed" ? r : undefined;
        },
        { timeoutMs: 10_000 },
      );
      expect(done.txHash).toBe(waiting.txHash);
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });
});
