/**
 * A cold move is not sized on a treasury funding (`treasury fund`) whose block is not final yet,
 * as it is not on a sweep's (coldMoveUnfinalSweep.integration.test.ts): a reorg may drop the
 * funding for good, while a cold move's bytes keep their amount. A native move larger than what
 * the wallet then holds is refused at every resend: its nonce never mines and every later request
 * of the wallet waits behind it. A funding booked before the indexer has its fact (an amount the
 * operator gave) is not final either: missing data is never evidence. Real anvil, Postgres,
 * Redis, KMS emulator, indexer.
 */
import { type Address, type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFinalized } from "../../indexers/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { bookTreasuryMove } from "../../ledger/index.js";
import { signerTransactions } from "../requests.js";
import { hotAccount } from "./bookings.js";
import { CHAIN_ID, DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
const REORG_WINDOW = 30;
const CEILING = parseEther("0.5");

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    reorgWindow: REORG_WINDOW,
    nativeHotCeiling: CEILING.toString(),
    coldAddress: COLD,
  });
});

afterAll(async () => {
  await s?.close();
});

describe("a native cold move and a treasury funding that is not final", () => {
  it("moves none of the funding to cold until its block is final", async () => {
    // The wallet's own float (not booked), then a funding booked before the indexer has it.
    await s.rpc("anvil_setBalance", [s.hot, toHex(parseEther("1"))]);
    const funding = parseEther("2");
    const funded = await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: s.hot,
      value: funding,
      gas: 21_000n,
    });
    await bookTreasuryMove(
      { common: s.ctx.common, pool: s.ctx.db.pool, ledger: s.ledger, signerTransactions },
      {
        move: "fund",
        chainId: CHAIN_ID,
        txHash: funded.transactionHash,
        wallet: s.hot,
        amount: funding,
        by: "ops-test",
        reason: "hot wallet float",
      },
    );
    // before the fix: expected [ { id: 'cold_move:31337:…', asset: '0x0…0', amount: 1499…n } ] to deeply equal []
    expect((await s.sweeper.tick(CHAIN_ID)).coldStarted).toEqual([]);

    // Indexed, in a block above the finalized height: still not moved.
    await s.mine(2);
    await s.syncAndCredit();
    const final = await readFinalized(s.ctx.db.pool, CHAIN_ID);
    expect(final === null || final.number < BigInt(funded.blockNumber)).toBe(true);
    expect((await s.sweeper.tick(CHAIN_ID)).coldStarted).toEqual([]);

    // Final: what is above the ceiling goes.
    await s.mine(REORG_WINDOW);
    await s.syncAndCredit();
    expect((await readFinalized(s.ctx.db.pool, CHAIN_ID))!.number).toBeGreaterThanOrEqual(
      BigInt(funded.blockNumber),
    );
    const booked = await s.balanceOf(NATIVE, hotAccount(s.hot.toLowerCase()));
    expect((await s.sweeper.tick(CHAIN_ID)).coldStarted).toEqual([
      { id: expect.any(String), asset: NATIVE, amount: booked - CEILING },
    ]);
  });
});
