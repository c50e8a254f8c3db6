/**
 * The withdrawals simulation on fixed seeds (CI): the withdrawal service and the real signer (KMS
 * emulator) through a seeded schedule of null receipts, disagreeing backends, a flaky primary, KMS
 * signing failures, reorgs of the hot wallet's transactions and kill -9 of the signer; every
 * invariant must hold. Long runs: `npm run sim -- withdrawals --seeds 200`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSimRun, type SimRun } from "./harness.js";
import { replayCommand } from "./run.js";
import type { SimResult } from "./scenario.js";
import { runWithdrawals } from "./withdrawals.js";

let run: SimRun;

beforeAll(async () => {
  run = await createSimRun();
});

afterAll(async () => {
  await run?.close();
});

function report(r: SimResult): string {
  return [
    `seed ${r.seed}: ${JSON.stringify(r.stats)}`,
    ...r.violations.map((v) => `${v.invariant}: ${v.detail}`),
    `replay: ${replayCommand("withdrawals", r.seed)}`,
  ].join("\n");
}

describe("withdrawals simulation", () => {
  // 3: a reorg and KMS Sign failures, signer in process; 5: the signer runs as a child process and
  // is killed with SIGKILL, with four reorgs of its transactions.
  for (const seed of [3, 5]) {
    it(`seed ${seed} keeps every invariant`, async () => {
      const result = await runWithdrawals(seed, run);
      expect(result.violations, report(result)).toEqual([]);
      expect(Number(result.stats.withdrawals)).toBeGreaterThan(0);
      expect(Number(result.stats.reorgs)).toBeGreaterThan(0);
      if (seed === 3) expect(Number(result.stats.kms_failed)).toBeGreaterThan(0);
      if (seed === 5) expect(Number(result.stats.kills)).toBeGreaterThan(0);
    });
  }

  it("reports a planted second payment (the invariants can fail)", async () => {
    const result = await runWithdrawals(4, run, { sabotage: "double-pay" });
    const paid = result.violations.filter((v) => v.invariant === "paid-once");
    expect(paid.map((v) => v.detail).join("\n")).toMatch(/paid more than once/);
    expect(result.violations.map((v) => v.invariant)).toContain("holds");
  });
});
