/**
 * Sweeps plan from what deposit addresses hold on chain (capped by what the ledger credited) and
 * back off an (address, asset) whose last sweep moved nothing, so no gas is burnt sweeping an
 * empty address every interval. Real anvil, Postgres, Redis, KMS emulator, indexer and signer.
 */
import { type Address, type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { createSweeper } from "./createSweeper.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

async function deposit(to: Address, value: bigint) {
  await sendAndMine(s.rpc, { from: DEPOSITOR.toLowerCase() as Hex, to, value, gas: 21_000n });
  await s.mine(2);
  await s.syncAndCredit();
}

const setBalance = (address: Address, value: bigint) =>
  s.rpc("anvil_setBalance", [address, toHex(value)]);

async function items(sweepId: string) {
  const { rows } = await s.ctx.db.pool.query<{
    address: string;
    planned: bigint;
    swept: bigint | null;
  }>("SELECT address, planned, swept FROM custody.sweep_items WHERE sweep_id = $1", [sweepId]);
  return rows;
}

function sweeperWith(emptyRetryAfterMs: number) {
  const adapter = createEvmAdapter(s.ctx.config.chains[0]!, { common: s.ctx.common });
  return createSweeper({
    common: s.ctx.common,
    pool: s.ctx.db.pool,
    ledger: s.ledger,
    chains: s.ctx.config.chains,
    hotWallets: s.hotWallets,
    adapterFor: () => adapter,
    emptyRetryAfterMs,
  });
}

describe("sweep planning from the chain", () => {
  it("an address holding less than its credit is swept for what it holds, and not again once empty", async () => {
    const address = await s.allocate("short");
    await deposit(address, 5n * 10n ** 17n);
    // The chain holds less than the ledger credited (value gone without a fact, a lying token…).
    await setBalance(address, 2n * 10n ** 17n);
    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    const id = tick.started[0]!.id;
    expect(await items(id)).toEqual([
      { address: address.toLowerCase(), planned: 2n * 10n ** 17n, swept: null },
    ]);
    await s.settleAll([id]);
    expect(await items(id)).toEqual([
      {
        address: address.toLowerCase(),
        planned: 2n * 10n ** 17n,
        swept: 2n * 10n ** 17n,
      },
    ]);
    // The ledger still says 3e17 is sweepable; the chain holds nothing: nothing is requested.
    expect(await s.h.client.getBalance({ address })).toBe(0n);
    const again = await s.sweeper.tick(CHAIN_ID);
    expect(again.started).toEqual([]);
    const { rows } = await s.ctx.db.pool.query(
      "SELECT count(DISTINCT sweep_id)::int AS n FROM custody.sweep_items WHERE address = $1",
      [address.toLowerCase()],
    );
    expect(rows[0].n).toBe(1);
  });

  it("an address whose last sweep moved nothing backs off for the back-off window", async () => {
    const address = await s.allocate("empty");
    const amount = 4n * 10n ** 17n;
    await deposit(address, amount);
    // Hold the sweep in the mempool and empty the address before it mines: it moves nothing.
    await s.rpc("evm_setAutomine", [false]);
    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    const id = tick.started[0]!.id;
    await waitFor("sweep broadcast", async () => {
      const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [id] });
      return o?.status === "broadcast";
    });
    await setBalance(address, 0n);
    await s.mine(1);
    await s.rpc("evm_setAutomine", [true]);
    await s.settleAll([id]);
    const { rows } = await s.ctx.db.pool.query("SELECT status FROM custody.sweeps WHERE id = $1", [
      id,
    ]);
    expect(rows[0].status).toBe("booked");
    expect(await items(id)).toEqual([
      { address: address.toLowerCase(), planned: amount, swept: 0n },
    ]);
    // The value is back on chain (the cause was transient) but the pair is backed off ...
    await setBalance(address, amount);
    expect((await sweeperWith(60_000).tick(CHAIN_ID)).started).toEqual([]);
    // ... until the window has passed: then it is swept again and booked once.
    const retry = await sweeperWith(0).tick(CHAIN_ID);
    expect(retry.started).toHaveLength(1);
    await s.settleAll([retry.started[0]!.id]);
    expect(await items(retry.started[0]!.id)).toEqual([
      { address: address.toLowerCase(), planned: amount, swept: amount },
    ]);
  });
});
