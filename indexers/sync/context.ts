/**
 * What every sync stage of one chain's ingestor shares: its dependencies (pool, adapter, watched
 * set), the chain's rules, the status the health check reads, and the few observers that keep
 * metrics and status in step. Built once by `createIngestor`, passed down (ponder's `Common` idea).
 */
import type { Address } from "viem";
import type { ChainConfig, ConfirmationRule } from "../../chains/index.js";
import { bloomBits, type EvmAdapter, TRANSFER_TOPIC } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import type { Logger } from "../../foundation/logger.js";
import { LOCK_LOST_AFTER_MS } from "../../foundation/sessionLock.js";
import { type FinalizedBlock, finalityRule } from "../finality.js";
import { DEPTH_BUCKETS, type IndexerMetrics, indexerMetrics } from "../metrics.js";
import type { StatusChange, Tip } from "../store.js";
import type { WatchedSet } from "../watched.js";

/** Rung after a commit that confirmed or orphaned facts (the `chain-facts` doorbell). */
export type FactsDoorbell = (range: {
  chainId: number;
  fromBlock: bigint;
  toBlock: bigint;
  tipHash: string;
}) => Promise<void>;

/** While running, the halts table is re-read this often anyway (belt and braces). */
const HALT_RECHECK_MS = 5000;

export type IngestorOptions = {
  /** Most blocks per batch (one transaction). */
  batchBlocks?: number;
  /** Ranges fetched ahead of the one being committed during backfill. */
  concurrency?: number;
  /**
   * Polling period following the head, counted from a pass's start: after a pass that stored the
   * next block, the next poll comes when the following block is due, then every quarter of it (at
   * least 50 ms) until a block appears (sync/loop.ts). Default: the block time, or 2 block times as a backstop
   * when new heads come over WS.
   */
  pollIntervalMs?: number;
  progressIntervalMs?: number;
  /** Least time between two prunes of old blocks (default 10 s). */
  pruneIntervalMs?: number;
  /** The chain's lease connection silent this long is counted lost (foundation/sessionLock.ts). */
  leaseLostAfterMs?: number;
  /**
   * While running, the halts table is re-read at least this often (default 5 s): how soon a halt
   * another process opened is seen (sync/loop.ts).
   */
  haltRecheckMs?: number;
};

export type IngestorStatus = {
  chainId: number;
  head: bigint | null;
  indexed: bigint | null;
  /** When the node's head last changed (ms since epoch). */
  headChangedAt: number;
  /** When `syncOnce` last completed without error. */
  syncedAt: number;
  lastError: string | null;
  /** Another process holds this chain's lease; this one waits to take over. */
  standby: boolean;
  /** This instance holds the chain's lease (it is the chain's writer). */
  leaseHeld: boolean;
  /** New-head notifications received over WS (0 without a wsUrl). */
  wsHeads: number;
  /** A reorg reached a final block: ingestion stopped until an operator resumes the chain. */
  halted: string | null;
  /** No endpoint has reached the blocks we need (why, when waiting); null when one has. */
  noHealthyEndpoint: string | null;
};

export type SyncContext = {
  common: Common;
  pool: Pool;
  adapter: EvmAdapter;
  chain: ChainConfig;
  chainId: number;
  labels: { chain_id: string };
  logger: Logger;
  metrics: IndexerMetrics;
  tokens: Address[];
  finality: ConfirmationRule;
  watched: WatchedSet;
  doorbell: FactsDoorbell | undefined;
  batchBlocks: bigint;
  concurrency: number;
  progressIntervalMs: number;
  /** The chain's lease connection silent this long is counted lost (foundation/sessionLock.ts). */
  leaseLostAfterMs: number;
  haltRecheckMs: number;
  /** Bloom bits of the Transfer topic and of each listed token (to skip eth_getLogs). */
  bloom: { transfer: number[]; tokens: { token: Address; bits: number[] }[] };
  state: IngestorStatus;
  stopping: () => boolean;
  /** RPC call count at the last stored block (for calls per block, idle polls included). */
  callsAtLastBlock: number;
  /**
   * What the writer gauges show besides the status (indexers/metrics.ts reads them at a scrape,
   * only while this instance writes the chain): the published finalized block and the RPC calls
   * per block of the last batch.
   */
  observed: { finalized: bigint | null; rpcCallsPerBlock: number | null };
  /** Block pruning (sync/prune.ts): retention below finalized, cadence, and progress. */
  prune: { retention: number; intervalMs: number; at: number; below: bigint };
  /** The node's `finalized` tag, cached (it moves slowly): see `nodeFinalized`. */
  finalizedTag: { value: bigint | null; at: number; head: bigint } | null;
  /**
   * The tip this process committed last, so the next pass need not read it back (one round trip
   * a block). Only a commit sets it; a pass takes it and clears it, a reorg, a halt or a new lease
   * clears it. Every commit still locks and compares the stored tip, so a stale value costs one
   * failed pass (TipMovedError), never a wrong write.
   */
  knownTip: Tip | null;
  /**
   * Every endpoint was asked its head since this process started writing the chain (at start and
   * on taking the lease: see syncPass). Until then the best head is only what the first endpoint
   * showed, and one stuck on a losing fork above our tip would have its fork backfilled.
   */
  headsAsked: boolean;
};

export function createSyncContext(args: {
  common: Common;
  pool: Pool;
  adapter: EvmAdapter;
  watched: WatchedSet;
  doorbell: FactsDoorbell | undefined;
  options: IngestorOptions;
  stopping: () => boolean;
}): SyncContext {
  const chain = args.adapter.chain;
  const tokens: Address[] = chain.tokens.map((t) => t.address);
  const metrics = indexerMetrics(args.common.metrics.registry);
  // ReorgBeyondWindow is increase() > 0: a series first exported at 1 shows no increase.
  for (const depth of DEPTH_BUCKETS)
    metrics.reorgs.inc({ chain_id: String(chain.chainId), depth, beyond_window: "true" }, 0);
  return {
    common: args.common,
    pool: args.pool,
    adapter: args.adapter,
    chain,
    chainId: chain.chainId,
    labels: { chain_id: String(chain.chainId) },
    logger: args.common.logger.child({ component: "indexer", chain_id: chain.chainId }),
    metrics,
    tokens,
    finality: finalityRule(chain),
    watched: args.watched,
    doorbell: args.doorbell,
    batchBlocks: BigInt(args.options.batchBlocks ?? 100),
    concurrency: args.options.concurrency ?? 3,
    progressIntervalMs: args.options.progressIntervalMs ?? 5000,
    leaseLostAfterMs: args.options.leaseLostAfterMs ?? LOCK_LOST_AFTER_MS,
    haltRecheckMs: args.options.haltRecheckMs ?? HALT_RECHECK_MS,
    bloom: {
      transfer: bloomBits(TRANSFER_TOPIC),
      tokens: tokens.map((token) => ({ token, bits: bloomBits(token) })),
    },
    state: {
      chainId: chain.chainId,
      head: null,
      indexed: null,
      headChangedAt: Date.now(),
      syncedAt: Date.now(),
      lastError: null,
      standby: false,
      leaseHeld: false,
      wsHeads: 0,
      halted: null,
      noHealthyEndpoint: null,
    },
    stopping: args.stopping,
    callsAtLastBlock: args.adapter.rpc.callCount(),
    observed: { finalized: null, rpcCallsPerBlock: null },
    finalizedTag: null,
    knownTip: null,
    headsAsked: false,
    prune: {
      retention: blockRetention(chain),
      intervalMs: args.options.pruneIntervalMs ?? 10_000,
      at: 0,
      below: -1n,
    },
  };
}

/**
 * Blocks kept below the finalized block: the chain's `blockRetention`, else 10,000 (hours of
 * blocks on fast chains, days on slow ones), never fewer than 2 reorg windows.
 */
export function blockRetention(chain: Pick<ChainConfig, "blockRetention" | "reorgWindow">): number {
  return Math.max(chain.blockRetention ?? 10_000, 2 * chain.reorgWindow);
}

export function observeHead(ctx: SyncContext, head: bigint): void {
  if (ctx.state.head !== head) {
    ctx.state.head = head;
    ctx.state.headChangedAt = Date.now();
  }
}

export function observeIndexed(ctx: SyncContext, n: bigint | null): void {
  ctx.state.indexed = n;
}

/**
 * The published finalized block, as this process knows it (at start, after each commit): shown on
 * the writer gauge, and held by the RPC client (chains/rpc.ts holdFinal), so an endpoint that shows
 * another block there (another network with our chain id) is set aside before it is followed.
 */
export function holdFinal(ctx: SyncContext, finalized: FinalizedBlock | null): void {
  if (finalized !== null) ctx.observed.finalized = finalized.number;
  ctx.adapter.rpc.holdFinal(finalized);
}

export async function ring(ctx: SyncContext, change: StatusChange, tipHash: string): Promise<void> {
  if (!ctx.doorbell || change.count === 0 || change.fromBlock === null || change.toBlock === null)
    return;
  try {
    await ctx.doorbell({
      chainId: ctx.chainId,
      fromBlock: change.fromBlock,
      toBlock: change.toBlock,
      tipHash,
    });
  } catch (err) {
    // Consumers also sweep Postgres: a lost doorbell delays work, it loses none.
    ctx.logger.warn({ msg: "chain-facts doorbell failed", err });
  }
}

export function mergeChanges(a: StatusChange, b: StatusChange): StatusChange {
  const min = (x: bigint | null, y: bigint | null) =>
    x === null ? y : y === null ? x : x < y ? x : y;
  const max = (x: bigint | null, y: bigint | null) =>
    x === null ? y : y === null ? x : x > y ? x : y;
  return {
    count: a.count + b.count,
    fromBlock: min(a.fromBlock, b.fromBlock),
    toBlock: max(a.toBlock, b.toBlock),
  };
}
