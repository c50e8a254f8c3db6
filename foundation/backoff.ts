/**
 * The one exponential backoff: how long to wait before the next try. Pure; the caller sleeps.
 *
 * `attempt` counts doublings from 0 (the first wait is `baseMs`), capped at `maxDoublings`; the
 * wait is capped at `maxMs`. Jitter spreads many clients backing off together:
 * - `"none"`: exactly the capped wait (a cooldown that must be predictable);
 * - `"full"`: uniform in [0, wait) (AWS's "full jitter": retries that must not run in lockstep);
 * - `"equal"`: uniform in [wait / 2, wait) (never much shorter than the schedule).
 */
export type BackoffOptions = {
  baseMs: number;
  /** Cap on the wait before jitter. Default: none. */
  maxMs?: number;
  /** Cap on the exponent. Default 30, which keeps 2 ** attempt finite. */
  maxDoublings?: number;
  jitter?: "none" | "full" | "equal";
};

export function backoffMs(
  attempt: number,
  { baseMs, maxMs = Number.POSITIVE_INFINITY, maxDoublings = 30, jitter = "none" }: BackoffOptions,
  random: () => number = Math.random,
): number {
  const wait = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), maxDoublings));
  if (jitter === "full") return random() * wait;
  if (jitter === "equal") return wait * (0.5 + random() / 2);
  return wait;
}
