/**
 * The intake budget and what is already in flight, on anvil with automine off: a withdrawal the
 * wallet can pay on its own, but not after the sends in flight ahead of it, must take no nonce.
 * Signed, it holds the next nonce with bytes the node drops once those mine, and every later send
 * waits behind it, the sweep that would refill the hot wallet from its deposits among them: the
 * wallet is frozen until someone funds it from outside. Unsigned, it waits; the sweep goes first
 * (once the in-flight send mined, the withdrawal's own estimate refuses it until funds arrive).
 */
import { parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { bumpIntervalMs: 60_000, confirmations: { kind: "blocks", blocks: 1 } } },
  });
  await t.rpc("evm_setAutomine", [false]);
});

afterAll(async () => {
  await t?.stop();
});

describe("intake budget", () => {
  it("takes no nonce for a send the wallet cannot pay after what is in flight, so a refilling sweep is not stuck behind it", async () => {
    const account = await t.wallet(parseEther("1"));
    const signer = t.run(account);
    try {
      await t.withdraw("first", { from: account.address, value: parseEther("0.6") });
      await waitFor(
        "first sent",
        async () => (await getTxRequest(t.ctx.db.pool, "first"))?.status === "broadcast",
      );
      // 0.6 fits the balance alone (its estimate passes), not after the 0.6 in flight.
      await t.withdraw("second", { from: account.address, value: parseEther("0.6") });
      await new Promise((r) => setTimeout(r, 1_000));
      // A cheap send after it (a sweep pays only gas and brings the deposits in).
      await t.withdraw("sweep-like", { from: account.address, to: RECIPIENT, value: 0n });
      await t.rpc("evm_mine");
      const swept = await waitFor(
        "the sweep-like send mined",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "sweep-like");
          if (r?.status === "broadcast") await t.rpc("evm_mine");
          return r?.status === "confirmed" || r?.status === "mined" ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(swept.nonce).toBe(1n);
      expect(await t.client.getTransactionCount({ address: account.address })).toBe(2);
      const second = (await getTxRequest(t.ctx.db.pool, "second"))!;
      expect(second.status).toBe("pending");
      expect(second.nonce).toBeNull();
    } finally {
      await signer.stop();
    }
  });
});
