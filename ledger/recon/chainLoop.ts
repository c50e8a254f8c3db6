/**
 * The reconciler role's per-chain loop (reconciliation runs, and attestations beside them): a pass
 * over the chains every interval until stopped, each chain's work under a Postgres advisory lock
 * (lock base + chain id) on its own connection, so of several reconciler processes one works a
 * chain at a time and the others skip it.
 */

import type { ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";

export function startLockedChainLoop<C extends ChainConfig>({
  pool,
  chains,
  lockBase,
  intervalMs,
  run,
  onError,
  afterPass,
}: {
  pool: Pool;
  chains: readonly C[];
  lockBase: number;
  intervalMs: number;
  /** One chain's work; skipped while another process holds the chain's lock. */
  run: (chain: C) => Promise<unknown>;
  /** A chain's error (the loop goes on); returns whether it fails the pass. */
  onError: (chain: C, error: unknown) => boolean;
  /** After each pass: whether every chain's run succeeded (or was skipped). */
  afterPass?: (ok: boolean) => void;
}): { stop(): Promise<void> } {
  const stop = new AbortController();

  async function runLocked(chain: C): Promise<void> {
    const client = await pool.connect();
    try {
      const lock = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
        lockBase + chain.chainId,
      ]);
      if (!lock.rows[0]?.ok) return;
      try {
        await run(chain);
      } finally {
        await client.query("SELECT pg_advisory_unlock($1)", [lockBase + chain.chainId]);
      }
    } finally {
      client.release();
    }
  }

  const loop = (async () => {
    while (!stop.signal.aborted) {
      let ok = true;
      for (const chain of chains) {
        if (stop.signal.aborted) break;
        try {
          await runLocked(chain);
        } catch (error) {
          if (onError(chain, error)) ok = false;
        }
      }
      afterPass?.(ok);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  })();

  return {
    async stop() {
      stop.abort();
      await loop;
    },
  };
}
