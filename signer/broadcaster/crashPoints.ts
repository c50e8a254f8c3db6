/**
 * Deterministic crash points for kill -9 tests (`SIGNER_CRASH_AT=after_sign:17`): the broadcaster
 * (and a hot wallet's deploy) calls `crash(point)` at each; the n-th pass of the configured point
 * kills the process at once (SIGKILL, nothing flushed), the same as a host dying there.
 */
import { writeSync } from "node:fs";
import type { Logger } from "../../foundation/logger.js";

export const CRASH_POINTS = [
  // intake: before KMS is asked, after the batch is signed, after nonces + bytes commit, after send
  "before_sign",
  "after_sign",
  "after_commit",
  "after_send",
  // a node refused an attempt for good and that is stored; the cancel is not signed yet
  "after_reject",
  // a cancel is stored; not sent yet
  "after_cancel_commit",
  // a hot wallet's contract deploy (signer/hotWalletDeploy.ts): its signed bytes are stored, not
  // sent yet; sent, its contract not recorded yet
  "deploy_after_commit",
  "deploy_after_send",
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];
export type CrashAt = { point: CrashPoint; count: number };

export function parseCrashAt(value: string | undefined): CrashAt | undefined {
  if (!value) return undefined;
  const m = /^([a-z_]+):(\d+)$/.exec(value);
  if (!m || !(CRASH_POINTS as readonly string[]).includes(m[1]!))
    throw new Error(
      `SIGNER_CRASH_AT must look like after_sign:17 (points: ${CRASH_POINTS.join(", ")}), got ${value}`,
    );
  return { point: m[1] as CrashPoint, count: Number(m[2]) };
}

/** A `crash(point)` function; a no-op unless `at` names the point. */
export function createCrashPoints(
  at: CrashAt | undefined,
  log: Pick<Logger, "warn">,
): (point: CrashPoint) => void {
  const counts = new Map<CrashPoint, number>();
  return (point) => {
    if (!at || at.point !== point) return;
    const n = (counts.get(point) ?? 0) + 1;
    counts.set(point, n);
    if (n === at.count) {
      log.warn({ msg: "crash point reached, killing the process", point, count: n });
      // The logger may still be flushing an earlier line: say it synchronously too, then die.
      writeSync(
        2,
        `${JSON.stringify({ msg: "crash point reached, killing the process", point, count: n })}\n`,
      );
      process.kill(process.pid, "SIGKILL");
    }
  };
}
