/**
 * A simulation scenario: given a seed, build a world, drive it through a seeded schedule of work,
 * faults and reorgs, let it settle, and check invariants. A broken invariant is a `Violation` in
 * the result (never a throw), so the runner can print every one and the command that replays it.
 */
import type { SimRun } from "./harness.js";

export type Violation = {
  /** Which invariant broke (stable names, e.g. "balances", "no-double-credit"). */
  invariant: string;
  detail: string;
};

export type SimResult = {
  seed: number;
  violations: Violation[];
  /** What the schedule did (counts, reorg depths...), for the summary line. */
  stats: Record<string, number | string>;
  /** Seed-level notes (e.g. why a step was skipped); not failures. */
  notes: string[];
  ms: number;
};

export type ScenarioOptions = {
  /** Keep the seed's database after a failure (its name is printed). */
  keepOnFailure?: boolean;
  /**
   * Break the product on purpose before the checks (tests prove the invariants can fail):
   * "double-credit" (deposits) books a second credit for one real deposit; "double-pay"
   * (withdrawals) pays one withdrawal's destination a second time from another account;
   * "release-early" (withdrawals) releases the dead withdrawal's hold before it has failed;
   * "double-sweep" (sweeps) books one booked sweep's (address, asset) a second time.
   */
  sabotage?: "double-credit" | "double-pay" | "release-early" | "double-sweep" | "reverted-send";
  /** Print each step as it runs. */
  trace?: (line: string) => void;
};

export type Scenario = {
  name: string;
  description: string;
  run: (seed: number, run: SimRun, options: ScenarioOptions) => Promise<SimResult>;
};

/** Poll `read` until `ok`, or throw after `timeoutMs` with `what` in the message. */
export async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!ok(value)) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
    value = await read();
  }
  return value;
}
