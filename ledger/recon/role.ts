/**
 * The `reconciler` role: a run per served chain every interval. A Postgres advisory lock per chain
 * (runLock.ts, also `custody-node reconcile`'s) lets several reconciler processes run without two
 * runs of one chain at once (the standby skips).
 */
import type { RoleDefinition } from "../../foundation/roles.js";
import { startLockedChainLoop } from "./chainLoop.js";
import { NoFinalBlockError, RunLockLostError } from "./errors.js";
import { createReconciler, exportStoredBreaks } from "./reconcile.js";
import { RECON_LOCK_BASE } from "./runLock.js";
import type { ReconSources } from "./sources.js";

export const RECON_INTERVAL_MS = 60_000;
/**
 * Scheduled runs stay this far behind the newest final block: deposit crediting books a fact
 * moments after it is confirmed, and a run in between would alert on a missing credit that heals
 * itself.
 */
export const RECON_GRACE_MS = 30_000;

/** The role, given what reconciliation reads from modules above it (by the composition root). */
export const reconcilerRole = (sources: ReconSources): RoleDefinition => ({
  name: "reconciler",
  description: "scheduled reconciliation runs (chain facts and balances vs the ledger)",
  async start(ctx) {
    const log = ctx.common.logger.child({ component: "reconciler" });
    const reconciler = createReconciler({
      common: ctx.common,
      pool: ctx.pool,
      sweeps: sources.sweeps,
      chains: sources.chains(ctx.common),
    });
    let lastOk = Date.now();
    ctx.health.add({
      name: "reconciler",
      check: async () => {
        const stale = Date.now() - lastOk > RECON_INTERVAL_MS * 5;
        return stale ? { ok: false, detail: "no successful run in 5 intervals" } : { ok: true };
      },
    });

    // The break gauges (ReconciliationBreaksOpen) read the stored break states at each scrape:
    // breaks found by runs elsewhere (the CLI's) and operators' acknowledgements show at once.
    const unexport = exportStoredBreaks(ctx.common, { pool: ctx.pool, chains: ctx.chains });

    // A run in flight finishes when stopped (it is read-mostly and short); a kill -9 leaves it
    // 'running', which no later run depends on.
    const loop = startLockedChainLoop({
      pool: ctx.pool,
      chains: ctx.chains,
      lockBase: RECON_LOCK_BASE,
      intervalMs: RECON_INTERVAL_MS,
      // A run whose chain lock is lost stops (`held`): another reconciler may have the chain.
      run: (chain, held) =>
        reconciler.run({
          chain,
          graceBlocks: Math.ceil(RECON_GRACE_MS / chain.blockTimeMs),
          signal: held,
        }),
      // The run logs its own interruption (reconcile.ts).
      stopping: ctx.common.shutdown.isShuttingDown,
      onError: (chain, error) => {
        if (error instanceof NoFinalBlockError) {
          log.info({
            msg: "nothing final to reconcile yet",
            chain_id: chain.chainId,
            reason: error.details,
          });
          return false;
        }
        if (error instanceof RunLockLostError) {
          log.warn({ msg: "reconciliation run stopped: the chain's lock was lost", err: error });
          return true;
        }
        log.error({ msg: "reconciliation failed", chain_id: chain.chainId, err: error });
        return true;
      },
      afterPass: (ok) => {
        if (ok) lastOk = Date.now();
      },
    });
    return {
      async stop() {
        await loop.stop();
        unexport();
      },
    };
  },
});
