/**
 * A gas limit above the block's, refused in the words of today's Nethermind ("gas limit reached",
 * AcceptTxResult.GasLimitExceeded) and Erigon ("gas limit is too high", DiscardReason
 * GasLimitTooHigh, behind its ImportResult name), on anvil through a proxy that answers the send
 * as those clients do. No node will ever include those bytes: they must be rejected and their nonce
 * used by a cancel, as with geth's or anvil's words. Read as an unknown error instead, the bytes
 * stay `signed` and are resent every tick for ever, no cancel is placed, and every later send of
 * the wallet waits behind that nonce (no operator command reaches a `signed` request).
 */
import { type Hex, parseEther, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { anvilArgs: SMALL_BLOCKS, config: { confirmations: { kind: "blocks", blocks: 1 } } },
    proxy: startRpcProxy,
  });
});

afterAll(async () => {
  await t?.stop();
});

describe("a gas limit above the block's, in other clients' words", () => {
  it.each([
    ["nethermind", -32010, "gas limit reached"],
    ["erigon", -32000, "INVALID: gas limit is too high"],
  ])("%s (%i): %s", async (client, code, message) => {
    t.proxy!.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const tx = parseTransaction((call.params as Hex[])[0]!);
      return tx.gas !== undefined && tx.gas > 1_000_000n ? { error: { code, message } } : undefined;
    });
    const account = await t.wallet(parseEther("10"));
    const signer = t.run(account);
    const big = `${client}-a-too-much-gas`;
    const next = `${client}-b-next`;
    try {
      await t.withdraw(
        [
          { id: big, gasLimit: 2_000_000n },
          { id: next, value: 2n },
        ],
        { from: account.address },
      );
      await waitFor(
        "the nonce cancelled and the next request confirmed",
        async () => {
          const a = await getTxRequest(t.ctx.db.pool, big);
          const b = await getTxRequest(t.ctx.db.pool, next);
          if (a?.status === "mined" || b?.status === "mined") await t.rpc("evm_mine");
          return a?.status === "failed" && b?.status === "confirmed";
        },
        { timeoutMs: 20_000 },
      );
      expect((await getTxRequest(t.ctx.db.pool, big))!.errorCode).toBe("CANCELLED");
      // The next request's nonce is after the refused one's: it mined only because that was cancelled.
      expect((await getTxRequest(t.ctx.db.pool, next))!.nonce).toBe(1n);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT purpose, status, last_error_class FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
        [big],
      );
      expect(rows).toEqual([
        { purpose: "send", status: "rejected", last_error_class: "gas_limit_too_high" },
        { purpose: "cancel", status: "mined", last_error_class: null },
      ]);
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });
});
