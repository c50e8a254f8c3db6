/**
 * The fee booked for a mined send on an OP-stack chain since Isthmus: gas x effective gas price,
 * the L1 data fee the receipt carries (`l1Fee`), and the operator fee, which the receipt does NOT
 * carry (only its parameters `operatorFeeScalar` / `operatorFeeConstant`): it is the chain's
 * `GasPriceOracle.getOperatorFee(gasUsed)` at the receipt's block. Booked without it, `fees:gas`
 * is short of what left the hot wallet and reconciliation shows a break on every send.
 *
 * anvil charges no L1 or operator fee and its receipts carry neither field (`--optimism` neither),
 * so, as on a real OP-stack node, the proxy's receipts carry `l1Fee` and the operator fee
 * parameters, and the oracle predeploy is a stand-in (testing/gasPriceOracle.ts) put in place with
 * anvil_setCode: the test holds what the booking reads from the chain. On Base or Optimism the
 * node's receipts carry these fields and the oracle is the chain's own: the same reads, and the
 * wallet's balance drops by exactly the fee booked.
 */
import { type Hex, parseEther, toFunctionSelector } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLyingProxy } from "../chains/testing/lyingChain/index.js";
import { setPublishedFinalized } from "../indexers/testing/chain.js";
import { OP_GAS_PRICE_ORACLE } from "./gas.js";
import { gasPriceOracleRuntime } from "./testing/gasPriceOracle.js";
import { waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

const L1_FEE = 0x10n;
const SCALAR = 4n * 10n ** 12n;
const CONSTANT = parseEther("0.001");
const TO = "0x000000000000000000000000000000000000e904" as Hex;
const SETTINGS = { receiptGraceMs: 250, fullSearchIntervalMs: 250, unpaidRetryMs: 300 };

let t: SignerTest<RpcProxy>;
let proxy: RpcProxy;

beforeAll(async () => {
  t = await startSignerTest({
    chain: {
      config: { confirmations: { kind: "blocks", blocks: 2 }, l1DataFee: "op-stack" },
    },
    proxy: startRpcProxy,
  });
  proxy = t.proxy!;
  // An OP-stack node's receipts (Isthmus): the L1 fee, and the operator fee's parameters only.
  proxy.setRewrite((call, result) =>
    (call.method === "eth_getTransactionReceipt" || call.method === "eth_getBlockReceipts") &&
    result !== null
      ? Array.isArray(result)
        ? result.map(opStackReceipt)
        : opStackReceipt(result)
      : result,
  );
});

afterAll(async () => {
  await t?.stop();
});

/** Mines until `id` is confirmed; its fee must be gas, the L1 fee and the oracle's operator fee. */
async function bookedWithOperatorFee(id: string): Promise<void> {
  const done = await t.confirmedWith(id);
  const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
  const operatorFee = (receipt.gasUsed * SCALAR) / 10n ** 6n + CONSTANT;
  expect(done.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice + L1_FEE + operatorFee);
}

function opStackReceipt(r: unknown): unknown {
  return {
    ...(r as object),
    l1Fee: `0x${L1_FEE.toString(16)}`,
    operatorFeeScalar: `0x${SCALAR.toString(16)}`,
    operatorFeeConstant: `0x${CONSTANT.toString(16)}`,
  };
}

describe("the fee booked for a send on an OP-stack chain", () => {
  it("adds the operator fee the oracle asks at the receipt's block to gas and the L1 fee", async () => {
    // old code: expected 14089359375016n to be 1014173359375016n (gas + l1Fee only: the
    // operator fee, ~0.001 ETH here, never booked to fees:gas).
    await t.rpc("anvil_setCode", [
      OP_GAS_PRICE_ORACLE,
      gasPriceOracleRuntime({ l1Fee: L1_FEE, operatorFee: { scalar: SCALAR, constant: CONSTANT } }),
    ]);
    const signer = t.run(t.account, { settings: SETTINGS });
    try {
      await t.withdraw("opfee-booked", { to: TO, value: parseEther("0.001") });
      await bookedWithOperatorFee("opfee-booked");
    } finally {
      await signer.stop();
    }
  });

  it("books no operator fee where the oracle has no getOperatorFee (before Isthmus: reverts without data)", async () => {
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, gasPriceOracleRuntime({ l1Fee: L1_FEE })]);
    const signer = t.run(t.account, { settings: SETTINGS });
    try {
      await t.withdraw("opfee-pre-isthmus", { to: TO, value: parseEther("0.001") });
      const done = await t.confirmedWith("opfee-pre-isthmus");
      const receipt = await t.client.getTransactionReceipt({ hash: done.txHash! });
      expect(done.fee).toBe(receipt.gasUsed * receipt.effectiveGasPrice + L1_FEE);
    } finally {
      await signer.stop();
    }
  });

  it("a first endpoint that is syncing holds neither the send nor its booking: the fees are read at their blocks from a node that has them", async () => {
    // old code: timed out waiting for opfee-syncing confirmed (the intake's L1 and operator fees
    // read at the syncing node's head, block 0, where the oracle has no code: nothing signed;
    // and a receipt's operator fee asked of that node, which answers "header not found").
    await t.rpc("anvil_setCode", [
      OP_GAS_PRICE_ORACLE,
      gasPriceOracleRuntime({ l1Fee: L1_FEE, operatorFee: { scalar: SCALAR, constant: CONSTANT } }),
    ]);
    // Our final block published (as the indexer does): the signer then asks every endpoint its
    // head, and takes counts only from a node that shows that block.
    const final = await t.client.getBlock({ blockTag: "latest" });
    await setPublishedFinalized(t.ctx.db.pool, t.chain.chainId, final);
    const syncing = await startLyingProxy(proxy.url);
    syncing.setLag("syncing");
    const direct = t.chain;
    t.chain = { ...direct, rpcUrls: [syncing.url, proxy.url] };
    const signer = t.run(t.account, { settings: SETTINGS });
    try {
      await t.withdraw("opfee-syncing", { to: TO, value: parseEther("0.001") });
      await bookedWithOperatorFee("opfee-syncing");
    } finally {
      await signer.stop();
      t.chain = direct;
      await syncing.close();
      await t.ctx.db.pool.query("DELETE FROM chain.checkpoints WHERE chain_id = $1", [
        t.chain.chainId,
      ]);
    }
  });

  it("an operator fee not told for one receipt holds that receipt only: the wallet's other sends are recorded and confirmed meanwhile", async () => {
    // old code: timed out waiting for opfee-told confirmed (one fee not told threw for the whole
    // round of receipts, and the tick's later stages, bumps and cancels, never ran).
    await t.rpc("anvil_setCode", [
      OP_GAS_PRICE_ORACLE,
      gasPriceOracleRuntime({ l1Fee: L1_FEE, operatorFee: { scalar: SCALAR, constant: CONSTANT } }),
    ]);
    // The oracle's answer for 21,000 gas (a plain transfer's receipt) fails, at any block, as at a
    // block no endpoint keeps state for; a transfer with one byte of data uses 21,016 and is told.
    // Intake's own reads ask for its gas limits (25,200 and more): told.
    const selector = toFunctionSelector("getOperatorFee(uint256)");
    const gas21000 = (21_000).toString(16).padStart(64, "0");
    proxy.setIntercept((call) => {
      const tx = (call.params?.[0] ?? {}) as { data?: string; input?: string };
      const data = tx.data ?? tx.input ?? "";
      return call.method === "eth_call" && data === `${selector}${gas21000}`
        ? { error: { code: -32000, message: "missing trie node" } }
        : undefined;
    });
    const signer = t.run(t.account, { settings: SETTINGS });
    try {
      await t.withdraw("opfee-held", { to: TO, value: parseEther("0.001") });
      await t.withdraw("opfee-told", { to: TO, value: parseEther("0.001"), data: "0x01" });
      await bookedWithOperatorFee("opfee-told");
      const held = await t.outcome("opfee-held");
      expect(held.fee).toBeNull();
      expect(held.status).toBe("broadcast");
      expect(await t.client.getTransactionCount({ address: t.account.address })).toBeGreaterThan(
        Number(held.nonce!),
      );
      proxy.setIntercept(undefined);
      await bookedWithOperatorFee("opfee-held");
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
    }
  });

  it("a node error on getOperatorFee books nothing (never a fee without it): the send is recorded mined once the oracle answers", async () => {
    // old code: expected 7239673875016n to be null (booked at once as gas + l1Fee, the operator
    // fee never asked).
    await t.rpc("anvil_setCode", [
      OP_GAS_PRICE_ORACLE,
      gasPriceOracleRuntime({ l1Fee: L1_FEE, operatorFee: { scalar: SCALAR, constant: CONSTANT } }),
    ]);
    // Sent, not mined yet: the oracle's read fails before the tracker sees the receipt.
    await t.rpc("evm_setAutomine", [false]);
    const signer = t.run(t.account, { settings: SETTINGS });
    const selector = toFunctionSelector("getOperatorFee(uint256)");
    try {
      await t.withdraw("opfee-unknown", { to: TO, value: parseEther("0.001") });
      await waitFor("sent", async () => {
        const { rows } = await t.ctx.db.pool.query(
          "SELECT 1 FROM custody.tx_requests WHERE id = $1 AND status = 'broadcast'",
          ["opfee-unknown"],
        );
        return rows.length > 0;
      });
      // The signer has read its fees: from now on the oracle's operator fee read fails.
      proxy.setIntercept((call) => {
        const tx = (call.params?.[0] ?? {}) as { data?: string; input?: string };
        return call.method === "eth_call" && (tx.data ?? tx.input ?? "").startsWith(selector)
          ? { error: { code: -32603, message: "internal error" } }
          : undefined;
      });
      for (let i = 0; i < 4; i++) {
        await t.rpc("evm_mine");
        await new Promise((r) => setTimeout(r, 400));
      }
      const waiting = await t.outcome("opfee-unknown");
      expect(waiting.fee).toBeNull();
      expect(waiting.status).not.toBe("failed");
      proxy.setIntercept(undefined);
      await bookedWithOperatorFee("opfee-unknown");
    } finally {
      proxy.setIntercept(undefined);
      await signer.stop();
      await t.rpc("evm_setAutomine", [true]);
    }
  });
});
