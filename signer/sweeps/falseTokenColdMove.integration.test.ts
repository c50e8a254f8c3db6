/**
 * A cold move of a listed token whose `transfer()` returns false instead of reverting (old
 * ERC-20s: paused, a blacklist that answers false), on the real stack (anvil, Postgres, Redis, KMS
 * emulator). The token is paused after a deposit was swept into the hot wallet: the move's
 * transaction mines with receipt status 1 and moves nothing. The signer reported it confirmed, then
 * finalized, without any Transfer to book it against: the move stayed open for ever, its hold
 * standing, and no later move of that token could start (one open move per asset), however far
 * above its ceiling the hot wallet grew. It fails at its final block (TRANSFER_MOVED_NOTHING): the
 * hold is voided, the gas booked, the failure counted (ColdMoveFailed); once the token is
 * unpaused, the next move after the retry window goes.
 */
import type { Address, Hex } from "viem";
import { encodeFunctionData } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { getTxOutcomes } from "../outcomes.js";
import { deployFalseToken, FALSE_TOKEN } from "../testing/falseToken.js";
import { waitFor } from "../testing/harness.js";
import { coldAccount, hotAccount } from "./bookings.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack } from "./testing/stack.js";

const COLD = "0x000000000000000000000000000000000000c01d" as const;

let s: SweepStack;
let abi: Awaited<ReturnType<typeof deployFalseToken>>;

beforeAll(async () => {
  s = await startSweepStack({
    reorgWindow: 8,
    coldAddress: COLD,
    nativeSweepThreshold: "1000000",
    tokens: [
      {
        address: FALSE_TOKEN,
        symbol: "FALSE",
        decimals: 18,
        sweepThreshold: "1",
        hotCeiling: "1000",
      },
    ],
  });
  abi = await deployFalseToken(s.rpc);
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

const tokenBalance = (holder: Address) =>
  s.h.client.readContract({
    address: FALSE_TOKEN,
    abi,
    functionName: "balanceOf",
    args: [holder],
  }) as Promise<bigint>;

function tokenCall(functionName: string, args: unknown[]) {
  return sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: FALSE_TOKEN,
    data: encodeFunctionData({ abi, functionName, args }),
  });
}

/** Mine, index and tick until `done`. */
function tickUntil<T>(what: string, done: () => Promise<T | undefined | false>) {
  return waitFor(
    what,
    async () => {
      await s.mine(1);
      await s.syncAndCredit();
      await s.sweeper.tick(CHAIN_ID);
      return done();
    },
    { timeoutMs: 90_000, everyMs: 100 },
  );
}

type MoveRow = { id: string; status: string; amount: bigint; final_at: Date | null };

async function moves(): Promise<MoveRow[]> {
  const { rows } = await s.ctx.db.pool.query<MoveRow>(
    "SELECT id, status, amount, final_at FROM custody.cold_moves ORDER BY created_at",
  );
  return rows;
}

async function failedCount(): Promise<number> {
  const m = await s.ctx.common.metrics.registry
    .getSingleMetric("custody_cold_moves_failed_total")
    ?.get();
  const asset = FALSE_TOKEN.toLowerCase();
  return (
    m?.values.find(
      (v) =>
        v.labels.chain_id === String(CHAIN_ID) && String(v.labels.asset).toLowerCase() === asset,
    )?.value ?? 0
  );
}

describe("a cold move of a token whose transfer() returns false", () => {
  it("moved nothing: failed at its final block, hold voided, counted; the next move goes once the token works", async () => {
    const address = await s.allocate("uma");
    await tokenCall("mint", [address, 10_000n]);
    await s.mine(2);
    await s.syncAndCredit();
    // Swept into the hot wallet; then the token is paused before anything leaves it.
    await tickUntil("deposit swept", async () => (await tokenBalance(s.hot)) === 10_000n);
    await tokenCall("setPaused", [true]);
    const counted = await failedCount();

    const first = await tickUntil("cold move requested", async () => (await moves())[0]);
    expect(first.amount).toBe(9_000n);
    // The signer's outcome is terminal (old code: finalized), then a few more passes settle it.
    await tickUntil("cold move's transaction final at the signer", async () => {
      const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [first.id] });
      return o?.status === "failed" || o?.status === "finalized";
    });
    for (let i = 0; i < 3; i++) {
      await s.mine(1);
      await s.sweeper.tick(CHAIN_ID);
    }
    const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [first.id] });
    expect(o).toMatchObject({ receiptSuccess: true, transferPosition: null });
    expect((await moves())[0]!.status).toBe("failed");
    expect(o).toMatchObject({ status: "failed", errorCode: "TRANSFER_MOVED_NOTHING" });
    expect(await failedCount()).toBe(counted + 1);
    // Nothing moved, and the ledger says so: the hold voided, the value still hot.
    expect(await tokenBalance(COLD)).toBe(0n);
    expect(await s.balanceOf(FALSE_TOKEN, hotAccount(s.hot))).toBe(10_000n);
    expect(await s.balanceOf(FALSE_TOKEN, coldAccount(COLD))).toBe(0n);

    // The token works again: after the retry window the next move goes and is booked.
    await tokenCall("setPaused", [false]);
    const next = await tickUntil("the next cold move booked and final", async () => {
      const m = (await moves())[1];
      return m?.status === "booked" && m.final_at !== null ? m : undefined;
    });
    expect(next.amount).toBe(9_000n);
    expect(await tokenBalance(COLD)).toBe(9_000n);
    expect(await s.balanceOf(FALSE_TOKEN, coldAccount(COLD))).toBe(9_000n);
    expect(await s.balanceOf(FALSE_TOKEN, hotAccount(s.hot))).toBe(await tokenBalance(s.hot));
  });
});
