/**
 * The sweeps part of the `worker` role: a BullMQ job scheduler per chain rings `sweeps-<chainId>`
 * every `sweepIntervalMs`; one job runs at a time per process and each step takes its own locks,
 * so any number of workers can run. Settlement does not depend on the `tx-outcomes` doorbell:
 * every tick re-reads the signer's request rows.
 */
import { createEvmAdapter, type EvmAdapter } from "../../chains/index.js";
import { createLedger } from "../../ledger/index.js";
import type { ChainConfig } from "../../ops/config.js";
import { jobId } from "../../ops/queues.js";
import { registerRole } from "../../ops/roles.js";
import { createSweeper } from "./createSweeper.js";

/** BullMQ queue of one chain's sweep ticks. */
export function sweepsQueueName(chainId: number): string {
  return `sweeps-${chainId}`;
}

registerRole({
  name: "worker",
  description: "sweeps: deposit addresses to the hot wallet, hot value above ceiling to cold",
  async start(ctx) {
    const log = ctx.common.logger.child({ component: "sweeps" });
    const ledger = createLedger({ common: ctx.common, pool: ctx.pool });
    const adapters = new Map<number, EvmAdapter>();
    const adapterFor = (chain: ChainConfig) => {
      let a = adapters.get(chain.chainId);
      if (!a) {
        a = createEvmAdapter(chain, { common: ctx.common });
        adapters.set(chain.chainId, a);
      }
      return a;
    };
    const sweeper = createSweeper({
      common: ctx.common,
      pool: ctx.pool,
      ledger,
      chains: ctx.chains,
      adapterFor,
    });
    // A queue per chain: a process only consumes the chains it serves (--chains).
    const workers = ctx.chains.map((chain) => {
      const name = sweepsQueueName(chain.chainId);
      return {
        chain,
        worker: ctx.queues.worker<{ chainId: number }>(
          name,
          async () => {
            const r = await sweeper.tick(chain.chainId);
            log.debug({
              msg: "sweep tick",
              chain_id: chain.chainId,
              settled: r.settled.length,
              started: r.started.length,
              cold_started: r.coldStarted.length,
              cold_settled: r.coldSettled.length,
            });
          },
          { concurrency: 1 },
        ),
        queue: ctx.queues.queue<{ chainId: number }>(name),
      };
    });
    for (const { chain, queue } of workers) {
      await queue.upsertJobScheduler(
        jobId("sweep", chain.chainId),
        { every: chain.sweepIntervalMs },
        { name: "tick", data: { chainId: chain.chainId }, opts: { attempts: 1 } },
      );
    }
    return {
      async stop() {
        await Promise.all(workers.map((w) => w.worker.close()));
        await ledger.close();
      },
    };
  },
});
