/**
 * The sweeps part of the `worker` role: a Postgres-driven pass per chain (./worker.ts) settles
 * sweeps and cold moves from the signer's outcomes and plans new sweeps every `sweepIntervalMs`.
 * It needs no Redis: a Redis outage or lost keys delay nothing here (the signer's doorbells are
 * its own business), and any number of workers can run.
 */
import { adapterPerChain } from "../../chains/index.js";
import { jobId } from "../../foundation/queues.js";
import type { RoleDefinition } from "../../foundation/roles.js";
import { createLedger } from "../../ledger/index.js";
import { createSweeper } from "./createSweeper.js";
import { unreadBalanceCounter } from "./unreadBalance.js";
import { startSweepWorker } from "./worker.js";

export const sweepsRole: RoleDefinition = {
  name: "worker",
  description: "sweeps: deposit addresses to the hot wallet, hot value above ceiling to cold",
  async start(ctx) {
    const ledger = createLedger({ common: ctx.common, pool: ctx.pool });
    unreadBalanceCounter(ctx.common);
    const adapterFor = adapterPerChain(ctx.common);
    const sweeper = createSweeper({
      common: ctx.common,
      pool: ctx.pool,
      ledger,
      chains: ctx.chains,
      hotWallets: ctx.common.config.hotWallets,
      adapterFor,
    });
    const worker = startSweepWorker({ common: ctx.common, sweeper, chains: ctx.chains });
    if (ctx.redis.status === "ready") {
      // Earlier versions rang each chain's sweeps from a BullMQ job scheduler; with no consumer
      // left its jobs would pile up in Redis. Best effort, never awaited: start never waits on Redis.
      for (const chain of ctx.chains) {
        ctx.queues
          .queue(`sweeps-${chain.chainId}`)
          .removeJobScheduler(jobId("sweep", chain.chainId))
          .catch(() => {});
      }
    }
    return {
      async stop() {
        await worker.stop();
        await ledger.close();
      },
    };
  },
};
