/**
 * The room a sweep's gas limit leaves for deposits its estimate did not see (signer/gas.ts
 * `stateHeadroom`) against the real ForwarderFactory: every (address, asset) of a sweep estimated
 * empty fills before it runs, the hot wallet holding none of either token (its first balance
 * write of each from 0): the worst case. If the forwarder or the factory ever does more per
 * address or token, this fails before a sweep runs out of gas on chain.
 */
import { type Address, encodeDeployData, encodeFunctionData, type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  depositAddressOf,
  depositSalt,
  forwarderFactory,
  noReturnToken,
  testToken,
} from "../../chains/contracts/index.js";
import { DEV_ACCOUNT, receipt, sendAndMine } from "../../indexers/testing/chain.js";
import { gasLimitFor, stateHeadroom, withHeadroom } from "../gas.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack, TOKEN } from "./testing/stack.js";

let s: SweepStack;
let usdtLike: Address;

beforeAll(async () => {
  s = await startSweepStack();
  await s.deployToken();
  const r = await sendAndMine(s.rpc, {
    from: DEV_ACCOUNT,
    data: encodeDeployData({ abi: noReturnToken.abi, bytecode: noReturnToken.bytecode }),
  });
  usdtLike = r.contractAddress! as Address;
});

afterAll(async () => {
  await s?.close();
});

const mint = (token: Address, to: Address, amount: bigint) =>
  sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: token,
    data: encodeFunctionData({ abi: testToken.abi, functionName: "mint", args: [to, amount] }),
  });

describe("a sweep's headroom", () => {
  it("covers every address and token filling after the estimate, with the hot wallet's first writes", async () => {
    const salts = ["hh-1", "hh-2", "hh-3"].map(depositSalt);
    const addresses = salts.map((salt) => depositAddressOf(s.factory, salt));
    const data = encodeFunctionData({
      abi: forwarderFactory.abi,
      functionName: "sweep",
      args: [salts, [TOKEN, usdtLike]],
    });
    const estimate = () => s.h.client.estimateGas({ account: s.hot, to: s.factory, data });
    const empty = await estimate();
    const margin = gasLimitFor(empty, { chainId: CHAIN_ID }, data);
    const limit = withHeadroom(margin, stateHeadroom(data));

    for (const a of addresses) {
      await mint(TOKEN, a, 10n ** 18n);
      await mint(usdtLike, a, 10n ** 6n);
      await sendAndMine(s.rpc, {
        from: DEPOSITOR.toLowerCase() as Hex,
        to: a,
        value: 10n ** 16n,
        gas: 21_000n,
      });
    }
    const full = await estimate();
    // The margin alone does not cover it (what ran out of gas); the headroom does.
    expect(full).toBeGreaterThan(margin);
    expect(full).toBeLessThanOrEqual(limit);

    // Sent with that limit, it moves everything.
    await s.rpc("anvil_impersonateAccount", [s.hot]);
    const hash = await s.rpc<Hex>("eth_sendTransaction", [
      { from: s.hot, to: s.factory, data, gas: toHex(limit) },
    ]);
    await s.rpc("anvil_stopImpersonatingAccount", [s.hot]);
    expect((await receipt(s.rpc, hash)).status).toBe("0x1");
    for (const a of addresses) {
      expect(await s.h.client.getBalance({ address: a })).toBe(0n);
      for (const token of [TOKEN, usdtLike])
        expect(
          await s.h.client.readContract({
            address: token,
            abi: testToken.abi,
            functionName: "balanceOf",
            args: [a],
          }),
        ).toBe(0n);
    }
  });
});
