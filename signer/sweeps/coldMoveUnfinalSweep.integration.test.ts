/**
 * A native cold move is not sized on value a sweep brought in whose block is not final yet (DESIGN
 * "missing data is never evidence"): a reorg can take the deposit out with the sweep, and the
 * re-sent sweep then brings nothing, while a cold move's bytes keep their value. With a hot wallet
 * that holds less than that value once the deposit is gone, the node refuses the cold move
 * (insufficient funds) at every resend: its nonce never mines and every later request of the
 * wallet waits behind it (a frozen wallet). Real anvil, Postgres, Redis, KMS emulator, indexer,
 * crediting, signer.
 */
import { type Address, type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { coldAccount } from "./bookings.js";
import {
  CHAIN_ID,
  DEPOSITOR,
  NATIVE,
  reorgFromAndSettle,
  type SweepStack,
  startSweepStack,
} from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
const REORG_WINDOW = 30;

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    reorgWindow: REORG_WINDOW,
    nativeSweepThreshold: "1000",
    nativeHotCeiling: (5n * 10n ** 17n).toString(),
    coldAddress: COLD,
  });
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

describe("a native cold move and a sweep that is not final", () => {
  it("moves nothing the reorg takes back: the wallet is not frozen", async () => {
    // The hot wallet's own float: enough for gas, far less than the deposit.
    await s.rpc("anvil_setBalance", [s.hot, toHex(parseEther("0.05"))]);
    const address = await s.allocate("unfinal-sweep");
    const deposit = 2n * 10n ** 18n;
    const sent = await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: deposit,
      gas: 21_000n,
    });
    const depositBlock = BigInt(sent.blockNumber);
    await s.mine(2);
    await s.syncAndCredit();
    await s.sweeper.tick(CHAIN_ID);
    await s.settleAll();
    // Booked, far from final: a few ticks (the old code started and booked a cold move here).
    for (let i = 0; i < 8; i++) {
      await s.mine(1);
      await s.sweeper.tick(CHAIN_ID);
    }

    // The reorg (inside the window, above the finalized height) takes the deposit out; every
    // sweep and cold move reaches a final block: no nonce of the wallet is stuck.
    await reorgFromAndSettle(s, depositBlock, REORG_WINDOW, 60_000);
    const pending = await s.h.client.getTransactionCount({ address: s.hot, blockTag: "pending" });
    const mined = await s.h.client.getTransactionCount({ address: s.hot, blockTag: "latest" });
    expect(pending).toBe(mined);
    const { rows } = await s.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM custody.tx_requests WHERE status NOT IN ('confirmed', 'failed')",
    );
    expect(rows[0].n).toBe(0);
    // Nothing left the wallet for cold: the deposit is gone, the float is not custody's to move.
    expect(await s.h.client.getBalance({ address: COLD })).toBe(0n);
    expect(await s.balanceOf(NATIVE, coldAccount(COLD))).toBe(0n);
  });
});
