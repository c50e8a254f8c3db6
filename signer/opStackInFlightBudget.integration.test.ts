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
import { type Hex, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { estimateL1DataFee, OP_GAS_PRICE_ORACLE } from "./gas.js";
import { getTxRequest } from "./requests.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

/** A GasPriceOracle stand-in: getL1Fee(bytes) returns calldata size x 10^15 wei (~0.2 ETH a send). */
const ORACLE_RUNTIME: Hex = "0x3666038d7ea4c680000260005260206000f3";

let t: SignerTest;

beforeAll(async () => {
  t = await startSignerTest({
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
      await waitFor(
        "first sent",
        async () => (await getTxRequest(t.ctx.db.pool, "op-first"))?.status === "broadcast",
      );
      // Fits after the first's value and gas (0.05 ETH to spare), not after its L1 fee too:
      // together they need 1 ETH - 0.05 + 2 x L1 fee (+ gas) of the 1 ETH.
      const second = balance - parseEther("0.4") - l1Fee - parseEther("0.05");
      await t.withdraw("op-second", { from: account.address, value: second });
      await new Promise((r) => setTimeout(r, 1_500));
      const waiting = (await getTxRequest(t.ctx.db.pool, "op-second"))!;
      expect(waiting.status).toBe("pending");
      expect(waiting.nonce).toBeNull();
      expect(await t.alertCount("insufficient_funds", account.address)).toBeGreaterThan(0);
      // Once the first mined, the second fits and is signed at the next nonce.
      await t.rpc("evm_mine");
      const sent = await waitFor(
        "second signed after the first mined",
        async () => {
          const r = await getTxRequest(t.ctx.db.pool, "op-second");
          return r?.nonce !== null && r?.nonce !== undefined ? r : undefined;
        },
        { timeoutMs: 15_000 },
      );
      expect(sent.nonce).toBe(1n);
    } finally {
      await signer.stop();
    }
  });
});
