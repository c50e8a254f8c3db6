/**
 * The reconciler role's per-chain loop (reconciliation runs, and attestations beside them): a pass
 * over the chains every interval until stopped, each chain's work under a Postgres advisory lock
 * (lock base + chain id) on its own connection, so of several reconciler processes one works a
 * chain at a time and the others skip it. The lock's connection is watched and closed after the
 * chain's turn (foundation/sessionLock.ts): one gone silent frees the chain for another reconciler
 * in ~3 × `lockLostAfterMs`, and this loop goes on instead of hanging on its unlock.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { withPooledSessionLock } from "../../foundation/sessionLock.js";

export function startLockedChainLoop<C extends ChainConfig>({
  pool,
  chains,
  lockBase,
  intervalMs,
  run,
  onError,
  afterPass,
  lockLostAfterMs,
  stopping = () => false,
  onStopped,
}: {
  pool: Pool;
  chains: readonly C[];
  lockBase: number;
  intervalMs: number;
  /**
   * One chain's work; skipped while another process holds the chain's lock. `held` aborts when
   * that lock is lost mid-run (another reconciler may then take the chain): the run must stop
   * before it stores anything as complete.
   */
  run: (chain: C, held: AbortSignal) => Promise<unknown>;
  /** A chain's error (the loop goes on); returns whether it fails the pass. */
  onError: (chain: C, error: unknown) => boolean;
  /** After each pass: whether every chain's run succeeded (or was skipped). */
  afterPass?: (ok: boolean) => void;
  /** The lock's connection silent this long counts the lock lost (foundation/sessionLock.ts). */
  lockLostAfterMs?: number;
  /**
   * The process is stopping (its `common.shutdown.isShuttingDown`). The service's stop aborts the
   * RPC client's signal before it stops the roles (ops/start.ts), so a run failing in between
   * failed for the stop: it goes to `onStopped`, not `onError` (no error line on a deploy), and
   * the loop ends.
   */
  stopping?: () => boolean;
  onStopped?: (chain: C, error: unknown) => void;
}): { stop(): Promise<void> } {
  const stop = new AbortController();

  async function runLocked(chain: C): Promise<void> {
    await withPooledSessionLock(
      pool,
      {
        key: "$1::bigint",
        params: [lockBase + chain.chainId],
        ...(lockLostAfterMs !== undefined ? { lostAfterMs: lockLostAfterMs } : {}),
      },
      (held) => run(chain, held),
    );
  }

  const loop = (async () => {
    while (!stop.signal.aborted) {
      let ok = true;
      for (const chain of chains) {
        if (stop.signal.aborted) break;
        try {
          await runLocked(chain);
        } catch (error) {
          if (stop.signal.aborted || stopping()) {
            onStopped?.(chain, error);
            return;
          }
          if (onError(chain, error)) ok = false;
        }
      }
      afterPass?.(ok);
      // Stopped during the pass: an abort listener added now would never fire, and the stop would
      // wait out the interval (a minute for reconciliation, maybe hours for attestation).
      if (stop.signal.aborted) break;
      // Its listener goes with the wait (one added per pass and never removed piled up for as
      // long as the task ran); a stop ends the wait at once.
      await sleep(intervalMs, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  })();

  return {
    async stop() {
      stop.abort();
      await loop;
    },
  };
}
