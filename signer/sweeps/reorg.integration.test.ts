import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { hotAccount } from "./bookings.js";
import { CHAIN_ID, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";
import { sweepableDrift } from "./testing/sweepable.js";

let s: SweepStack;

beforeAll(async () => {
  // Confirmed after 2 blocks, final after 8 (the reorg window).
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

async function sweepRow(id: string) {
  const { rows } = await s.ctx.db.pool.query(
    "SELECT status, booked_generation, final_at IS NOT NULL AS final, tx_hash FROM custody.sweeps WHERE id = $1",
    [id],
  );
  return rows[0] as { status: string; booked_generation: number; final: boolean; tx_hash: string };
}

// The running sweepable balances the planner reads agree with history after every scenario
// (credits, sweeps booked, failed, reorged out and booked again).
afterEach(async () => {
  const { drift, pairs } = await sweepableDrift(s.ctx.db.pool);
  expect(drift).toEqual([]);
  expect(pairs).toBeGreaterThan(0);
});

describe("a booked sweep reorged out", () => {
  it("is unbooked, booked again once when it mines again, and followed until final", async () => {
    const amount = 9n * 10n ** 17n;
    const address = await s.creditedDeposit("reorg-booked", amount);
    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    const id = tick.started[0]!.id;
    // Mine one block at a time until it is booked: confirmed (2 blocks), far from final (8).
    await waitFor(
      "sweep booked",
      async () => {
        await s.sweeper.tick(CHAIN_ID);
        if ((await sweepRow(id)).status === "booked") return true;
        await s.mine(1);
        return false;
      },
      { everyMs: 200 },
    );
    const booked = await sweepRow(id);
    expect(booked).toMatchObject({ status: "booked", booked_generation: 0, final: false });
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    const [before] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [id] });

    // Take the sweep's block (and the ones on top) out; the signer re-sends the same bytes.
    const depth = Number((await s.h.client.getBlockNumber()) - before!.blockNumber!) + 1;
    await s.rpc("anvil_reorg", [depth, []]);
    const unbooked = await waitFor(
      "booking reversed",
      async () => {
        await s.sweeper.tick(CHAIN_ID);
        const { rows } = await s.ctx.db.pool.query(
          "SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'compensation' AND memo LIKE $1",
          [`sweep ${id} %`],
        );
        return rows[0].n > 0 ? rows[0].n : undefined;
      },
      { everyMs: 200 },
    );
    expect(unbooked).toBe(1);

    // Mined again (same bytes), confirmed again, booked again with the new generation, then final.
    await waitFor(
      "final again",
      async () => {
        await s.mine(1);
        await s.sweeper.tick(CHAIN_ID);
        return (await sweepRow(id)).final;
      },
      { timeoutMs: 90_000, everyMs: 200 },
    );
    const after = await sweepRow(id);
    expect(after.status).toBe("booked");
    expect(after.booked_generation).toBeGreaterThanOrEqual(1);
    const [outcome] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [id] });
    expect(outcome!.status).toBe("finalized");
    expect(outcome!.txHash).toBe(before!.txHash);
    expect(await s.h.client.getBalance({ address })).toBe(0n);

    // Net ledger: swept once, gas once; the reversed booking nets to zero.
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    expect(await s.balanceOf(NATIVE, "fees:gas")).toBe(outcome!.fee! + s.deployGas);
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(amount - outcome!.fee! - s.deployGas);
    const { rows } = await s.ctx.db.pool.query(
      `SELECT kind, count(*)::int AS n FROM ledger.transfers
       WHERE memo LIKE $1 GROUP BY kind ORDER BY kind`,
      [`%sweep ${id}%`],
    );
    expect(rows).toEqual([
      { kind: "compensation", n: 2 },
      { kind: "fee", n: 2 },
      { kind: "sweep", n: 2 },
    ]);
  });
});
