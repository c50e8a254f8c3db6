/**
 * A node whose eth_feeHistory keeps failing (a provider disabling the method, a client bug) while
 * a request waits for intake. Fees are needed only to sign new bytes: the transactions already
 * sent must still be followed (confirmed, finalized, re-sent after a reorg) and their outcomes
 * rung. When intake let the failure end the tick, every tick ended there, before the tracker:
 * a mined withdrawal was never confirmed, and a reorg that took it out was never answered.
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 3 } } },
    proxy: startRpcProxy,
  });
});

afterAll(async () => {
  await t?.stop();
});

describe("eth_feeHistory failing while a request waits", () => {
  it("sent transactions are still tracked to confirmed; the new one waits pending", async () => {
    const account = await t.wallet(parseEther("10"));
    const signer = t.run(account);
    try {
      await t.withdraw(["fh-sent"], { from: account.address });
      await waitFor(
        "the first withdrawal mined",
        async () => (await getTxRequest(t.ctx.db.pool, "fh-sent"))?.status === "mined",
        { timeoutMs: 10_000 },
      );
      t.proxy!.setIntercept((call) =>
        call.method === "eth_feeHistory"
          ? { error: { code: -32603, message: "feeHistory: backend unavailable" } }
          : undefined,
      );
      await t.withdraw(["fh-waiting"], { from: account.address });
      await waitFor(
        "the sent withdrawal confirmed while fees cannot be read",
        async () => {
          await t.rpc("evm_mine");
          return (await getTxRequest(t.ctx.db.pool, "fh-sent"))?.status === "confirmed";
        },
        { timeoutMs: 10_000 },
      );
      // Nothing was signed for it without fees: it waits, with no nonce taken.
      const waiting = await getTxRequest(t.ctx.db.pool, "fh-waiting");
      expect(waiting?.status).toBe("pending");
      expect(waiting?.nonce ?? null).toBeNull();
      t.proxy!.setIntercept(undefined);
      await waitFor(
        "the waiting withdrawal sent once fees are readable again",
        async () => {
          const s = (await getTxRequest(t.ctx.db.pool, "fh-waiting"))?.status;
          if (s === "mined") await t.rpc("evm_mine");
          return s === "confirmed";
        },
        { timeoutMs: 10_000 },
      );
    } finally {
      await signer.stop();
      t.proxy!.setIntercept(undefined);
    }
  });
});
