/**
 * Waiting on the local stack: poll a condition until it holds, and throw (naming what was awaited
 * and for how long) when a generous deadline passes. The demo's steps wait so, and it is the one way
 * integration tests wait (ops/testing/wait.ts): no test continues silently on a timeout, and no
 * test sleeps a fixed time to let something happen.
 */

export type WaitOptions = {
  /** Give up after this long (ms). Generous by default: a loaded CI machine is slow, not broken. */
  timeoutMs?: number;
  /** Pause between polls (ms). */
  everyMs?: number;
};

/** Resolves with the first truthy value `fn` returns; throws once `timeoutMs` has passed. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  { timeoutMs = 60_000, everyMs = 50 }: WaitOptions = {},
): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Resolves with `promise`, or throws when it has not settled within `timeoutMs`. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs = 60_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
