/**
 * Missing data is never evidence, in the receipt fields the fee is booked from. Through a proxy in
 * front of anvil that changes the receipts it answers (a node or proxy that drops fields it does
 * not know, or an old client):
 * - a receipt without `effectiveGasPrice` is not known from that endpoint: the request is never
 *   mined with a fee of 0; another endpoint's whole receipt is used, and with none the request
 *   waits (never `needs_review`: the receipt was seen) until a whole one comes.
 * - on a chain configured OP-stack, a receipt without `l1Fee` is as incomplete: the fee booked is
 *   gas plus the L1 data fee from the endpoint that sent it, never gas alone.
 * - a receipt without `status` is not a revert: read as one, a paid withdrawal would fail and its
 *   hold be released (a second payout); another endpoint's whole receipt is used.
 * - a receipt without `logs` is not a transaction without Transfers: read as one, a token payment
 *   would be recorded with no transfer position (never read again: its withdrawal held for ever);
 *   another endpoint's whole receipt is used. So is one with some of its logs: its bloom has bits
 *   no log it sent explains (a fee-on-transfer payment would lose its fee Transfer).
 * Every such receipt left aside is counted (custody_rpc_receipt_fee_field_missing_total), so a node
 * that always leaves a field out shows on a metric, not only in logs.
 */
import { encodeFunctionData, type Hex, pad, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { operatorFeePaid } from "../chains/index.js";
import {
  anvilRpc,
  call,
  DEV_ACCOUNT,
  deployTestToken,
  sendAndMine,
} from "../indexers/testing/chain.js";
import { OP_GAS_PRICE_ORACLE } from "./gas.js";
import { deployFeeToken, FEE_COLLECTOR, FEE_TOKEN } from "./sweeps/testing/feeToken.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

/** A GasPriceOracle stand-in (signer/gas.integration.test.ts): getL1Fee(bytes) = size x 1000 wei. */
const ORACLE_RUNTIME: Hex = "0x366103e80260005260206000f3";
/**
 * An incomplete receipt counts as none: another endpoint's is read once the grace is over (the
 * full search). A short grace: the cases below only wait it out before that search.
 */
const SETTINGS = { receiptGraceMs: 250, fullSearchIntervalMs: 250 };
/**
 * The stall case's: with a block mined every 300 ms, a full search every few blocks, so several run
 * on the final nonce within its 8 blocks (where needs_review would be decided).
 */
const STALL_SETTINGS = { receiptGraceMs: 1_000, fullSearchIntervalMs: 1_000 };

let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;
/** anvil itself, not through the proxy. */
let anvil: string;
/** A token the signer's wallet holds (deployed by anvil's first dev account). */
let token: Hex;

beforeAll(async () => {
  t = await startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 4 } },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
  anvil = t.ctx.config.chains[0]!.rpcUrls[0]!;
  await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, ORACLE_RUNTIME]);
  token = await deployTestToken(anvilRpc(anvil), t.account.address, 10n ** 21n);
});

afterAll(async () => {
  await t?.stop();
});

/** Receipts the signer left aside for a missing `field` so far (the shared counter). */
async function countedMissing(field: string): Promise<number> {
  const m = await t.ctx.common.metrics.registry
    .getSingleMetric("custody_rpc_receipt_fee_field_missing_total")
    ?.get();
  return (
    m?.values.find(
      (v) =>
        v.labels.chain_id === String(t.chain.chainId) &&
        v.labels.component === "signer" &&
        v.labels.field === field,
    )?.value ?? 0
  );
}

/** The proxy's receipts without `field`. */
function dropFromReceipts(field: string) {
  proxy.setRewrite((call, result) => {
    if (call.method !== "eth_getTransactionReceipt" || result === null) return result;
    const { [field]: _dropped, ...rest } = result as Record<string, unknown>;
    return rest;
  });
}

describe("incomplete receipts", () => {
  it("never books a fee of 0 from a receipt without effectiveGasPrice: another endpoint's receipt is used", async () => {
    dropFromReceipts("effectiveGasPrice");
    const counted = await countedMissing("effectiveGasPrice");
    const signer = t.run(t.account, {
      chain: { ...t.chain, rpcUrls: [proxy.url, anvil] },
      settings: SETTINGS,
    });
    try {
      await t.withdraw("egp-other-endpoint", {
        to: "0x000000000000000000000000000000000000e901",
        value: 1n,
      });
      const done = await t.confirmedWith("egp-other-endpoint", (o) => expect(o.fee).not.toBe(0n));
      const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
      expect(done.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice);
      expect(done.effectiveGasPrice).toBe(receipt.effectiveGasPrice);
      // The proxy's receipts were left aside, and counted.
      expect(await countedMissing("effectiveGasPrice")).toBeGreaterThan(counted);
    } finally {
      proxy.setRewrite(undefined);
      await signer.stop();
    }
  });

  it("never reads a receipt without status as reverted: another endpoint's receipt is used", async () => {
    dropFromReceipts("status");
    const counted = await countedMissing("status");
    const signer = t.run(t.account, {
      chain: { ...t.chain, rpcUrls: [proxy.url, anvil] },
      settings: SETTINGS,
    });
    try {
      await t.withdraw("status-other-endpoint", {
        to: "0x000000000000000000000000000000000000e904",
        value: 1n,
      });
      const done = await t.confirmedWith("status-other-endpoint", (o) =>
        expect(o.receiptSuccess).not.toBe(false),
      );
      expect(done.receiptSuccess).toBe(true);
      expect(await countedMissing("status")).toBeGreaterThan(counted);
    } finally {
      proxy.setRewrite(undefined);
      await signer.stop();
    }
  });

  it.each([
    ["without logs", "logs-dropped", () => dropFromReceipts("logs")],
    [
      "with its logs emptied (its bloom kept)",
      "logs-emptied",
      () =>
        proxy.setRewrite((call, result) =>
          call.method === "eth_getTransactionReceipt" && result !== null
            ? { ...(result as object), logs: [] }
            : result,
        ),
    ],
  ] as const)(
    "never reads a receipt %s as a payment without its Transfer: another endpoint's receipt is used",
    async (_name, id, lie) => {
      lie();
      const counted = await countedMissing("logs");
      const signer = t.run(t.account, {
        chain: { ...t.chain, rpcUrls: [proxy.url, anvil] },
        settings: SETTINGS,
      });
      try {
        await t.withdraw(id, {
          to: token,
          value: 0n,
          data: call("TestToken", "transfer", ["0x000000000000000000000000000000000000e905", 5n]),
        });
        const done = await t.confirmedWith(id, (o) => expect(o.transferPosition).not.toBeNull());
        const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
        const log = receipt.logs.find((l) => l.address.toLowerCase() === token.toLowerCase())!;
        expect(done).toMatchObject({
          transferPosition: "transfer:0",
          transferLogIndex: log.logIndex,
        });
        expect(await countedMissing("logs")).toBeGreaterThan(counted);
      } finally {
        proxy.setRewrite(undefined);
        await signer.stop();
      }
    },
  );

  it("never reads a receipt cut partway as the whole: a fee-on-transfer payment keeps its fee Transfer", async () => {
    const abi = await deployFeeToken(anvilRpc(anvil));
    await sendAndMine(anvilRpc(anvil), {
      from: DEV_ACCOUNT,
      to: FEE_TOKEN,
      data: encodeFunctionData({ abi, functionName: "mint", args: [t.account.address, 10n ** 6n] }),
    });
    // The proxy sends the recipient's Transfer and leaves out the collector's (its bloom kept).
    const collector = pad(FEE_COLLECTOR.toLowerCase() as Hex).toLowerCase();
    proxy.setRewrite((call, result) => {
      if (call.method !== "eth_getTransactionReceipt" || result === null) return result;
      const r = result as { logs: { topics: string[] }[] };
      return { ...r, logs: r.logs.filter((l) => l.topics[2]?.toLowerCase() !== collector) };
    });
    const counted = await countedMissing("logs");
    const signer = t.run(t.account, {
      chain: { ...t.chain, rpcUrls: [proxy.url, anvil] },
      settings: SETTINGS,
    });
    try {
      await t.withdraw("logs-cut", {
        to: FEE_TOKEN,
        value: 0n,
        data: encodeFunctionData({ abi, functionName: "transfer", args: [DEV_ACCOUNT, 1_000n] }),
      });
      const done = await t.confirmedWith("logs-cut", (o) =>
        expect(o.feeOnTransfer?.fees).not.toEqual([]),
      );
      expect(done.feeOnTransfer).toMatchObject({
        received: { position: "transfer:0", amount: 990n },
        fees: [{ position: "transfer:1", amount: 10n }],
      });
      expect(await countedMissing("logs")).toBeGreaterThan(counted);
    } finally {
      proxy.setRewrite(undefined);
      await signer.stop();
    }
  });

  it("waits while its only endpoint sends receipts without effectiveGasPrice, never needs_review, then books the fee", async () => {
    dropFromReceipts("effectiveGasPrice");
    const counted = await countedMissing("effectiveGasPrice");
    const signer = t.run(t.account, { settings: STALL_SETTINGS });
    const seen = new Set<string>();
    try {
      await t.withdraw("egp-only-endpoint", {
        to: "0x000000000000000000000000000000000000e902",
        value: 1n,
      });
      // The nonce used at a final block (8 blocks on: finality is 4) and many full searches later
      // (progress, not time).
      const asked = proxy.calls("eth_getTransactionReceipt");
      let blocksSinceUsed = 0;
      await waitFor(
        "the nonce final and 15 receipt answers without effectiveGasPrice",
        async () => {
          const o = await t.outcome("egp-only-endpoint");
          seen.add(o.status);
          expect(o.fee).toBeNull();
          const count = await t.rpc<Hex>("eth_getTransactionCount", [t.account.address, "latest"]);
          if (o.nonce !== null && BigInt(count) > o.nonce) blocksSinceUsed += 1;
          await t.rpc("evm_mine");
          return blocksSinceUsed >= 8 && proxy.calls("eth_getTransactionReceipt") >= asked + 15;
        },
        { timeoutMs: 90_000, everyMs: 300 },
      );
      expect(seen).not.toContain("mined");
      expect(seen).not.toContain("needs_review");
      // The stall is on a metric: every receipt the node sent was left aside and counted.
      expect(await countedMissing("effectiveGasPrice")).toBeGreaterThan(counted);
      expect(await countedMissing("l1Fee")).toBe(0);
      proxy.setRewrite(undefined);
      const done = await t.confirmedWith("egp-only-endpoint", (o) => expect(o.fee).not.toBe(0n));
      const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
      expect(done.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice);
    } finally {
      proxy.setRewrite(undefined);
      await signer.stop();
    }
  });

  it("on an OP-stack chain, books gas plus the l1Fee, never gas alone from a receipt without l1Fee", async () => {
    // anvil's receipts have no l1Fee; the proxy's carry one (an OP-stack node's).
    const l1Fee = 0x10n;
    proxy.setRewrite((call, result) =>
      call.method === "eth_getTransactionReceipt" && result !== null
        ? { ...(result as object), l1Fee: `0x${l1Fee.toString(16)}` }
        : result,
    );
    const counted = await countedMissing("l1Fee");
    const signer = t.run(t.account, {
      chain: { ...t.chain, l1DataFee: "op-stack", rpcUrls: [anvil, proxy.url] },
      settings: SETTINGS,
    });
    try {
      await t.withdraw("l1fee-other-endpoint", {
        to: "0x000000000000000000000000000000000000e903",
        value: parseEther("0.001"),
      });
      const done = await t.confirmedWith("l1fee-other-endpoint", (o) =>
        expect(o.fee! > o.gasUsed! * o.effectiveGasPrice!).toBe(true),
      );
      const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
      // This stand-in answers every call, getOperatorFee too (36 bytes of calldata: 36,000 wei):
      // the operator fee the chain asks at the block is booked with it (opStackFeeBooked).
      const operatorFee = await operatorFeePaid(t.client, { l1DataFee: "op-stack" }, receipt);
      expect(operatorFee).toBe(36_000n);
      expect(done.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice + l1Fee + operatorFee);
      // anvil's receipts, without l1Fee, were left aside and counted.
      expect(await countedMissing("l1Fee")).toBeGreaterThan(counted);
    } finally {
      proxy.setRewrite(undefined);
      await signer.stop();
    }
  });
});
