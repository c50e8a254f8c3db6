/**
 * An operator's credit of an `unattributed_inflow` break (ledger/recon/creditInflow.ts: debit
 * custody:deposits, credit user) is value the custody owes the customer and holds in the deposit
 * address, exactly like a deposit credit: it is sweepable. The running sweepable balance counted
 * only ledger.deposit_credits, so the credited inflow was never swept (it sat in the deposit
 * address while the hot wallet paid the customer's withdrawals), and once a later deposit's sweep
 * moved it along (the forwarder sweeps whole balances) the address's sweepable balance stayed
 * negative by the inflow: the next deposits below inflow + threshold were never swept either.
 * On a chain without traces (the inflow is an internal transfer the indexer cannot see).
 */
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { call, deploy, sendAndMine } from "../../indexers/testing/chain.js";
import { createReconciler, creditInflow } from "../../ledger/recon/index.js";
import { hotAccount } from "./bookings.js";
import { sweepReader } from "./sweepReads.js";
import { CHAIN_ID, DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";
import { sweepableDrift } from "./testing/sweepable.js";

const E17 = 10n ** 17n;
let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({ traces: false, nativeSweepThreshold: "1000000", sweepBatchSize: 10 });
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

const native = (address: Address) => s.h.client.getBalance({ address });
const sweepable = async (address: string) => {
  const { rows } = await s.ctx.db.pool.query<{ balance: bigint }>(
    "SELECT balance FROM custody.sweepable_balances WHERE chain_id = $1 AND address = $2 AND asset = $3",
    [CHAIN_ID, address.toLowerCase(), NATIVE],
  );
  return rows[0]?.balance ?? 0n;
};

describe("a credited unattributed inflow", () => {
  it("is swept to the hot wallet, and later deposits to the address are swept whole", async () => {
    const chain = s.ctx.config.chains[0]!;
    const address = await s.allocate("ivy");
    // An internal transfer to the deposit address: no fact on a chain without traces.
    const relay = await deploy(s.rpc, DEPOSITOR.toLowerCase() as Hex, "Forwarder");
    const r = await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: relay,
      value: 7n * E17,
      data: call("Forwarder", "forward", [address.toLowerCase()]),
    });
    expect(r.status).toBe("0x1");
    await s.mine(3);
    await s.syncAndCredit();
    expect(await s.userCredited(NATIVE, "ivy")).toBe(0n);

    const adapter = createEvmAdapter(chain, { common: s.ctx.common });
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: s.ctx.common,
      pool: s.ctx.db.pool,
      chains: adapterPerChain(s.ctx.common, () => adapter),
    });
    const run = await reconciler.run({ chain, full: true });
    const b = await s.ctx.db.pool.query<{ n: number }>(
      "SELECT n FROM recon.breaks WHERE run_id = $1 AND key = $2 AND type = 'unattributed_inflow'",
      [run.runId, `inflow:${address.toLowerCase()}`],
    );
    expect(b.rows).toHaveLength(1);
    const credited = await creditInflow(
      { common: s.ctx.common, pool: s.ctx.db.pool, ledger: s.ledger },
      {
        breakId: `${run.runId}:${b.rows[0]!.n}`,
        by: "ops-anna",
        reason: "internal transfer, checked",
      },
    );
    expect(credited).toMatchObject({ status: "created", customerId: "ivy", amount: 7n * E17 });
    expect(await s.userCredited(NATIVE, "ivy")).toBe(7n * E17);
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(7n * E17);

    // The custody owes it and holds it in the deposit address: it is sweepable like a deposit.
    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    expect(await sweepable(address)).toBe(7n * E17);
    await s.settleAll();
    expect(await native(address)).toBe(0n);
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    expect(await sweepable(address)).toBe(0n);

    // A later plain deposit is credited and swept in full.
    const hotBefore = await s.balanceOf(NATIVE, hotAccount(s.hot));
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: 2n * E17,
      gas: 21_000n,
    });
    await s.mine(3);
    await s.syncAndCredit();
    expect(await s.userCredited(NATIVE, "ivy")).toBe(9n * E17);
    expect(await sweepable(address)).toBe(2n * E17);
    const later = await s.sweeper.tick(CHAIN_ID);
    expect(later.started).toHaveLength(1);
    await s.settleAll();
    expect(await native(address)).toBe(0n);
    expect(await sweepable(address)).toBe(0n);
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBeGreaterThan(hotBefore);
    expect((await sweepableDrift(s.ctx.db.pool)).drift).toEqual([]);
  });
});
