/**
 * A head from nowhere (chains/rpc.ts bestHead). The nonce, stall and bump stages act only on a
 * count read from a node at the best head any endpoint has shown (a lagging node's count is as of
 * an older block). An endpoint that once answers eth_blockNumber far above the real chain (a
 * proxy's bug, a node of another network with the same chain id) made that head one no node ever
 * reaches: those stages were held until the process restarted, and nobody was told. A head that
 * the endpoints advance past BEST_HEAD_UNREACHED_BLOCKS blocks of their own without reaching is
 * dropped (counted, and logged), and the stages run again.
 * Real anvil behind the lying proxy, Postgres and the KMS emulator.
 */
import { type Hex, parseTransaction, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BEST_HEAD_UNREACHED_BLOCKS } from "../chains/rpc.js";
import { getTxRequest } from "./requests.js";
import { waitFor } from "./testing/harness.js";
import { type LyingSignerTest, startLyingSignerTest } from "./testing/signerTest.js";

let t: LyingSignerTest;

beforeAll(async () => {
  t = await startLyingSignerTest(1);
});

afterAll(async () => {
  await t?.stop();
});

/** `custody_*` counter total in the test's registry (0 when it has no series). */
async function counted(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await t.ctx.common.metrics.registry.getSingleMetric(name)?.get();
  return (m?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + v.value, 0);
}

describe("an endpoint that once answers a head far above the chain", () => {
  it("holds the stall stage only until the endpoints pass it by the bound; then a lost payment is resent and confirms", async () => {
    const dest = "0x000000000000000000000000000000000000b0b0" as Hex;
    const account = await t.wallet();
    const signer = t.run(account, { settings: { stallResendMs: 300 } });
    try {
      await waitFor("the signer's passes", async () => t.proxy!.requests() > 10);
      // One eth_blockNumber answer a million blocks ahead, then the truth.
      const real = BigInt(await t.rpc<Hex>("eth_blockNumber"));
      let lied = false;
      t.proxy!.setMethodLie("eth_blockNumber", (answer) => {
        if (lied || !("result" in answer)) return answer as { result: unknown };
        lied = true;
        return { result: toHex(real + 1_000_000n) };
      });
      await waitFor("the lie told", async () => lied);
      t.proxy!.setMethodLie("eth_blockNumber", null);
      // Our node acknowledges the payment and loses it: only the stall stage sends it again.
      let dropped = 0;
      t.proxy!.setSendDrop((raw) => {
        if (dropped > 0 || parseTransaction(raw as Hex).to?.toLowerCase() !== dest) return false;
        dropped++;
        return true;
      });
      await t.withdraw("bogus-head", { from: account.address, to: dest, value: 5n });
      await waitFor("the payment sent and lost", async () => dropped > 0);
      // While the endpoints have not passed the bound, the head stays the best seen: nothing is resent.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await t.client.getBalance({ address: dest })).toBe(0n);
      expect(await counted("custody_signer_stall_heals_total", { action: "resend" })).toBe(0);
      expect(await counted("custody_rpc_best_head_dropped_total")).toBe(0);
      // The chain moves on past the bound and never reaches the head the lie named.
      await t.rpc("anvil_mine", [toHex(BEST_HEAD_UNREACHED_BLOCKS + 2)]);
      await waitFor(
        "the payment resent and confirmed",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "bogus-head");
          if (r?.status !== "confirmed") await t.rpc("evm_mine");
          return r?.status === "confirmed";
        },
        { timeoutMs: 20_000 },
      );
      expect(await t.client.getBalance({ address: dest })).toBe(5n);
      expect(await counted("custody_signer_stall_heals_total", { action: "resend" })).toBe(1);
      expect(
        await counted("custody_rpc_best_head_dropped_total", { chain_id: String(t.chain.chainId) }),
      ).toBe(1);
    } finally {
      t.proxy!.setMethodLie("eth_blockNumber", null);
      t.proxy!.setSendDrop(null);
      await signer.stop();
    }
  });
});
