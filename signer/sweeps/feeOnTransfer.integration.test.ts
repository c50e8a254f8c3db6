/**
 * A listed token that takes a fee on transfer (PAXG-style; USDT has the switch): sweeping it moves
 * the whole balance off the deposit address (the factory's Swept event) but the hot wallet
 * receives less (its Transfer log, the chain fact), and the fee goes elsewhere. Settlement looked
 * for a Transfer of exactly the Swept amount, found none and waited for ever (a retryable receipt
 * error, logged at info): the sweep stayed open, nothing it moved was booked (the native value and
 * other tokens of the same transaction neither: custody:hot short, custody:deposits long), and its
 * addresses were never planned again (an address in an open sweep waits), so every later deposit
 * to them sat unswept. On the real stack (anvil, Postgres, Redis, KMS emulator).
 */

import { type Abi, type Address, encodeFunctionData, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { hotAccount } from "./bookings.js";
import { deployFeeToken, FEE_TOKEN } from "./testing/feeToken.js";
import { CHAIN_ID, DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;
let abi: Abi;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000000",
    tokens: [{ address: FEE_TOKEN, symbol: "FEE", decimals: 18, sweepThreshold: "1" }],
    sweepBatchSize: 10,
  });
  abi = await deployFeeToken(s.rpc);
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

const tokenBalance = (holder: Address) =>
  s.h.client.readContract({
    address: FEE_TOKEN,
    abi,
    functionName: "balanceOf",
    args: [holder],
  }) as Promise<bigint>;

describe("sweeping a fee-on-transfer token", () => {
  it("books what the hot wallet received, with the native value of the same sweep", async () => {
    const address = await s.allocate("pia");
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: FEE_TOKEN,
      data: encodeFunctionData({ abi, functionName: "mint", args: [address, 10_000n] }),
    });
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: 3n * 10n ** 17n,
      gas: 21_000n,
    });
    await s.mine(2);
    await s.syncAndCredit();
    expect(await s.userCredited(FEE_TOKEN, "pia")).toBe(10_000n);
    expect(await s.userCredited(NATIVE, "pia")).toBe(3n * 10n ** 17n);
    const hotNativeBefore = await s.balanceOf(NATIVE, hotAccount(s.hot));

    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    const sweepId = tick.started[0]!.id;
    // The transaction mines and moves everything (the hot wallet gets 9,900, the collector 100).
    await waitFor(
      "sweep mined",
      async () => {
        await s.mine(1);
        return (await tokenBalance(address)) === 0n;
      },
      { timeoutMs: 30_000, everyMs: 100 },
    );
    expect(await tokenBalance(s.hot)).toBe(9_900n);
    expect(await s.h.client.getBalance({ address })).toBe(0n);

    // The signer reports it final; settlement then has every pass it needs.
    await waitFor(
      "sweep final",
      async () => {
        await s.mine(1);
        const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [sweepId] });
        return o?.status === "finalized";
      },
      { timeoutMs: 30_000, everyMs: 100 },
    );
    for (let i = 0; i < 3; i++) {
      await s.syncAndCredit();
      await s.sweeper.tick(CHAIN_ID);
    }
    const { rows } = await s.ctx.db.pool.query<{ status: string; fee: bigint | null }>(
      "SELECT status, fee FROM custody.sweeps WHERE id = $1",
      [sweepId],
    );
    expect(rows[0]!.status).toBe("booked");
    // The ledger says what the chain holds: the hot wallet's tokens and the native value it got.
    expect(await s.balanceOf(FEE_TOKEN, hotAccount(s.hot))).toBe(9_900n);
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(
      hotNativeBefore + 3n * 10n ** 17n - rows[0]!.fee!,
    );
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    // The fee left the custody: custody:deposits keeps it until an operator books the break
    // reconciliation shows for the collector's Transfer fact.
    expect(await s.balanceOf(FEE_TOKEN, "custody:deposits")).toBe(100n);

    // The address is swept again for its next deposit.
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: 2n * 10n ** 17n,
      gas: 21_000n,
    });
    await s.mine(2);
    await s.syncAndCredit();
    const next = await s.sweeper.tick(CHAIN_ID);
    expect(next.started).toHaveLength(1);
    await s.settleAll();
    expect(await s.h.client.getBalance({ address })).toBe(0n);
  });
});
