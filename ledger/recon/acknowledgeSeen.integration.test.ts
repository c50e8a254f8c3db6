/**
 * An operator acknowledges a break as a report printed it (`<run id>:<n>`): at the difference that
 * run found. A later run may already have found another difference for the same break (runs go on
 * every minute while the operator reads); acknowledging the old report must not silence it.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { transferId } from "../transferId.js";
import { acknowledgeBreak } from "./breakStates.js";
import { createReconciler, type Reconciler, type RunSummary } from "./reconcile.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const ETH = `${CHAIN_ID}:${ZERO}`;

let ctx: TestContext;
let pool: Pool;
let chain: ChainConfig;
let ledger: Ledger;
let reconciler: Reconciler;
let n = 0;

const deposit = (to: string, amount: bigint) =>
  ledger.transfer({
    id: transferId(`acknowledge test ${++n}`),
    assetId: ETH,
    debit: "custody:deposits",
    credit: `user:${to}`,
    amount,
    kind: "manual",
  });

/** The run's solvency break and its number in the run's report. */
const shortfall = (run: RunSummary) => {
  const i = run.breaks.findIndex((b) => b.type === "solvency_shortfall" && b.assetId === ETH);
  expect(i).toBeGreaterThanOrEqual(0);
  return { n: i, break: run.breaks[i]! };
};

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  pool = ctx.db.pool;
  chain = { ...ctx.config.chains[0]!, confirmations: { kind: "blocks", blocks: 0 } };
  ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig([chain]);
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, 1, $2)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number`,
    [CHAIN_ID, `0x${"1".padStart(64, "0")}`],
  );
  reconciler = createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool,
    chains: adapterPerChain(ctx.common),
  });
});

afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

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
});
