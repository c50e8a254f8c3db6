/**
 * One chain's ingestor, composed from the stages in indexers/sync/ (ponder's sync-historical /
 * sync-realtime split): `fetchRange` (blocks, logs, receipts, traces), `commitRange` (one
 * transaction per range with the checkpoint and the published finalized block), `reorg` (common
 * ancestor, orphaning above finality, halting at it), `backfill` (concurrent ranges committed in
 * order), `realtime` (one `latest` poll per pass, new heads over WS) and `loop` (lease, halts,
 * waiting when no endpoint is healthy). `syncOnce` is one pass; `start` runs passes until stopped.
 */
import type { EvmAdapter } from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Pool } from "../foundation/db.js";
import { unhealthyReasons } from "./health.js";
import { registerIndexerSource } from "./metrics.js";
import {
  createSyncContext,
  type FactsDoorbell,
  type IngestorOptions,
  type IngestorStatus,
} from "./sync/context.js";
import { createIngestLoop } from "./sync/loop.js";
import { createWatchedSet, type WatchedSet } from "./watched.js";

export type { FactsDoorbell, IngestorOptions, IngestorStatus } from "./sync/context.js";

export type Ingestor = {
  syncOnce: () => Promise<void>;
  start: () => void;
  stop: () => Promise<void>;
  status: () => IngestorStatus;
  /** It is the chain's writer now: it holds the lease, or runs no loop (syncOnce: tests, tools). */
  writes: () => boolean;
  watched: WatchedSet;
};

export async function createIngestor({
  common,
  pool,
  adapter,
  doorbell,
  options = {},
}: {
  common: Common;
  pool: Pool;
  adapter: EvmAdapter;
  doorbell?: FactsDoorbell;
  options?: IngestorOptions;
}): Promise<Ingestor> {
  const chain = adapter.chain;
  const logger = common.logger.child({ component: "indexer", chain_id: chain.chainId });
  const watched = await createWatchedSet({ pool, chainId: chain.chainId, logger });
  let stopping = false;
  const ctx = createSyncContext({
    common,
    pool,
    adapter,
    watched,
    doorbell,
    options,
    // A process stop aborts the shutdown signal first, and every RPC call with it (the adapter's),
    // before the roles' stop callbacks run: a pass failing with the abort is the stop, not a
    // failure to log and retry.
    stopping: () => stopping || common.shutdown.isShuttingDown(),
  });
  // Polling: paced by the block time from each pass's start (sync/loop.ts), about one `latest`
  // poll a block. With a WS URL, new heads wake the loop at once and polling is only the backstop.
  const pollIntervalMs =
    options.pollIntervalMs ??
    (chain.wsUrl ? Math.max(1000, chain.blockTimeMs * 2) : Math.max(100, chain.blockTimeMs));
  const loop = createIngestLoop(ctx, pollIntervalMs, () => {
    stopping = true;
  });
  // The gauges read this instance at each scrape (indexers/metrics.ts) while it runs. Once started,
  // it writes the chain only while it holds the lease: a standby, or a task whose lease connection
  // died, knows nothing current of the chain and exports none of the writer's gauges. Without a
  // loop (syncOnce: tests and tools) it writes whenever asked.
  let started = false;
  const writes = () => ctx.state.leaseHeld || !started;
  const unregister = registerIndexerSource(common.metrics.registry, chain.chainId, {
    reasons: () =>
      writes() ? unhealthyReasons(chain, ctx.state, Date.now()).map((f) => f.reason) : [],
    leaseHeld: () => ctx.state.leaseHeld,
    writer: () =>
      writes()
        ? {
            halted: ctx.state.halted !== null,
            noHealthyEndpoint: ctx.state.noHealthyEndpoint !== null,
            head: ctx.state.head,
            indexed: ctx.state.indexed,
            ...ctx.observed,
          }
        : null,
  });
  return {
    syncOnce: loop.syncOnce,
    watched,
    start() {
      started = true;
      loop.start();
    },
    async stop() {
      await loop.stop();
      unregister();
      await watched.stop();
    },
    status: () => ({ ...ctx.state }),
    writes,
  };
}
