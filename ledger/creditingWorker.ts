/**
 * The ledger's part of the `worker` role: deposit crediting (and reorg holds) on every `chain-facts`
 * doorbell and on a periodic sweep of Postgres (doorbells can be lost), plus expiry of timed-out holds.
 * Both are incremental: each chain's crediting watermark (ledger.crediting_watermarks) says which
 * blocks are done, so a pass reads only blocks above it, and refused deposits are parked aside;
 * the periodic sweep also re-reads one bounded window below it (the catch-up pass, chain config
 * `creditingCatchupBlocks`), so a fact that skipped the watermark is still credited.
 */
import type { Worker } from "bullmq";
import type { ChainConfig } from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Pool } from "../foundation/db.js";
import { startLoop } from "../foundation/loop.js";
import type { QueueFactory } from "../foundation/queues.js";
import { CHAIN_FACTS_QUEUE, type ChainFactsJob } from "../indexers/index.js";
import type { Ledger } from "./createLedger.js";
import {
  createDepositCrediting,
  DEFAULT_CATCHUP_BLOCKS,
  type DepositCrediting,
} from "./depositCrediting.js";

export type CreditingWorker = {
  crediting: DepositCrediting;
  /** One sweep of every chain and the hold expiry, now. */
  sweepOnce: () => Promise<void>;
  stop: () => Promise<void>;
};

export async function startCreditingWorker({
  common,
  pool,
  queues,
  ledger,
  chains,
  sweepIntervalMs = 5_000,
}: {
  common: Common;
  pool: Pool;
  queues: QueueFactory;
  ledger: Ledger;
  chains: readonly ChainConfig[];
  sweepIntervalMs?: number;
}): Promise<CreditingWorker> {
  const log = common.logger.child({ component: "ledger-worker" });
  await ledger.ensureAssetsFromConfig(chains);
  const catchup = new Map(chains.map((c) => [c.chainId, c.creditingCatchupBlocks]));
  const crediting = createDepositCrediting({
    common,
    pool,
    ledger,
    catchupBlocks: (chainId) => catchup.get(chainId) ?? DEFAULT_CATCHUP_BLOCKS,
  });
  const chainIds = new Set(chains.map((c) => c.chainId));

  // One sweep at a time: a doorbell during a sweep waits for it instead of racing it.
  let inFlight: Promise<void> = Promise.resolve();
  const serial = (fn: () => Promise<void>) => {
    const next = inFlight.then(fn, fn);
    inFlight = next.catch(() => {});
    return next;
  };
  const sweepChain = (chainId: number, range: { fromBlock?: number; toBlock?: number } = {}) =>
    serial(async () => {
      const r = await crediting.sweep({ chainId, ...range });
      if (r.credited + r.held + r.restored + r.finalized > 0)
        log.debug({ msg: "deposits swept", chain_id: chainId, ...range, ...r });
    });
  const sweepOnce = async () => {
    for (const chainId of chainIds) await sweepChain(chainId);
    await serial(async () => {
      await ledger.expireHolds();
    });
  };

  const worker: Worker<ChainFactsJob> = queues.worker<ChainFactsJob>(
    CHAIN_FACTS_QUEUE,
    async (job) => {
      // A doorbell for a chain this process does not serve is left to the periodic sweep elsewhere.
      // The doorbell's range is credited first; then the chain's watermark catches up to it (both
      // read only new blocks; the periodic sweep moves the watermark and retries parked deposits).
      const { chainId, fromBlock, toBlock } = job.data;
      if (chainIds.has(chainId)) await sweepChain(chainId, { fromBlock, toBlock });
    },
    { concurrency: 1 },
  );

  const loop = startLoop({
    name: "deposit sweep",
    intervalMs: sweepIntervalMs,
    logger: log,
    fn: sweepOnce,
  });

  return {
    crediting,
    sweepOnce,
    async stop() {
      await loop.stop();
      await worker.close();
      await inFlight;
      await ledger.close();
    },
  };
}
