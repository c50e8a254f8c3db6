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
import { waitFor } from "../testing/harness.js";
import { coldAccount } from "./bookings.js";
import { CHAIN_ID, DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

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

async function unsettled(): Promise<number> {
  const { rows } = await s.ctx.db.pool.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM custody.sweeps
              WHERE status = 'open' OR (status = 'booked' AND final_at IS NULL))::int
          + (SELECT count(*) FROM custody.cold_moves
              WHERE status = 'open' OR (status = 'booked' AND final_at IS NULL))::int AS n`,
  );
  return rows[0]!.n;
}

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

    // The reorg (inside the window, above the finalized height) takes the deposit out.
    const depth = Number((await s.h.client.getBlockNumber()) - depositBlock) + 1;
    expect(depth).toBeLessThan(REORG_WINDOW);
    await s.rpc("anvil_reorg", [depth, []]);

    // Every sweep and cold move reaches a final block: no nonce of the wallet is stuck.
    await waitFor(
      "sweeps and cold moves final",
      async () => {
        await s.mine(1);
        await s.syncAndCredit();
        await s.sweeper.tick(CHAIN_ID);
        return (await unsettled()) === 0;
      },
      { timeoutMs: 60_000, everyMs: 100 },
    ).catch(async (err) => {
      // What is stuck, in the failure: the requests not terminal and their attempts' last refusal.
      const { rows } = await s.ctx.db.pool.query(
        `SELECT r.kind, r.status, r.value::text, a.status AS attempt, a.last_error_class
           FROM custody.tx_requests r LEFT JOIN custody.tx_attempts a ON a.request_id = r.id
          WHERE r.status NOT IN ('confirmed', 'failed')`,
      );
      throw new Error(`${(err as Error).message}: ${JSON.stringify(rows)}`);
    });
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
