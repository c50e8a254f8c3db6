/**
 * The per-chain lock every reconciliation run is made under: a Postgres session advisory lock
 * (RECON_LOCK_BASE + chain id) that the reconciler role's loop takes (skipping a chain another
 * process holds) and `custody-node reconcile` waits for. One run of a chain at a time: a run whose
 * snapshot is older completing after a newer one would reopen what the newer one resolved.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { withPooledSessionLock } from "../../foundation/sessionLock.js";

/** "reco" + chain id (docs/runbooks/ReconciliationStale.md names it for `pg_locks`). */
export const RECON_LOCK_BASE = 0x7265_636f_0000;

/** How often a waiting run asks for the lock again. */
const WAIT_POLL_MS = 500;

/**
 * `turn` under the chain's reconciliation lock, waiting while another session holds it (the
 * role's run, another operator's `reconcile`): `onWait` once, when the first try finds it held.
 * `held` aborts when the lock is lost mid-turn (pass it to the run: it stops, stored failed).
 */
export async function withChainRunLock<T>(
  pool: Pool,
  chain: Pick<ChainConfig, "chainId">,
  turn: (held: AbortSignal) => Promise<T>,
  options: { onWait?: () => void; pollMs?: number } = {},
): Promise<T> {
  let told = false;
  for (;;) {
    const done = await withPooledSessionLock(
      pool,
      { key: "$1::bigint", params: [RECON_LOCK_BASE + chain.chainId] },
      turn,
    );
    if (done) return done.value;
    if (!told) options.onWait?.();
    told = true;
    await sleep(options.pollMs ?? WAIT_POLL_MS);
  }
}
