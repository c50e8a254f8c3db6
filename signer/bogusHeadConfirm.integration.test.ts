/**
 * A head from nowhere, and confirmation. The tracker confirmed a mined payment when its block was
 * at or below the height meeting the confirmation rule counted from the head of one answer: an
 * endpoint that once answers eth_blockNumber far above the chain (a proxy's bug, a node of another
 * network with the same chain id) made every mined payment `confirmed` that pass, whatever the
 * rule (a withdrawal posted at 1 block deep under a rule of 4). A confirmation stands only where
 * one node shows the request's block together with the block the rule counts from (as finality).
 * Real anvil behind the lying proxy, Postgres and the KMS emulator.
 */
import { type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;

beforeAll(async () => {
  t = await startLyingSignerTest(4);
});

afterAll(async () => {
  await t?.stop();
});

/** Let the signer run `n` more passes (each snapshot asks eth_blockNumber once; counted while a lie is set). */
async function passes(n: number): Promise<void> {
  const asked = () => t.proxy!.stats()["lie:eth_blockNumber"] ?? 0;
  const from = asked();
  await waitFor(`${n} passes`, async () => asked() >= from + n);
}

describe("an endpoint that once answers a head far above the chain", () => {
  it("confirms a payment 1 block deep only when the chain has the block 4 deep from it", async () => {
    const signer = t.run();
    try {
      await t.withdraw("shallow");
      const mined = await waitFor("the payment mined", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "shallow");
        return r?.status === "mined" ? r : undefined;
      });
      const b = BigInt(mined.blockNumber!);
      expect(BigInt(await t.rpc<Hex>("eth_blockNumber"))).toBe(b);
      // One eth_blockNumber answer a million blocks ahead, then the truth (the lie stays set to count them).
      let lied = false;
      t.proxy!.setMethodLie("eth_blockNumber", (answer) => {
        if (lied || !("result" in answer)) return answer as { result: unknown };
        lied = true;
        return { result: toHex(b + 1_000_000n) };
      });
      await waitFor("the lie told", async () => lied);
      await passes(10);
      expect((await getTxRequest(t.ctx.db.pool, "shallow"))?.status).toBe("mined");
      // 3 deep: still not confirmed.
      await t.rpc("anvil_mine", [toHex(2)]);
      await passes(10);
      expect((await getTxRequest(t.ctx.db.pool, "shallow"))?.status).toBe("mined");
      // 4 deep: the chain has the block the rule counts from.
      await t.rpc("anvil_mine", [toHex(1)]);
      await waitFor("the payment confirmed", async () => {
        const r = await getTxRequest(t.ctx.db.pool, "shallow");
        return r?.status === "confirmed";
      });
    } finally {
      t.proxy!.setMethodLie("eth_blockNumber", null);
      await signer.stop();
    }
  });
});
