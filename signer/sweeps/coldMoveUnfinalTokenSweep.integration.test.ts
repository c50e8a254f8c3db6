/**
 * A token cold move is not sized on tokens a sweep brought in whose block is not final yet, as a
 * native one is not (coldMoveUnfinalSweep.integration.test.ts). A reorg can take the deposit out
 * with the sweep; the re-sent sweep then brings nothing, while the cold move's bytes keep their
 * amount. They revert only if the wallet holds less: a wallet that also holds tokens for the
 * withdrawals it owes pays the move with them, and the withdrawals are left without their money
 * (the ledger's hot balance below zero). Real anvil, Postgres, Redis, KMS emulator, indexer,
 * crediting, signer.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { assetIdOf, transferId } from "../../ledger/index.js";
import { waitFor } from "../testing/harness.js";
import { coldAccount, hotAccount } from "./bookings.js";
import {
  CHAIN_ID,
  DEPOSITOR,
  onChainToken,
  reorgFromAndSettle,
  type SweepStack,
  startTokenColdStack,
  TOKEN,
  unsettledSweepsAndColdMoves,
} from "./testing/stack.js";

const COLD = "0x000000000000000000000000000000000000c01d" as const;
const REORG_WINDOW = 30;
const CEILING = 1000n;

let s: SweepStack;

beforeAll(async () => {
  s = await startTokenColdStack({ coldAddress: COLD, reorgWindow: REORG_WINDOW, ceiling: CEILING });
});

afterAll(async () => {
  await s?.close();
});

const hotAvailable = async () =>
  (await s.ledger.getAccount({ assetId: assetIdOf(CHAIN_ID, TOKEN), name: hotAccount(s.hot) }))!
    .available;

/** Mint tokens to a new deposit address of `customer`, credited; returns the mint's block. */
async function creditedTokens(customer: string, amount: bigint): Promise<bigint> {
  const address = await s.allocate(customer);
  const minted = await sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: TOKEN,
    data: `0x40c10f19${address.slice(2).toLowerCase().padStart(64, "0")}${amount.toString(16).padStart(64, "0")}`,
  });
  expect(minted.status).toBe("0x1");
  await s.mine(2);
  await s.syncAndCredit();
  return BigInt(minted.blockNumber);
}

describe("a token cold move and a sweep that is not final", () => {
  it("moves nothing the reorg takes back: the withdrawals owed keep their tokens", async () => {
    // The wallet's tokens, final: its ceiling and 2000 a customer's withdrawal holds.
    await creditedTokens("owed", 3000n);
    const { started } = await s.sweeper.tick(CHAIN_ID);
    expect(started).toHaveLength(1);
    await waitFor(
      "first sweep final",
      async () => {
        await s.mine(1);
        await s.sweeper.settle(CHAIN_ID);
        return (await unsettledSweepsAndColdMoves(s)) === 0;
      },
      { timeoutMs: 60_000, everyMs: 100 },
    );
    const withdrawal = 2000n;
    await s.ledger.hold({
      id: transferId("withdrawal:cold-move-unfinal-token"),
      assetId: assetIdOf(CHAIN_ID, TOKEN),
      debit: "user:owed",
      credit: hotAccount(s.hot),
      amount: withdrawal,
      kind: "withdrawal",
      memo: "withdrawal cold-move-unfinal-token",
    });
    expect(await hotAvailable()).toBe(CEILING);

    // A second deposit, swept and booked, far from final: a few ticks.
    const depositBlock = await creditedTokens("reorged", 2000n);
    await s.sweeper.tick(CHAIN_ID);
    await s.settleAll();
    for (let i = 0; i < 8; i++) {
      await s.mine(1);
      await s.sweeper.tick(CHAIN_ID);
    }

    // The reorg (inside the window, above the finalized height) takes the deposit out.
    await reorgFromAndSettle(s, depositBlock, REORG_WINDOW, 90_000);

    // Nothing left the wallet for cold: the wallet still holds what the withdrawal is owed.
    expect({
      cold: await onChainToken(s, COLD),
      coldBooked: await s.balanceOf(TOKEN, coldAccount(COLD)),
      hot: await onChainToken(s, s.hot),
      hotAvailable: await hotAvailable(),
    }).toEqual({ cold: 0n, coldBooked: 0n, hot: CEILING + withdrawal, hotAvailable: CEILING });
  }, 180_000);
});
