/**
 * Cancels are jobs derived from Postgres and the chain each pass, bounded, never a loop:
 * - one KMS failure while signing the cancel of a nonce whose bytes no node will include heals by
 *   itself (backoff, retry): the cancel mines, the request fails CANCELLED once final, and the next
 *   request on the wallet confirms, with no operator action;
 * - a cancel every node refuses is retried a bounded number of times, then the request is
 *   `needs_review` with an alert, and `stop()` returns promptly.
 */
import { type Hex, parseEther, parseTransaction } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import { within } from "../ops/testing/wait.js";
import { createKmsClient, type KmsAccount } from "./kmsAccount.js";
import { waitFor } from "./testing/harness.js";
import { type KmsProxy, startKmsProxy } from "./testing/kmsProxy.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, SMALL_BLOCKS, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let kmsProxy: KmsProxy;
let rpcProxy: RpcProxy;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      anvilArgs: SMALL_BLOCKS,
      config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3 },
    },
    proxy: startRpcProxy,
  });
  rpcProxy = t.proxy!;
  kmsProxy = await startKmsProxy(t.kmsUrl);
});

afterAll(async () => {
  await kmsProxy?.close();
  await t?.stop();
});

/** A funded wallet whose KMS calls go through the fault proxy. */
async function proxiedWallet(): Promise<{ account: KmsAccount; close: () => void }> {
  const kms = createKmsClient({ region: "us-east-1", endpoint: kmsProxy.url });
  const account = await t.wallet(parseEther("10"), kms);
  return { account, close: () => kms.destroy() };
}

async function attempts(requestId: string) {
  const { rows } = await t.ctx.db.pool.query(
    "SELECT purpose, status, last_error_class FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
    [requestId],
  );
  return rows as { purpose: string; status: string; last_error_class: string | null }[];
}

function run(
  account: KmsAccount,
  chain: ChainConfig = t.ctx.config.chains[0]!,
  shutdownTimeoutMs = 5_000,
) {
  return t.run(account, {
    chain,
    shutdownTimeoutMs,
    settings: { cancelBackoffMs: 300, maxCancelBackoffMs: 2_000, maxCancelAttempts: 3 },
  });
}

describe("cancels", () => {
  it("heals a KMS failure while signing a cancel, without an operator", async () => {
    const wallet = await proxiedWallet();
    // Sign #1 is the dead request's bytes, #2 the cancel of its nonce: that one fails.
    const signsBefore = kmsProxy.calls("Sign");
    kmsProxy.failNth("Sign", signsBefore + 2);
    const signer = run(wallet.account);
    try {
      // More gas than a block holds: no node will ever include these bytes.
      await t.withdraw("kms-dead", { from: wallet.account.address, gasLimit: 2_000_000n });
      await waitFor("a cancel in flight", async () =>
        (await attempts("kms-dead")).some((a) => a.purpose === "cancel"),
      );
      const log = await t.ctx.db.pool.query(
        "SELECT event FROM custody.tx_request_events WHERE request_id = 'kms-dead' ORDER BY id",
      );
      expect(log.rows).toEqual([{ event: "cancel_signed" }]);
      // The failed try, then the one that worked (after a backoff, no operator).
      expect(kmsProxy.failed()).toBe(1);
      expect(kmsProxy.calls("Sign") - signsBefore).toBe(3);
      await t.withdraw("kms-next", { from: wallet.account.address });
      const failed = await waitFor("the dead request failed as cancelled", async () => {
        const o = await t.outcome("kms-dead");
        // Mine so the cancel's block becomes final.
        if (o.status === "broadcast") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(failed).toMatchObject({ errorCode: "CANCELLED", cancelled: true, nonce: 0n });
      expect(await attempts("kms-dead")).toEqual([
        { purpose: "send", status: "rejected", last_error_class: "gas_limit_too_high" },
        { purpose: "cancel", status: "mined", last_error_class: null },
      ]);
      const next = await waitFor("the next request confirmed", async () => {
        const o = await t.outcome("kms-next");
        if (o.status === "broadcast") await t.rpc("evm_mine");
        return o.status === "confirmed" || o.status === "finalized" ? o : undefined;
      });
      expect(next.nonce).toBe(1n);
      expect(await t.client.getTransactionCount({ address: wallet.account.address })).toBe(2);
    } finally {
      await signer.stop();
      wallet.close();
    }
  });

  it("stops retrying an unsendable cancel: needs_review, an alert, and stop() returns", async () => {
    const wallet = await proxiedWallet();
    const from = wallet.account.address.toLowerCase();
    // Every node refuses this wallet's cancels (0-value transfers to itself) for good.
    rpcProxy.setIntercept((call) => {
      if (call.method !== "eth_sendRawTransaction") return undefined;
      const tx = parseTransaction((call.params as Hex[])[0]!);
      if (tx.to?.toLowerCase() === from && (tx.value ?? 0n) === 0n)
        return { error: { code: -32000, message: "intrinsic gas too low" } };
      return undefined;
    });
    const chain = t.chain; // through rpcProxy
    // A forced stop only after 120 s: stop() must return because the loop ends, not because it
    // was given up on (checked below with a 60 s deadline, generous for a loaded machine).
    const signer = run(wallet.account, chain, 120_000);
    let stopped = false;
    try {
      await t.withdraw("stuck-dead", { from: wallet.account.address, gasLimit: 2_000_000n });
      await t.withdraw("stuck-next", { from: wallet.account.address });
      const review = await waitFor(
        "needs_review",
        async () => {
          const o = await t.outcome("stuck-dead");
          return o.status === "needs_review" ? o : undefined;
        },
        { timeoutMs: 30_000 },
      );
      expect(review.reviewReason).toBe("CANCEL_UNSENDABLE");
      const list = await attempts("stuck-dead");
      expect(list[0]).toMatchObject({ purpose: "send", status: "rejected" });
      expect(list.slice(1)).toEqual(
        Array.from({ length: 3 }, () => ({
          purpose: "cancel",
          status: "rejected",
          last_error_class: "intrinsic_gas_too_low",
        })),
      );
      const alerts = await t.ctx.common.metrics.registry.getSingleMetricAsString(
        "custody_signer_alerts_total",
      );
      expect(alerts).toMatch(
        new RegExp(
          `(alert="cancel_unsendable".*wallet="${from}"|wallet="${from}".*alert="cancel_unsendable").*\\} [1-9]`,
        ),
      );
      // Bounded: the signer keeps passing (counted: 40 more chain reads of its tick) for at least
      // two maximum backoff periods (2 s each, when a 4th cancel would have been due), and there
      // are still exactly 3 cancels (the cap).
      const passesBefore = rpcProxy.calls("eth_blockNumber");
      const since = Date.now();
      await waitFor(
        "40 more signer passes over two maximum cancel backoffs",
        async () =>
          rpcProxy.calls("eth_blockNumber") >= passesBefore + 40 && Date.now() - since >= 4_000,
        { timeoutMs: 120_000 },
      );
      expect(await attempts("stuck-dead")).toHaveLength(4);
      // The later request waits behind the unusable nonce; it was signed, never failed.
      expect((await t.outcome("stuck-next")).status).toBe("broadcast");
      await within("signer.stop() to return (forced only after 120 s)", signer.stop(), 60_000);
      stopped = true;
    } finally {
      rpcProxy.setIntercept(undefined);
      if (!stopped) await signer.stop();
      wallet.close();
    }
  });
});
