/**
 * The `reconciler` role: a run per served chain every interval. A Postgres advisory lock per chain
 * lets several reconciler processes run without two runs of one chain at once (the standby skips).
 */
import { registerRole } from "../../ops/roles.js";
import { NoFinalBlockError } from "./errors.js";
import { createReconciler } from "./reconcile.js";

export const RECON_INTERVAL_MS = 60_000;
/**
 * Scheduled runs stay this far behind the newest final block: deposit crediting books a fact
 * moments after it is confirmed, and a run in between would alert on a missing credit that heals
 * itself.
 */
export const RECON_GRACE_MS = 30_000;
const LOCK_BASE = 0x7265_636f_0000; // "reco" + chain id

registerRole({
  name: "reconciler",
  description: "scheduled reconciliation runs (chain facts and balances vs the ledger)",
  async start(ctx) {
    const log = ctx.common.logger.child({ component: "reconciler" });
    const reconciler = createReconciler({ common: ctx.common, pool: ctx.pool });
    const stop = new AbortController();
    let lastOk = Date.now();
    ctx.health.add({
      name: "reconciler",
      check: async () => {
        const stale = Date.now() - lastOk > RECON_INTERVAL_MS * 5;
        return stale ? { ok: false, detail: "no successful run in 5 intervals" } : { ok: true };
      },
    });

    async function runChain(chain: (typeof ctx.chains)[number]): Promise<void> {
      const client = await ctx.pool.connect();
      try {
        const lock = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
          LOCK_BASE + chain.chainId,
        ]);
        if (!lock.rows[0]?.ok) return;
        try {
          await reconciler.run({
            chain,
            graceBlocks: Math.ceil(RECON_GRACE_MS / chain.blockTimeMs),
          });
        } finally {
          await client.query("SELECT pg_advisory_unlock($1)", [LOCK_BASE + chain.chainId]);
        }
      } finally {
        client.release();
      }
    }

    const loop = (async () => {
      while (!stop.signal.aborted) {
        let ok = true;
        for (const chain of ctx.chains) {
          if (stop.signal.aborted) break;
          try {
            await runChain(chain);
          } catch (error) {
            if (error instanceof NoFinalBlockError) {
              log.info({ msg: "nothing final to reconcile yet", chain_id: chain.chainId });
            } else {
              ok = false;
              log.error({ msg: "reconciliation failed", chain_id: chain.chainId, err: error });
            }
          }
        }
        if (ok) lastOk = Date.now();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RECON_INTERVAL_MS);
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
        // A run in flight finishes (it is read-mostly and short); a kill -9 leaves it 'running',
        // which no later run depends on.
        await loop;
      },
    };
  },
});
