/**
 * Node refusals and their one response each, on anvil: bytes that can never be included are
 * rejected and their nonce is used by a cancel (no gap, the request fails); an unfunded wallet
 * keeps its nonce and its stored bytes, alerts, and sends the very same bytes once funded.
 */
import { parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      anvilArgs: SMALL_BLOCKS,
      config: { confirmations: { kind: "blocks", blocks: 1 } },
    },
  });
});

afterAll(async () => {
  await t?.stop();
});

describe("node refusals", () => {
  it("cancels the nonce of bytes a node can never include, fails that request, and goes on", async () => {
    const account = await t.wallet(parseEther("10"));
    const signer = t.run(account);
    try {
      // More gas than a block holds: no node will ever include these bytes.
      await t.withdraw(
        [
          { id: "a-too-much-gas", gasLimit: 2_000_000n },
          { id: "b-next", value: 2n },
        ],
        { from: account.address },
      );
      await waitFor("both final", async () => {
        const a = await getTxRequest(t.ctx.db.pool, "a-too-much-gas");
        const b = await getTxRequest(t.ctx.db.pool, "b-next");
        if (a?.status === "mined" || b?.status === "mined") await t.rpc("evm_mine");
        return a?.status === "failed" && b?.status === "confirmed";
      });
      const failed = (await getTxRequest(t.ctx.db.pool, "a-too-much-gas"))!;
      expect(failed.errorCode).toBe("CANCELLED");
      expect(failed.fee).toBe(21_000n * failed.effectiveGasPrice!);
      const cancel = await t.client.getTransaction({ hash: failed.txHash as `0x${string}` });
      expect(cancel.to?.toLowerCase()).toBe(account.address.toLowerCase());
      expect(cancel.value).toBe(0n);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT purpose, status, last_error_class FROM custody.tx_attempts WHERE request_id = 'a-too-much-gas' ORDER BY id",
      );
      expect(rows).toEqual([
        { purpose: "send", status: "rejected", last_error_class: "gas_limit_too_high" },
        { purpose: "cancel", status: "mined", last_error_class: null },
      ]);
      expect((await getTxRequest(t.ctx.db.pool, "b-next"))?.nonce).toBe(1n);
      expect(failed.nonce).toBe(0n);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(2);
      expect(await t.alertCount("nonce_cancelled", account.address)).toBe(1);
    } finally {
      await signer.stop();
    }
  });

  it("leaves an unfunded wallet's request unsigned (no nonce taken) with an alert, and sends it once funded", async () => {
    const account = await t.wallet(0n);
    // An unpaid request is read again after unpaidRetryMs (intake.ts): short here.
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("unfunded", { from: account.address, value: 5n });
      await waitFor(
        "low funds alert",
        async () => (await t.alertCount("insufficient_funds", account.address)) >= 2,
      );
      // The gas estimate and the budget (value + gas x max fee) refuse it before a nonce is taken.
      const waiting = (await getTxRequest(t.ctx.db.pool, "unfunded"))!;
      expect(waiting.status).toBe("pending");
      expect(waiting.nonce).toBeNull();
      await t.rpc("anvil_setBalance", [account.address, toHex(parseEther("1"))]);
      const done = await waitFor("confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "unfunded");
        if (r?.status === "mined") await t.rpc("evm_mine");
        return r?.status === "confirmed" ? r : undefined;
      });
      expect(done.nonce).toBe(0n);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE request_id = 'unfunded'",
      );
      expect(rows[0].n).toBe(1);
    } finally {
      await signer.stop();
    }
  });
});
