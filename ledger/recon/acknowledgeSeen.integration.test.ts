/**
 * An operator acknowledges a break as a report printed it (`<run id>:<n>`): at the difference that
 * run found. A later run may already have found another difference for the same break (runs go on
 * every minute while the operator reads); acknowledging or resolving the old report must not
 * silence it.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { transferId } from "../transferId.js";
import { acknowledgeBreak, resolveBreak } from "./breakStates.js";
import type { Reconciler, RunSummary } from "./reconcile.js";
import { ETH, type LedgerOnlyRecon, startLedgerOnlyRecon } from "./testing/ledgerOnly.js";

let recon: LedgerOnlyRecon;
let pool: Pool;
let chain: ChainConfig;
let reconciler: Reconciler;

/** The run's solvency break and its number in the run's report. */
const shortfall = (run: RunSummary) => {
  const i = run.breaks.findIndex((b) => b.type === "solvency_shortfall" && b.assetId === ETH);
  expect(i).toBeGreaterThanOrEqual(0);
  return { n: i, break: run.breaks[i]! };
};

beforeAll(async () => {
  recon = await startLedgerOnlyRecon("acknowledge test");
  ({ pool, chain, reconciler } = recon);
});

afterAll(async () => {
  await recon?.close();
});

const deposit = (to: string, amount: bigint) => recon.deposit(to, amount);

describe("acknowledging a break from a run's report", () => {
  it("does not acknowledge a difference a later run found: that break still alerts", async () => {
    await deposit("alice", 500n);
    const first = await reconciler.run({ chain });
    const seen = shortfall(first);
    expect(seen.break.difference).toBe(-500n);
    // Another 300 goes missing; the next run finds the same break at another difference.
    await deposit("bob", 300n);
    const second = await reconciler.run({ chain });
    expect(shortfall(second).break.difference).toBe(-800n);
    // The operator acknowledges what the first run's report showed them, after the second ran.
    await expect(
      acknowledgeBreak(pool, {
        ref: `${first.runId}:${seen.n}`,
        by: "ops-ann",
        reason: "the 500 is known",
      }),
    ).rejects.toMatchObject({ code: "RECON_BREAK_STATE" });
    const third = await reconciler.run({ chain });
    const now = shortfall(third);
    expect(now.break.difference).toBe(-800n);
    expect(now.break.state).toBe("open");
    // Named from the latest run's report, it is acknowledged, and the next run does not alert.
    const acked = await acknowledgeBreak(pool, {
      ref: `${third.runId}:${now.n}`,
      by: "ops-ann",
      reason: "the 800 is known",
    });
    expect([acked.state, acked.acknowledgedDifference]).toEqual(["acknowledged", "-800"]);
    expect(shortfall(await reconciler.run({ chain })).break.state).toBe("acknowledged");
  });

  it("does not resolve a difference a later run found: that break stays open", async () => {
    // The same solvency break, at whatever difference the first case left it.
    const before = await reconciler.run({ chain });
    const base = shortfall(before).break.difference;
    await deposit("carol", 200n);
    const first = await reconciler.run({ chain });
    const seen = shortfall(first);
    expect(seen.break.difference).toBe(base - 200n);
    await deposit("dave", 100n);
    const second = await reconciler.run({ chain });
    expect(shortfall(second).break.difference).toBe(base - 300n);
    // The operator resolves what the first run's report showed, linking the carol deposit.
    const fix = transferId("acknowledge test deposit 3");
    await expect(
      resolveBreak(pool, {
        ref: `${first.runId}:${seen.n}`,
        by: "ops-ann",
        reason: "carol's 200 was booked twice",
        fixedBy: fix,
      }),
    ).rejects.toMatchObject({ code: "RECON_BREAK_STATE" });
    const third = await reconciler.run({ chain });
    expect(shortfall(third).break.state).not.toBe("resolved");
    // Named from the latest run's report, it resolves.
    const resolved = await resolveBreak(pool, {
      ref: `${third.runId}:${shortfall(third).n}`,
      by: "ops-ann",
      reason: "both booked twice",
      fixedBy: fix,
    });
    expect(resolved.state).toBe("resolved");
  });
});
