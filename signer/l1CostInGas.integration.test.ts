/**
 * A chain whose gas carries the L1 cost (`l1CostInGas`, Arbitrum): the gas a send needs rises with
 * the L1 price, and a node refuses bytes whose limit no longer covers it "intrinsic gas too low".
 * Simulated by a proxy in front of anvil that adds the current `l1Gas` to every gas estimate and
 * refuses a payment whose limit is below 21,000 + `l1Gas`, as Arbitrum's node does:
 * - the L1 price rises between a withdrawal's estimate and its send: the signer re-estimates and
 *   re-signs it at the same nonce, and it confirms (elsewhere it would be cancelled and fail);
 * - the L1 price rises past every re-estimate: after MAX_REGAS of them the refusal is the class's
 *   usual response (its nonce cancelled, the request failed once the cancel is final): bounded;
 * - a caller's own gas limit is never replaced; and a request whose limit the signer estimated can
 *   be repeated after it was signed (its stored limit is the estimate, not the caller's).
 */

import { setTimeout as sleep } from "node:timers/promises";
import { type Hex, parseEther, parseTransaction, toHex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MAX_REGAS } from "./broadcaster/regas.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;
/** The L1 cost of a transaction, in gas, now. */
let l1Gas = 0n;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      config: { confirmations: { kind: "blocks", blocks: 1 }, reorgWindow: 3, l1CostInGas: true },
    },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
  // Every estimate carries the L1 cost at the price of the moment.
  proxy.setRewrite((call, result) =>
    call.method === "eth_estimateGas" ? toHex(BigInt(result as Hex) + l1Gas) : result,
  );
});

afterEach(() => {
  proxy.setIntercept(undefined);
  l1Gas = 0n;
});

afterAll(async () => {
  await t?.stop();
});

/**
 * Refuse payments (value > 0) whose limit is below 21,000 + the L1 cost, after `before(tx)` (which
 * may move the price, or the wallet's balance, as the bytes arrive).
 */
function refuseShortGas(
  before: (tx: {
    gas: bigint;
    value: bigint;
    maxFeePerGas: bigint;
  }) => void | Promise<void> = () => {},
) {
  proxy.setIntercept(async (call) => {
    if (call.method !== "eth_sendRawTransaction") return undefined;
    const tx = parseTransaction((call.params as Hex[])[0]!);
    if ((tx.value ?? 0n) === 0n) return undefined;
    await before({ gas: tx.gas!, value: tx.value!, maxFeePerGas: tx.maxFeePerGas! });
    if (tx.gas! < 21_000n + l1Gas)
      return {
        error: {
          code: -32000,
          message: `intrinsic gas too low: gas ${tx.gas}, minimum needed ${21_000n + l1Gas}`,
        },
      };
    return undefined;
  });
}

async function attempts(requestId: string) {
  const { rows } = await t.ctx.db.pool.query<{
    purpose: string;
    status: string;
    last_error_class: string | null;
    gas_limit: bigint;
  }>(
    `SELECT purpose, status, last_error_class, gas_limit FROM custody.tx_attempts
      WHERE request_id = $1 ORDER BY id`,
    [requestId],
  );
  return rows;
}

async function regasCount(wallet: string): Promise<number> {
  const m = await t.ctx.common.metrics.registry
    .getSingleMetric("custody_signer_attempts_total")
    ?.get();
  return (
    m?.values.find((v) => v.labels.kind === "regas" && v.labels.wallet === wallet.toLowerCase())
      ?.value ?? 0
  );
}

describe("a chain whose gas carries the L1 cost", () => {
  it("re-estimates a withdrawal refused for gas after the L1 price rose, and it confirms", async () => {
    const wallet = await t.wallet(parseEther("10"));
    const signer = t.run(wallet);
    try {
      // The L1 price rises as the first bytes reach the node: their limit (21,000 + 20%) no
      // longer covers 21,000 + 15,000.
      refuseShortGas(() => {
        l1Gas = 15_000n;
      });
      await t.withdraw("rise-once", { from: wallet.address, value: parseEther("0.1") });
      const done = await t.confirmedWith("rise-once");
      expect(done).toMatchObject({ nonce: 0n, cancelled: false });
      expect(await attempts("rise-once")).toEqual([
        {
          purpose: "send",
          status: "rejected",
          last_error_class: "intrinsic_gas_too_low",
          gas_limit: 25_200n,
        },
        // (21,000 + 15,000) + 20%: the fresh estimate with the chain's margin.
        { purpose: "send", status: "mined", last_error_class: null, gas_limit: 43_200n },
      ]);
      expect(await regasCount(wallet.address)).toBe(1);
      // The same request again (an idempotent retry by its caller) after it was signed: its stored
      // limit is the signer's estimate, which the caller never gave, and that is no conflict.
      await t.withdraw("rise-once", { from: wallet.address, value: parseEther("0.1") });
    } finally {
      await signer.stop();
    }
  });

  it("re-estimates at most MAX_REGAS times, then cancels the nonce and fails the request", async () => {
    const wallet = await t.wallet(parseEther("10"));
    const signer = t.run(wallet);
    try {
      // The L1 price rises past each estimate before its bytes reach the node.
      refuseShortGas(({ gas }) => {
        l1Gas = gas;
      });
      await t.withdraw("rise-always", { from: wallet.address, value: parseEther("0.1") });
      const failed = await waitFor("the request failed as cancelled", async () => {
        const o = await t.outcome("rise-always");
        if (o.status === "broadcast") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(failed).toMatchObject({ errorCode: "CANCELLED", cancelled: true, nonce: 0n });
      const list = await attempts("rise-always");
      expect(list.map(({ gas_limit, ...a }) => a)).toEqual([
        ...Array.from({ length: MAX_REGAS + 1 }, () => ({
          purpose: "send",
          status: "rejected",
          last_error_class: "intrinsic_gas_too_low",
        })),
        { purpose: "cancel", status: "mined", last_error_class: null },
      ]);
      // Each re-estimate asked more gas than the bytes before it.
      const limits = list.filter((a) => a.purpose === "send").map((a) => a.gas_limit);
      for (let i = 1; i < limits.length; i++) expect(limits[i]).toBeGreaterThan(limits[i - 1]!);
      expect(await regasCount(wallet.address)).toBe(MAX_REGAS);
    } finally {
      await signer.stop();
    }
  });

  it("a pooled payment whose bumps are refused past its re-estimates is bumped once a bump interval, not every pass", async () => {
    const wallet = await t.wallet(parseEther("10"));
    // Mined only when the test mines: the first bytes wait in the node's pool, taken.
    await t.rpc("evm_setAutomine", [false]);
    const signer = t.run(wallet, { chain: { ...t.chain, bumpIntervalMs: 1_000 } });
    try {
      refuseShortGas();
      await t.withdraw("pooled", { from: wallet.address, value: parseEther("0.1") });
      await waitFor("sent", async () => (await t.outcome("pooled")).status === "broadcast");
      // From now on the L1 price outruns every send: each bump, each re-estimate is refused.
      refuseShortGas(({ gas }) => {
        l1Gas = gas;
      });
      const refused = async () =>
        (await attempts("pooled")).filter((a) => a.last_error_class === "intrinsic_gas_too_low")
          .length;
      await waitFor("the re-estimates ran out", async () => (await refused()) > MAX_REGAS, {
        timeoutMs: 30_000,
      });
      // old code: a new replacement signed and refused on every pass (dozens in 2.5 s).
      const before = (await attempts("pooled")).length;
      await sleep(2_500);
      expect((await attempts("pooled")).length - before).toBeLessThanOrEqual(3);
      // The price falls: the first bytes, still pooled, mine, and the request confirms by them.
      proxy.setIntercept(undefined);
      l1Gas = 0n;
      await t.rpc("evm_setAutomine", [true]);
      const done = await t.confirmedWith("pooled");
      const list = await attempts("pooled");
      expect(list[0]).toMatchObject({ purpose: "send", status: "mined", gas_limit: 25_200n });
      expect(done.cancelled).toBe(false);
    } finally {
      await t.rpc("evm_setAutomine", [true]);
      await signer.stop();
    }
  });

  it("holds a re-estimate the wallet cannot pay, alerting, and signs it once the wallet is funded", async () => {
    const wallet = await t.wallet(parseEther("10"));
    const signer = t.run(wallet);
    try {
      // As the bytes reach the node the L1 price rises, and the wallet is left with what they may
      // cost (value + limit x max fee) and 1 wei less than the fresh limit's extra gas at their
      // max fee: the re-estimate (43,200) is not covered, whatever its fee raise.
      refuseShortGas(async (tx) => {
        if (l1Gas !== 0n) return;
        l1Gas = 15_000n;
        const cost = tx.value + 43_200n * tx.maxFeePerGas - 1n;
        await t.rpc("anvil_setBalance", [wallet.address, toHex(cost)]);
      });
      await t.withdraw("short-wallet", { from: wallet.address, value: parseEther("0.1") });
      await waitFor("an insufficient_funds alert", async () =>
        (await t.alertCount("insufficient_funds", wallet.address)) > 0 ? true : undefined,
      );
      // Held, not cancelled: the refused bytes stay live, nothing re-signed, the request in flight.
      await sleep(500);
      expect(await attempts("short-wallet")).toEqual([
        {
          purpose: "send",
          status: "broadcast",
          last_error_class: "intrinsic_gas_too_low",
          gas_limit: 25_200n,
        },
      ]);
      expect((await t.outcome("short-wallet")).status).toBe("signing");
      await t.rpc("anvil_setBalance", [wallet.address, toHex(parseEther("10"))]);
      await t.confirmedWith("short-wallet");
      expect((await attempts("short-wallet")).map((a) => [a.status, a.gas_limit])).toEqual([
        ["rejected", 25_200n],
        ["mined", 43_200n],
      ]);
    } finally {
      await signer.stop();
    }
  });

  it("never replaces a caller's own gas limit: refused for gas, the nonce is cancelled", async () => {
    const wallet = await t.wallet(parseEther("10"));
    const signer = t.run(wallet);
    try {
      refuseShortGas(() => {
        l1Gas = 15_000n;
      });
      await t.withdraw("own-limit", {
        from: wallet.address,
        value: parseEther("0.1"),
        gasLimit: 30_000n,
      });
      const failed = await waitFor("the request failed as cancelled", async () => {
        const o = await t.outcome("own-limit");
        if (o.status === "broadcast") await t.rpc("evm_mine");
        return o.status === "failed" ? o : undefined;
      });
      expect(failed).toMatchObject({ errorCode: "CANCELLED", cancelled: true });
      expect(await attempts("own-limit")).toEqual([
        {
          purpose: "send",
          status: "rejected",
          last_error_class: "intrinsic_gas_too_low",
          gas_limit: 30_000n,
        },
        expect.objectContaining({ purpose: "cancel", status: "mined" }),
      ]);
      expect(await regasCount(wallet.address)).toBe(0);
      // Its repeat with the same limit is the same request; with another, a conflict.
      await t.withdraw("own-limit", {
        from: wallet.address,
        value: parseEther("0.1"),
        gasLimit: 30_000n,
      });
      await expect(
        t.withdraw("own-limit", { from: wallet.address, value: parseEther("0.1") }),
      ).rejects.toMatchObject({ code: "SIGNER_REQUEST_CONFLICT" });
    } finally {
      await signer.stop();
    }
  });
});
