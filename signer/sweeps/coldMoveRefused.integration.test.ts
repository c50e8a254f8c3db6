/**
 * A cold move the signer refuses before a nonce is taken (here the cold address is a contract that
 * reverts on receiving ETH, so the move's gas estimate reverts) is voided, and the (chain, hot
 * wallet, asset) then waits out the back-off sweeps use for failed sweeps before a new move is
 * requested: the cause is still there at the next tick, and a move every sweep interval would only
 * pile up rows and hold/void transfers (2,880 a day at the 30 s default). Each failed move is
 * counted (custody_cold_moves_failed_total, the ColdMoveFailed alert): the value above the ceiling
 * stays hot meanwhile, and the custody team is told. Real anvil, Postgres, Redis, KMS emulator,
 * indexer, crediting, signer.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { assetIdOf } from "../../ledger/index.js";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { coldAccount, hotAccount } from "./bookings.js";
import { createSweeper } from "./createSweeper.js";
import {
  CHAIN_ID,
  DEPOSITOR,
  NATIVE,
  type SweepStack,
  startSweepStack,
  TOKEN,
} from "./testing/stack.js";

const NATIVE_CEILING = 5n * 10n ** 17n;

let s: SweepStack;

beforeAll(async () => {
  // The test token has no receive or fallback function: ETH sent to it reverts.
  s = await startSweepStack({
    nativeSweepThreshold: "1000",
    nativeHotCeiling: NATIVE_CEILING.toString(),
    coldAddress: TOKEN,
  });
  await s.deployToken();
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

type MoveRow = { id: string; status: string; amount: bigint };

async function coldMoves(): Promise<MoveRow[]> {
  const { rows } = await s.ctx.db.pool.query<MoveRow>(
    "SELECT id, status, amount FROM custody.cold_moves ORDER BY created_at",
  );
  return rows;
}

/** custody_cold_moves_failed_total of the chain's native asset; undefined: no such series. */
async function failedMovesCounted(): Promise<number | undefined> {
  const metric = await s.ctx.common.metrics.registry
    .getSingleMetric("custody_cold_moves_failed_total")
    ?.get();
  return metric?.values.find(
    (v) => v.labels.chain_id === String(CHAIN_ID) && v.labels.asset === NATIVE,
  )?.value;
}

describe("a cold move refused before a nonce", () => {
  it("is voided, and no new move of that asset is requested until the retry window has passed", async () => {
    // Named at 0 before any failure: the alert's increase() sees the first one too.
    expect(await failedMovesCounted()).toBe(0);
    const address = await s.allocate("cold-refused");
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: 2n * 10n ** 18n,
      gas: 21_000n,
    });
    await s.mine(2);
    await s.syncAndCredit();
    await s.sweeper.tick(CHAIN_ID);
    await s.settleAll();
    // Native value is moved only once the sweep that brought it is final.
    await s.sweepsFinal();
    await s.sweeper.tick(CHAIN_ID);

    // A sweeper whose retry window cannot pass during the test.
    const { adapter } = s.sweeperOn(s.ctx.config.chains[0]!.rpcUrls);
    const patient = createSweeper({
      common: s.ctx.common,
      pool: s.ctx.db.pool,
      ledger: s.ledger,
      chains: s.ctx.config.chains,
      hotWallets: s.hotWallets,
      adapterFor: () => adapter,
      failedRetryAfterMs: 3_600_000,
    });
    const first = await waitFor(
      "cold move failed",
      async () => {
        await patient.tick(CHAIN_ID);
        return (await coldMoves()).find((m) => m.status === "failed");
      },
      { timeoutMs: 60_000, everyMs: 200 },
    );
    const [outcome] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [first.id] });
    expect(outcome).toMatchObject({ status: "failed", errorCode: "ESTIMATE_REVERTED" });
    // The value stays hot: counted once, for the alert (ColdMoveFailed).
    expect(await failedMovesCounted()).toBe(1);

    // The cause is still there: within the window, ticks (the one that voided it among them)
    // request nothing more.
    expect((await coldMoves()).map((m) => m.id)).toEqual([first.id]);
    for (let i = 0; i < 3; i++) {
      expect((await patient.tick(CHAIN_ID)).coldStarted).toEqual([]);
    }
    expect((await coldMoves()).map((m) => m.id)).toEqual([first.id]);
    expect(await failedMovesCounted()).toBe(1);
    const { rows: transfers } = await s.ctx.db.pool.query<{ type: string }>(
      "SELECT type FROM ledger.transfers WHERE kind = 'cold_move' ORDER BY seq",
    );
    expect(transfers.map((t) => t.type)).toEqual(["pending", "void"]);
    // The hold is voided: the hot wallet's value is available again, nothing reached cold.
    expect(await s.balanceOf(NATIVE, coldAccount(TOKEN))).toBe(0n);
    const hot = await s.ledger.getAccount({
      assetId: assetIdOf(CHAIN_ID, NATIVE),
      name: hotAccount(s.hot),
    });
    expect(hot!.creditsPending).toBe(0n);

    // Once the window has passed (the stack's sweeper waits 1.5 s), the move is requested again.
    const again = await waitFor(
      "cold move requested again",
      async () => {
        const { coldStarted } = await s.sweeper.tick(CHAIN_ID);
        return coldStarted[0];
      },
      { timeoutMs: 30_000, everyMs: 200 },
    );
    expect(again.id).not.toBe(first.id);
    expect(again.amount).toBe(first.amount);
  });
});
