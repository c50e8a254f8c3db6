/**
 * The sweep schedule, driven from Postgres with no Redis in the path: per chain, one in-process
 * periodic pass (foundation/loop.ts) settles what the signer finished every `settleEveryMs` and plans new
 * sweeps every `sweepIntervalMs`. What to settle and what to sweep is read from Postgres on every
 * pass (open sweeps and their signer outcomes, ledger credits, back-offs), so a pass after a crash,
 * a Redis restart or a deleted queue finishes whatever was owed: nothing is scheduled in Redis that
 * could go missing. Any number of workers may run: planning holds a per-chain advisory lock and
 * settlement a row lock with deterministic ledger ids.
 */

import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Loop, startLoop } from "../../foundation/loop.js";
import type { Sweeper } from "./createSweeper.js";

export type SweepWorker = { stop: () => Promise<void> };

export function startSweepWorker({
  common,
  sweeper,
  chains,
  settleEveryMs = 1000,
}: {
  common: Common;
  sweeper: Sweeper;
  chains: readonly ChainConfig[];
  /** How often open sweeps are checked against the signer's outcomes (default 1 s). */
  settleEveryMs?: number;
}): SweepWorker {
  const log = common.logger.child({ component: "sweeps" });
  const loops: Loop[] = chains.map((chain) => {
    // Plans at start, then every sweepIntervalMs; a failed planning pass retries on the next pass.
    let planAt = 0;
    return startLoop({
      name: `sweeps ${chain.chainId}`,
      intervalMs: Math.min(settleEveryMs, chain.sweepIntervalMs),
      logger: log,
      // Its balance reads go through the RPC client the process's stop aborts first.
      stopping: common.shutdown.isShuttingDown,
      async fn() {
        if (Date.now() < planAt) {
          await sweeper.settle(chain.chainId);
          return;
        }
        const r = await sweeper.tick(chain.chainId);
        planAt = Date.now() + chain.sweepIntervalMs;
        log.debug({
          msg: "sweep tick",
          chain_id: chain.chainId,
          settled: r.settled.length,
          started: r.started.length,
          cold_started: r.coldStarted.length,
          cold_settled: r.coldSettled.length,
        });
      },
    });
  });
  return {
    async stop() {
      await Promise.all(loops.map((l) => l.stop()));
    },
  };
}
