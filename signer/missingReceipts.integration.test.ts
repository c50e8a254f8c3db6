/**
 * Missing data is never evidence. Through a proxy in front of anvil:
 * - receipts are null for 60 s while the chain moves on (a pruned, lagging or load-balanced
 *   provider): the request is `receipt_unknown` (then `needs_review` once its nonce is used at a
 *   final block) and never `failed`; when receipts come back it ends confirmed, then finalized.
 * - a node refuses bytes that another backend accepted and mined: the refused attempt is still
 *   searched, found mined, and the request confirms (no cancel can take the nonce from it).
 */
import { type Hex, keccak256, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 4 } },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
});

afterAll(async () => {
  await t?.stop();
});

function run() {
  return t.run(t.account, { settings: { receiptGraceMs: 1_000, fullSearchIntervalMs: 1_000 } });
}

describe("missing receipts", () => {
  it("never fails a request whose receipts are null for 60 s; it ends confirmed", async () => {
    const dest = "0x000000000000000000000000000000000000beef" as Hex;
    let hiding = true;
    let nullReceipts = 0;
    proxy.setIntercept((call) => {
      if (!hiding || call.method !== "eth_getTransactionReceipt") return undefined;
      nullReceipts += 1;
      return { result: null };
    });
    const signer = run();
    const seen = new Set<string>();
    try {
      await t.withdraw("hidden", { to: dest, value: parseEther("1") });
      // Receipts stay hidden for at least 60 s (the scenario, a floor, not a budget) AND until the
      // signer has reached needs_review and then asked for the receipt 20 more times (progress, so
      // a loaded machine only makes this slower, never wrong). The chain moves on meanwhile.
      const hiddenSince = Date.now();
      let blocksMined = 0;
      let nullsAtReview: number | undefined;
      await waitFor(
        "60 s of hidden receipts, needs_review, then 20 more null receipt answers",
        async () => {
          const o = await t.outcome("hidden");
          seen.add(o.status);
          expect(o.status).not.toBe("failed");
          await t.rpc("evm_mine");
          blocksMined += 1;
          if (o.status === "needs_review" && nullsAtReview === undefined)
            nullsAtReview = nullReceipts;
          return (
            Date.now() - hiddenSince >= 60_000 &&
            nullsAtReview !== undefined &&
            nullReceipts >= nullsAtReview + 20
          );
        },
        { timeoutMs: 240_000, everyMs: 500 },
      );
      expect(blocksMined).toBeGreaterThan(10);
      const during = await t.outcome("hidden");
      expect(during.status).toBe("needs_review");
      expect(during.reviewReason).toBe("NONCE_CONSUMED_NO_KNOWN_ATTEMPT");
      expect(seen).not.toContain("failed");
      hiding = false;
      const done = await waitFor(
        "confirmed once receipts are back",
        async () => {
          const o = await t.outcome("hidden");
          seen.add(o.status);
          if (o.status === "broadcast" && o.blockNumber !== null) await t.rpc("evm_mine");
          return o.status === "confirmed" || o.status === "finalized" ? o : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(seen).not.toContain("failed");
      const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
      expect(done.blockHash).toBe(receipt.blockHash);
      expect(done.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice);
      expect(await t.client.getBalance({ address: dest })).toBe(parseEther("1"));
      const events = await t.ctx.db.pool.query(
        "SELECT to_status, event, reason FROM custody.tx_request_events WHERE request_id = 'hidden' ORDER BY id",
      );
      expect(events.rows).toEqual([
        { to_status: "receipt_unknown", event: "receipt_unknown", reason: null },
        {
          to_status: "needs_review",
          event: "needs_review",
          reason: "NONCE_CONSUMED_NO_KNOWN_ATTEMPT",
        },
        { to_status: "mined", event: "receipt_found", reason: null },
      ]);
      const alerts = await t.ctx.common.metrics.registry.getSingleMetricAsString(
        "custody_signer_alerts_total",
      );
      expect(alerts).toMatch(/alert="needs_review".*\} [1-9]/);
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  }, 360_000);

  it("finds a mined attempt that a node refused, and never cancels its nonce", async () => {
    const dest = "0x000000000000000000000000000000000000cafe" as Hex;
    await t.rpc("anvil_setBalance", [t.account.address, toHex(parseEther("10"))]);
    const refused = new Set<Hex>();
    // The node answers "intrinsic gas too low" (a refusal for good) but its other backend took
    // the bytes: they reach anvil and mine, and only then does the refusal reach the signer. anvil
    // mines a block a moment after it answers a send (up to ~90 ms on a loaded machine), so a
    // refusal sent at once raced the signer's cancel for the nonce.
    // old code (bytes passed on without waiting for them to mine; here 1 s late): timed out
    // waiting for confirmed (the signer's cancel took the nonce first)
    proxy.setIntercept(async (call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const raw = (call.params as Hex[])[0]!;
      if (refused.size > 0) return undefined;
      refused.add(keccak256(raw));
      const hash = await t.client.sendRawTransaction({ serializedTransaction: raw });
      await t.client.waitForTransactionReceipt({ hash, pollingInterval: 20 });
      return { error: { code: -32000, message: "intrinsic gas too low" } };
    });
    const signer = run();
    try {
      await t.withdraw("refused-but-mined", { to: dest, value: 42n });
      const done = await waitFor("confirmed", async () => {
        const o = await t.outcome("refused-but-mined");
        if (o.status === "broadcast" && o.blockNumber !== null) await t.rpc("evm_mine");
        return o.status === "confirmed" ? o : undefined;
      });
      expect(refused.has(done.txHash!)).toBe(true);
      expect(done.cancelled).toBe(false);
      expect(await t.client.getBalance({ address: dest })).toBe(42n);
      const { rows } = await t.ctx.db.pool.query(
        "SELECT purpose, status FROM custody.tx_attempts WHERE request_id = 'refused-but-mined' ORDER BY id",
      );
      // The refused bytes mined; a cancel placed meanwhile lost the race for the nonce.
      expect(rows[0]).toEqual({ purpose: "send", status: "mined" });
      expect(rows.slice(1).every((r) => r.purpose === "cancel" && r.status !== "mined")).toBe(true);
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });
});
