/**
 * A watched sender's fee fact on an OP-stack chain since Isthmus: gas x effective gas price, the
 * receipt's L1 data fee (`l1Fee`) and the operator fee, which the receipt does not carry (only its
 * parameters `operatorFeeScalar` / `operatorFeeConstant`): `GasPriceOracle.getOperatorFee(gasUsed)`
 * at the receipt's block. It is the amount reconciliation pairs with the signer's `fees:gas`
 * booking (signer/opStackFeeBooked.integration.test.ts): without the operator fee on both, the hot
 * wallet's balance is short of the ledger's by it on every send.
 *
 * anvil charges neither fee and its receipts carry neither field: the proxy's receipts carry them
 * as an OP-stack node's do, and the oracle predeploy is a stand-in (anvil_setCode).
 */
import { type Hex, toFunctionSelector } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OP_GAS_PRICE_ORACLE } from "../chains/index.js";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import { gasPriceOracleRuntime } from "../signer/testing/gasPriceOracle.js";
import { canonicalFacts, freshAddress, sendAndMine, syncToHead, watch } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest, TEST_CHAIN_ID } from "./testing/indexerTest.js";

const L1_FEE = 0x10n;
const SCALAR = 4n * 10n ** 12n;
const CONSTANT = 10n ** 15n;
const TO = freshAddress(7);

let t: IndexerTest;
let proxy: FaultyProxy;

beforeAll(async () => {
  t = await startIndexerTest({ proxies: 1, config: { l1DataFee: "op-stack" } });
  proxy = t.proxies[0]!;
  await t.rpc("anvil_setCode", [
    OP_GAS_PRICE_ORACLE,
    gasPriceOracleRuntime({ l1Fee: L1_FEE, operatorFee: { scalar: SCALAR, constant: CONSTANT } }),
  ]);
  const opStack = (r: unknown) => ({
    ...(r as object),
    l1Fee: `0x${L1_FEE.toString(16)}`,
    operatorFeeScalar: `0x${SCALAR.toString(16)}`,
    operatorFeeConstant: `0x${CONSTANT.toString(16)}`,
  });
  const withFields = (real: { result?: unknown }) => ({
    result: Array.isArray(real.result)
      ? real.result.map(opStack)
      : real.result && opStack(real.result),
  });
  proxy.setMethodLie("eth_getBlockReceipts", withFields);
  proxy.setMethodLie("eth_getTransactionReceipt", withFields);
});

afterAll(async () => {
  await t?.stop();
});

/** The fee fact of `paid`, if stored. */
async function feeFact(paid: { transactionHash: Hex }) {
  return (await canonicalFacts(t.ctx.db.pool, TEST_CHAIN_ID)).find(
    (f) => f.tx_hash === paid.transactionHash.toLowerCase() && f.position === "fee",
  );
}

/** What the chain charged `paid`'s sender: gas, the L1 fee and the oracle's operator fee. */
function charged(paid: { gasUsed: Hex; effectiveGasPrice: Hex }): bigint {
  const gasUsed = BigInt(paid.gasUsed);
  return (
    gasUsed * BigInt(paid.effectiveGasPrice) + L1_FEE + (gasUsed * SCALAR) / 10n ** 6n + CONSTANT
  );
}

describe("a watched sender's fee fact on an OP-stack chain", () => {
  it("is gas + the L1 fee + the operator fee the oracle asks at the receipt's block", async () => {
    // old code: expected 42000000000016n to be 1042084000000016n (gas + l1Fee only).
    const sender = t.accounts[1]!.toLowerCase() as Hex;
    await watch(t.ctx.db.pool, TEST_CHAIN_ID, [{ address: sender }]);
    const ingestor = await t.ingestor();
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
    const paid = await sendAndMine(t.rpc, { from: sender, to: TO, value: 7n });
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
    expect(BigInt((await feeFact(paid))!.amount)).toBe(charged(paid));
    await ingestor.stop();
  });

  it("a node error on getOperatorFee stores nothing (never a fact without it) until the oracle answers", async () => {
    // old code: promise resolved "undefined" instead of rejecting (the fact stored at once,
    // without the operator fee).
    const sender = t.accounts[2]!.toLowerCase() as Hex;
    await watch(t.ctx.db.pool, TEST_CHAIN_ID, [{ address: sender }]);
    const ingestor = await t.ingestor();
    await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
    const selector = toFunctionSelector("getOperatorFee(uint256)");
    proxy.setMethodLie("eth_call", (real, params) => {
      const tx = (params[0] ?? {}) as { data?: string; input?: string };
      return (tx.data ?? tx.input ?? "").startsWith(selector)
        ? { error: { code: -32603, message: "internal error" } }
        : (real as { result: unknown });
    });
    try {
      const paid = await sendAndMine(t.rpc, { from: sender, to: TO, value: 7n });
      await expect(ingestor.syncOnce()).rejects.toThrow();
      expect(await feeFact(paid)).toBeUndefined();
      proxy.setMethodLie("eth_call", null);
      await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
      expect(BigInt((await feeFact(paid))!.amount)).toBe(charged(paid));
    } finally {
      proxy.setMethodLie("eth_call", null);
      await ingestor.stop();
    }
  });
});
