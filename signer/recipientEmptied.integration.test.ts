/**
 * A token withdrawal whose recipient empties its balance between the estimate and the inclusion
 * (an exchange's deposit address swept meanwhile, a contract paying out). Writing a balance slot
 * that holds 0 costs 20,000 gas against 2,900 for one that holds something, so the transfer needs
 * about 17,000 more gas than its estimate saw: the chain's 20% margin of a ~35,000-gas transfer
 * does not cover it, and the withdrawal ran out of gas on chain (failed, its gas spent). On the
 * real stack (anvil with mining held while the recipient's transfer waits beside the withdrawal).
 */
import { type Hex, parseEther, parseGwei, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, DEV_ACCOUNT, deployTestToken, receipt } from "../indexers/testing/chain.js";
import { RECIPIENT, waitFor } from "./testing/harness.js";
import { type SignerTest, startSignerTest } from "./testing/signerTest.js";

let t: SignerTest;
let token: Hex;

beforeAll(async () => {
  t = await startSignerTest();
  token = await deployTestToken(t.rpc, t.account.address, 10n ** 21n);
  // The recipient holds some of the token already: its balance slot is not 0 at the estimate.
  await t.rpc("eth_sendTransaction", [
    { from: DEV_ACCOUNT, to: token, data: call("TestToken", "transfer", [RECIPIENT, 1_000n]) },
  ]);
  await t.rpc("anvil_setBalance", [t.account.address, toHex(parseEther("10"))]);
  t.chain = { ...t.chain, tokens: [{ address: token, symbol: "TT", decimals: 18 }] };
});

afterAll(async () => {
  await t?.stop();
});

const tokenOf = async (holder: Hex) =>
  BigInt(
    (await t.rpc("eth_call", [
      { to: token, data: call("TestToken", "balanceOf", [holder]) },
      "latest",
    ])) as Hex,
  );

describe("a token withdrawal whose recipient is emptied before it is mined", () => {
  it("has the gas to write the recipient's balance from 0: it succeeds", async () => {
    await t.rpc("evm_setAutomine", [false]);
    t.signer = t.run();
    await t.withdraw("to-emptied", {
      to: token,
      value: 0n,
      data: call("TestToken", "transfer", [RECIPIENT, 777n]),
    });
    const sent = await waitFor(
      "the withdrawal broadcast",
      async () => {
        const { rows } = await t.ctx.db.pool.query<{ tx_hash: Hex }>(
          `SELECT tx_hash FROM custody.tx_attempts WHERE request_id = 'to-emptied' AND status = 'broadcast'`,
        );
        return rows[0]?.tx_hash;
      },
      { timeoutMs: 30_000, everyMs: 50 },
    );
    // The recipient moves everything it holds out, tipping well above the withdrawal.
    const emptied = await t.rpc<Hex>("eth_sendTransaction", [
      {
        from: RECIPIENT,
        to: token,
        data: call("TestToken", "transfer", [DEV_ACCOUNT, 1_000n]),
        gas: "0x30d40",
        maxFeePerGas: toHex(parseGwei("500")),
        maxPriorityFeePerGas: toHex(parseGwei("100")),
      },
    ]);
    await t.rpc("evm_mine");
    await t.rpc("evm_setAutomine", [true]);
    const [mined, first] = await Promise.all([receipt(t.rpc, sent), receipt(t.rpc, emptied)]);
    // The recipient's transfer ran first, in the withdrawal's block (else this test shows nothing).
    expect(first.blockNumber).toBe(mined.blockNumber);
    expect(first.status).toBe("0x1");
    // Old code: expected '0x0' to be '0x1' (out of gas).
    expect(mined.status).toBe("0x1");
    expect(await tokenOf(RECIPIENT)).toBe(777n);
    expect((await t.confirmedWith("to-emptied")).status).toMatch(/confirmed|finalized/);
  });
});
