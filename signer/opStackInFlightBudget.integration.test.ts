/**
 * The intake budget on an OP-stack chain (Optimism, Base), on anvil with automine off: every
 * transaction also pays an L1 data fee outside gas (GasPriceOracle `getL1Fee`), taken from the
 * wallet when it is included. A send in flight will take its value, its gas AND its L1 fee; a new
 * withdrawal that fits only if the sends ahead of it pay no L1 fee must take no nonce. Signed, the
 * node refuses it (or drops it once those mine) for insufficient funds with its nonce taken, and
 * every later send, the refilling sweep among them, waits behind it.
 *
 * anvil charges no L1 fee itself (`--network optimism` neither: its receipts carry no l1Fee), so
 * the GasPriceOracle predeploy is a stand-in whose fee is large next to the balance, and the test
 * holds what intake decides, not what the node would refuse.
 */
import { type Hex, parseEther, toFunctionSelector } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { estimateL1DataFee, OP_GAS_PRICE_ORACLE, operatorFees } from "./gas.js";
import { getTxRequest } from "./requests.js";
import { gasPriceOracleRuntime } from "./testing/gasPriceOracle.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type RpcProxy, startRpcProxy } from "./testing/rpcProxy.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

/** A GasPriceOracle stand-in: getL1Fee(bytes) returns calldata size x `weiPerByte` (its L1 price). */
const oracleRuntime = (weiPerByte: bigint): Hex =>
  `0x367f${weiPerByte.toString(16).padStart(64, "0")}0260005260206000f3`;
/** 10^15 wei a calldata byte: ~0.2 ETH a send. */
const ORACLE_RUNTIME = oracleRuntime(10n ** 15n);

let t: SignerTest<RpcProxy>;

beforeAll(async () => {
  t = await startSignerTest({
    proxy: startRpcProxy,
    chain: {
      config: {
        bumpIntervalMs: 60_000,
        confirmations: { kind: "blocks", blocks: 1 },
        l1DataFee: "op-stack",
      },
    },
  });
  await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, ORACLE_RUNTIME]);
  await t.rpc("evm_setAutomine", [false]);
});

afterAll(async () => {
  await t?.stop();
});

/** Waits until the withdrawal `id` is sent (its request `broadcast`). */
async function sent(id: string): Promise<void> {
  await waitFor(
    "first sent",
    async () => (await getTxRequest(t.ctx.db.pool, id))?.status === "broadcast",
  );
}

/**
 * The withdrawal `id` from `wallet`, behind one send in flight it cannot pay after: it waits
 * `pending` without a nonce (an insufficient_funds alert raised); once that send mined, it fits
 * and is signed at the next nonce.
 */
async function waitsThenSignedAfterTheFirstMined(id: string, wallet: Hex): Promise<void> {
  await new Promise((r) => setTimeout(r, 1_500));
  const waiting = (await getTxRequest(t.ctx.db.pool, id))!;
  expect(waiting.status).toBe("pending");
  expect(waiting.nonce).toBeNull();
  expect(await t.alertCount("insufficient_funds", wallet)).toBeGreaterThan(0);
  // Once the first mined, the second fits and is signed at the next nonce.
  await t.rpc("evm_mine");
  const signed = await waitFor(
    "second signed after the first mined",
    async () => {
      const r = await getTxRequest(t.ctx.db.pool, id);
      return r?.nonce !== null && r?.nonce !== undefined ? r : undefined;
    },
    { timeoutMs: 15_000 },
  );
  expect(signed.nonce).toBe(1n);
}

describe("intake budget on an OP-stack chain", () => {
  it("counts the L1 data fee of the sends in flight: a send that fits only without it takes no nonce", async () => {
    const balance = parseEther("1");
    const account = await t.wallet(balance);
    // What each plain native send pays on L1 here (the same for both: same size).
    const l1Fee = await estimateL1DataFee(t.client, t.chain, {
      from: account.address,
      to: RECIPIENT,
      value: parseEther("0.4"),
      data: "0x",
    });
    expect(l1Fee > parseEther("0.1")).toBe(true);
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("op-first", { from: account.address, value: parseEther("0.4") });
      await sent("op-first");
      // Fits after the first's value and gas (0.05 ETH to spare), not after its L1 fee too:
      // together they need 1 ETH - 0.05 + 2 x L1 fee (+ gas) of the 1 ETH.
      const second = balance - parseEther("0.4") - l1Fee - parseEther("0.05");
      await t.withdraw("op-second", { from: account.address, value: second });
      await waitsThenSignedAfterTheFirstMined("op-second", account.address);
    } finally {
      await signer.stop();
    }
  });

  it("counts the sends in flight at the L1 fee the oracle asks now: a spike after they were signed", async () => {
    // On the OP stack the L1 fee is charged at inclusion, at the L1 price then, not at the price
    // when the send was signed: stored at signing, a spike while it is in flight makes it take
    // more than counted, and the next send takes a nonce the wallet cannot pay.
    // old code: expected 'broadcast' to be 'pending' (the first's L1 fee counted as stored, at 1x).
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, ORACLE_RUNTIME]);
    const balance = parseEther("1");
    const account = await t.wallet(balance);
    const feeNow = () =>
      estimateL1DataFee(t.client, t.chain, {
        from: account.address,
        to: RECIPIENT,
        value: parseEther("0.4"),
        data: "0x",
      });
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("spike-first", { from: account.address, value: parseEther("0.4") });
      await sent("spike-first");
      const stored = await feeNow();
      // The L1 price doubles while the first is in flight: it will pay 2 x what was stored.
      await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, oracleRuntime(2n * 10n ** 15n)]);
      const spiked = await feeNow();
      expect(spiked).toBe(2n * stored);
      // Fits after the first at its stored L1 fee (0.05 ETH to spare), not at the fee now: the
      // second needs its own L1 fee now too.
      const second = balance - parseEther("0.4") - stored - spiked - parseEther("0.05");
      await t.withdraw("spike-second", { from: account.address, value: second });
      await waitsThenSignedAfterTheFirstMined("spike-second", account.address);
    } finally {
      await signer.stop();
    }
  });

  it("counts a send signed at an L1 price of 0 at the fee the oracle asks now, not at the 0 stored", async () => {
    // A price of 0 at signing gives no ratio to scale the stored fee by: counted as stored (0),
    // a rise while it is in flight is missed, and the next send takes a nonce the wallet cannot
    // pay. before the fix: expected 'broadcast' to be 'pending'.
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, oracleRuntime(0n)]);
    const balance = parseEther("1");
    const account = await t.wallet(balance);
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("zero-first", { from: account.address, value: parseEther("0.4") });
      await sent("zero-first");
      expect((await getTxRequest(t.ctx.db.pool, "zero-first"))?.nonce).toBe(0n);
      await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, ORACLE_RUNTIME]);
      const now = await estimateL1DataFee(t.client, t.chain, {
        from: account.address,
        to: RECIPIENT,
        value: parseEther("0.4"),
        data: "0x",
      });
      expect(now > parseEther("0.1")).toBe(true);
      // Fits after the first at its stored L1 fee of 0 (0.05 ETH to spare), not at the fee now.
      const second = balance - parseEther("0.4") - now - parseEther("0.05");
      await t.withdraw("zero-second", { from: account.address, value: second });
      await waitsThenSignedAfterTheFirstMined("zero-second", account.address);
    } finally {
      await signer.stop();
    }
  });

  it("an oracle that does not answer leaves requests pending: no nonce on a guess, none failed", async () => {
    // Without the L1 price now, the sends in flight could take more than stored: nothing is
    // signed, and the request is not failed for the oracle's answer (it is no fact about it).
    // old code: expected 'failed' to be 'pending' (ESTIMATE_REVERTED from the oracle's revert).
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, "0x60006000fd"]);
    const account = await t.wallet(parseEther("1"));
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("oracle-down", { from: account.address, value: parseEther("0.1") });
      await new Promise((r) => setTimeout(r, 1_500));
      const waiting = (await getTxRequest(t.ctx.db.pool, "oracle-down"))!;
      expect(waiting.status).toBe("pending");
      expect(waiting.nonce).toBeNull();
      // The oracle answers again: the request is signed.
      await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, ORACLE_RUNTIME]);
      const sent = await waitFor(
        "signed once the oracle answers",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "oracle-down");
          return r?.nonce !== null && r?.nonce !== undefined ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(sent.nonce).toBe(0n);
    } finally {
      await signer.stop();
    }
  });
});

describe("operator fee on an OP-stack chain (Isthmus)", () => {
  /** 10^12 wei of L1 fee a send: next to nothing, so the operator fee decides. */
  const L1_FEE = 10n ** 12n;
  /** Since Isthmus: ~0.1 ETH a gas unit x 4e12 / 1e6 for a plain send's ~25,200 gas, + 0.1 ETH. */
  let isthmus: Hex;
  /** Before Isthmus: getL1Fee only (asked getOperatorFee, it reverts without data). */
  let preIsthmus: Hex;

  beforeAll(() => {
    isthmus = gasPriceOracleRuntime({
      l1Fee: L1_FEE,
      operatorFee: { scalar: 4n * 10n ** 12n, constant: parseEther("0.1") },
    });
    preIsthmus = gasPriceOracleRuntime({ l1Fee: L1_FEE });
  });

  it("counts the operator fee of the sends in flight and of the new one, on the gas limit: one that fits only without them takes no nonce", async () => {
    // old code: expected 'broadcast' to be 'pending' (no operator fee counted: the second was
    // signed at nonce 1, a send the wallet cannot pay once the chain charges the first's).
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, isthmus]);
    const balance = parseEther("1");
    const account = await t.wallet(balance);
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("isthmus-first", { from: account.address, value: parseEther("0.4") });
      await sent("isthmus-first");
      const { rows } = await t.ctx.db.pool.query<{ gas_limit: string }>(
        "SELECT gas_limit FROM custody.tx_attempts WHERE request_id = $1",
        ["isthmus-first"],
      );
      const gasLimit = BigInt(rows[0]!.gas_limit);
      // The chain's own answer, on the gas limit the first was signed with (its upper bound).
      const opFee = (await operatorFees(t.client, t.chain, [gasLimit])).get(gasLimit)!;
      expect(opFee).toBe((gasLimit * 4n * 10n ** 12n) / 10n ** 6n + parseEther("0.1"));
      // Fits after the first's value, gas and L1 fee (0.05 ETH to spare) if neither it nor the
      // first pays an operator fee (0.95 ETH of the 1), not if both do (0.95 + one fee): counting
      // only one of the two would sign it.
      const second = balance - parseEther("0.4") - opFee - parseEther("0.05");
      await t.withdraw("isthmus-second", { from: account.address, value: second });
      await waitsThenSignedAfterTheFirstMined("isthmus-second", account.address);
    } finally {
      await signer.stop();
    }
  });

  it("an oracle from before Isthmus (getOperatorFee reverts, no data) is the chain's answer: no operator fee, sends are signed", async () => {
    // A revert the node executed at the block read is evidence (the oracle has no such function
    // there), unlike a node that does not answer: read as unknown, no send would ever be signed
    // on a chain before Isthmus.
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, preIsthmus]);
    expect((await operatorFees(t.client, t.chain, [21_000n, 50_000n])).get(50_000n)).toBe(0n);
    const balance = parseEther("1");
    const account = await t.wallet(balance);
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("pre-first", { from: account.address, value: parseEther("0.4") });
      await sent("pre-first");
      // Fits beside the first with its gas and L1 fees (0.05 ETH to spare): signed at once.
      const second = balance - parseEther("0.4") - parseEther("0.05");
      await t.withdraw("pre-second", { from: account.address, value: second });
      await sent("pre-second");
      expect((await getTxRequest(t.ctx.db.pool, "pre-second"))?.nonce).toBe(1n);
    } finally {
      await signer.stop();
    }
  });

  it("a node error on getOperatorFee is no fee of 0 (nor a revert of the request): it waits unsigned, never failed", async () => {
    // viem words a node's internal error (-32603) to a contract read as a revert; only the node's
    // own "execution reverted" without data is the oracle's answer.
    // old code: expected 'broadcast' to be 'pending' (the operator fee never asked); read in the
    // gas estimate without OpStackFeeUnknownError: expected 'failed' to be 'pending'
    // (ESTIMATE_REVERTED, the request failed for the node's error).
    await t.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, isthmus]);
    const selector = toFunctionSelector("getOperatorFee(uint256)");
    t.proxy!.setIntercept((call) => {
      const tx = (call.params?.[0] ?? {}) as { data?: string; input?: string };
      return call.method === "eth_call" && (tx.data ?? tx.input ?? "").startsWith(selector)
        ? { error: { code: -32603, message: "internal error" } }
        : undefined;
    });
    const account = await t.wallet(parseEther("1"));
    const signer = t.run(account, { settings: { unpaidRetryMs: 300 } });
    try {
      await t.withdraw("op-unknown", { from: account.address, value: parseEther("0.1") });
      await new Promise((r) => setTimeout(r, 1_500));
      const waiting = (await getTxRequest(t.ctx.db.pool, "op-unknown"))!;
      expect(waiting.status).toBe("pending");
      expect(waiting.nonce).toBeNull();
      // The oracle answers again: the request is signed.
      t.proxy!.setIntercept(undefined);
      await sent("op-unknown");
      expect((await getTxRequest(t.ctx.db.pool, "op-unknown"))?.nonce).toBe(0n);
    } finally {
      t.proxy!.setIntercept(undefined);
      await signer.stop();
    }
  });
});
