/**
 * A deposit that lands on a swept address between the sweep's gas estimate and its inclusion.
 * The forwarder moves every listed token and the native balance each address holds when the sweep
 * runs, so the transfers it makes (and their gas) depend on balances the estimate did not see: an
 * address planned for its native value that receives a listed token meanwhile costs one more token
 * transfer and Swept event. The limit was the estimate plus the chain's 20% margin, which one or
 * two such surprises exceed: the sweep ran out of gas on chain, its gas spent for nothing (found
 * by the sweeps simulation's `reverted_sends` count, seed 444005). On the real stack (anvil with
 * mining held while the deposits wait beside the sweep, Postgres, Redis, KMS emulator).
 */
import { type Address, encodeFunctionData, type Hex, parseGwei } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testToken } from "../../chains/contracts/index.js";
import { receipt, sendAndMine } from "../../indexers/testing/chain.js";
import { waitFor } from "../testing/harness.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack, TOKEN } from "./testing/stack.js";

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000000",
    tokens: [{ address: TOKEN, symbol: "TT", decimals: 18, sweepThreshold: "1" }],
    sweepBatchSize: 10,
  });
  await s.deployToken();
});

afterAll(async () => {
  await s?.close();
});

const mint = (to: Address, amount: bigint): Hex =>
  encodeFunctionData({ abi: testToken.abi, functionName: "mint", args: [to, amount] });
const tokenOf = (holder: Address) =>
  s.h.client.readContract({
    address: TOKEN,
    abi: testToken.abi,
    functionName: "balanceOf",
    args: [holder],
  }) as Promise<bigint>;

/** A deposit sent while mining is held, tipping well above the sweep so it is mined before it. */
const depositFirst = (tx: { to: Address; value?: bigint; data?: Hex }) =>
  s.rpc<Hex>("eth_sendTransaction", [
    {
      from: DEPOSITOR.toLowerCase(),
      to: tx.to,
      ...(tx.value ? { value: `0x${tx.value.toString(16)}` } : {}),
      ...(tx.data ? { data: tx.data } : {}),
      gas: "0x30d40",
      maxFeePerGas: `0x${parseGwei("500").toString(16)}`,
      maxPriorityFeePerGas: `0x${parseGwei("100").toString(16)}`,
    },
  ]);

describe("a deposit landing between a sweep's estimate and its inclusion", () => {
  it("the sweep has the gas to move it: it succeeds and the deposit is swept with it", async () => {
    // The token deposit is credited and planned; then a reorg takes its block away (above
    // finality: the sweeps simulation's reorgs do), and the signer estimates the sweep on a chain
    // where the address holds nothing: 145,926 gas for one address and one listed token.
    const address = await s.allocate("tia");
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: TOKEN,
      data: mint(address, 5n * 10n ** 18n),
    });
    await s.mine(2);
    await s.syncAndCredit();
    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    const sweepId = tick.started[0]!.id;
    await s.rpc("anvil_reorg", [3, []]);
    expect(await tokenOf(address)).toBe(0n);

    // Mining held: the signer estimates the sweep at the head and broadcasts it, and it waits.
    await s.rpc("evm_setAutomine", [false]);
    s.startSigner();
    const sweepTx = await waitFor(
      "sweep broadcast",
      async () => {
        const { rows } = await s.ctx.db.pool.query<{ tx_hash: Hex }>(
          `SELECT tx_hash FROM custody.tx_attempts WHERE request_id = $1 AND status = 'broadcast'`,
          [sweepId],
        );
        return rows[0]?.tx_hash;
      },
      { timeoutMs: 30_000, everyMs: 50 },
    );
    // The deposit is mined again, before the sweep in its block: the forwarder transfers it, and
    // the hot wallet's balance of the token is written from 0 (176,935 gas in all).
    const deposit = await depositFirst({ to: TOKEN, data: mint(address, 5n * 10n ** 18n) });
    await s.rpc("evm_mine", []);
    await s.rpc("evm_setAutomine", [true]);

    const [mined, landed] = await Promise.all([receipt(s.rpc, sweepTx), receipt(s.rpc, deposit)]);
    expect(landed.blockNumber).toBe(mined.blockNumber);
    // Old code: expected '0x0' to be '0x1' (its limit, 175,126, all used: out of gas).

    expect(mined.status).toBe("0x1");
    expect(await tokenOf(address)).toBe(0n);
    expect(await tokenOf(s.hot)).toBe(5n * 10n ** 18n);
    await s.syncAndCredit();
    await s.settleAll([sweepId]);
  });
});
