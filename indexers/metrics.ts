import { Counter, Gauge, type Registry } from "prom-client";
import { rpcMetrics } from "../chains/index.js";
import { metricOnce } from "../foundation/metrics.js";

/** Indexer metrics (one set per process; every series is labelled by chain). */
export type IndexerMetrics = ReturnType<typeof indexerMetrics>;

export function indexerMetrics(registry: Registry) {
  const counter = (name: string, help: string, labelNames: string[] = ["chain_id"]) =>
    metricOnce(
      registry,
      name,
      () => new Counter({ name, help, labelNames, registers: [registry] }),
    );
  // What only the chain's writer knows, recomputed at every scrape from the instances of the chain
  // in this process that write it now (indexerSources): a task that stands by or lost its lease
  // exports no series (its last values are stale: a 1 would keep ChainHalted firing after the
  // resume, a 0 would say "running" for a chain nobody here follows), and a stopped one is gone.
  // Several writers (syncOnce-driven tools and tests) combine by max.
  const writerGauge = (name: string, help: string, value: (w: WriterView) => number | null) =>
    metricOnce(
      registry,
      name,
      () =>
        new Gauge({
          name,
          help,
          labelNames: ["chain_id"],
          registers: [registry],
          collect() {
            this.reset();
            for (const [chainId, instances] of indexerSources(registry)) {
              const values = [...instances].flatMap((i) => {
                const w = i.writer();
                const v = w === null ? null : value(w);
                return v === null ? [] : [v];
              });
              if (values.length > 0) this.set({ chain_id: chainId }, Math.max(...values));
            }
          },
        }),
    );
  return {
    chainHead: writerGauge(
      "custody_indexer_chain_head",
      "latest block number reported by the RPC",
      (w) => num(w.head),
    ),
    indexedBlock: writerGauge(
      "custody_indexer_indexed_block",
      "last block stored (the checkpoint)",
      (w) => num(w.indexed),
    ),
    lag: writerGauge("custody_indexer_lag_blocks", "chain head minus indexed block", (w) =>
      w.head === null || w.indexed === null ? null : Math.max(0, Number(w.head - w.indexed)),
    ),
    blocks: counter("custody_indexer_blocks_total", "blocks stored (rate() gives blocks/s)"),
    facts: counter("custody_indexer_facts_total", "chain facts stored (rate() gives facts/s)", [
      "chain_id",
      "kind",
    ]),
    reorgs: counter("custody_indexer_reorgs_total", "reorgs detected, by depth bucket", [
      "chain_id",
      "depth",
      "beyond_window",
    ]),
    orphanedConfirmed: counter(
      "custody_indexer_orphaned_confirmed_facts_total",
      "confirmed facts orphaned by a reorg deeper than the confirmation rule (the ledger must react)",
    ),
    droppedLogs: counter(
      "custody_indexer_recovered_logs_total",
      "Transfer logs a ranged eth_getLogs left out that the block bloom revealed (a bad provider)",
    ),
    cutLogAnswers: counter(
      "custody_indexer_cut_log_answers_total",
      "blocks whose eth_getLogs answer lacked a Transfer a successful receipt holds (cut within the block), read again by hash",
    ),
    rpcCallsPerBlock: writerGauge(
      "custody_indexer_rpc_calls_per_block",
      "JSON-RPC calls per stored block over the last batch",
      (w) => w.rpcCallsPerBlock,
    ),
    errors: counter("custody_indexer_errors_total", "ingestor loop errors, by error code", [
      "chain_id",
      "code",
    ]),
    // Shared with the signer (chains/metrics.ts), labelled component="indexer" here.
    receiptFeeFieldMissing: rpcMetrics(registry).receiptFeeFieldMissing,
    // Recomputed at every scrape (indexers/health.ts registers one update per chain): in
    // production nothing asks an indexer task's /readyz, and the alerts read this gauge.
    unhealthy: metricOnce(
      registry,
      "custody_indexer_unhealthy",
      () =>
        new Gauge({
          name: "custody_indexer_unhealthy",
          help: "1 while readiness fails, labelled with the reason (head_stalled, lagging, loop_stalled, halted, no_healthy_endpoint)",
          labelNames: ["chain_id", "reason"],
          registers: [registry],
          collect() {
            // A reason is 1 when any instance of the chain in this process finds it (a standby
            // finds none: the active instance answers for the chain). A chain with no instance
            // here (all stopped) exports nothing.
            this.reset();
            for (const [chainId, instances] of indexerSources(registry)) {
              const found = new Set([...instances].flatMap((i) => i.reasons()));
              for (const reason of UNHEALTHY_REASONS)
                this.set({ chain_id: chainId, reason }, found.has(reason) ? 1 : 0);
            }
          },
        }),
    ),
    // Also recomputed at every scrape. A standby reports no unhealthy reason (the writer answers
    // for the chain), so while no task holds the lease (every task standing by, e.g. behind a dead
    // task's session that still holds the lock) only this says the chain is not indexed.
    leaseHeld: metricOnce(
      registry,
      "custody_indexer_lease_held",
      () =>
        new Gauge({
          name: "custody_indexer_lease_held",
          help: "1 while an indexer of the chain in this process holds the chain's lease (is its writer); 0 while it stands by",
          labelNames: ["chain_id"],
          registers: [registry],
          collect() {
            this.reset();
            for (const [chainId, instances] of indexerSources(registry))
              this.set({ chain_id: chainId }, [...instances].some((i) => i.leaseHeld()) ? 1 : 0);
          },
        }),
    ),
    halted: writerGauge(
      "custody_chain_halted",
      "1 while the chain is halted: a reorg reached a final block; an operator must inspect and resume it",
      (w) => (w.halted ? 1 : 0),
    ),
    noHealthyEndpoint: writerGauge(
      "custody_indexer_no_healthy_endpoint",
      "1 while no RPC endpoint has reached the blocks the indexer needs (lagging, syncing or failing nodes): ingestion waits",
      (w) => (w.noHealthyEndpoint ? 1 : 0),
    ),
    finalizedBlock: writerGauge(
      "custody_indexer_finalized_block",
      "the published finalized block (finality rule), never moving down",
      (w) => num(w.finalized),
    ),
  };
}

/** Every value of `custody_indexer_unhealthy`'s `reason` label (indexers/health.ts finds them). */
export const UNHEALTHY_REASONS = [
  "head_stalled",
  "lagging",
  "loop_stalled",
  "halted",
  "no_healthy_endpoint",
] as const;

/** What an instance knows of its chain while it writes it (the writer gauges' inputs). */
export type WriterView = {
  halted: boolean;
  noHealthyEndpoint: boolean;
  head: bigint | null;
  indexed: bigint | null;
  finalized: bigint | null;
  rpcCallsPerBlock: number | null;
};

/** One indexer instance as the scrape-time gauges see it. */
export type IndexerSource = {
  /** Its unhealthy reasons now (none unless it writes the chain). */
  reasons: () => readonly string[];
  /** Whether it holds the chain's lease now. */
  leaseHeld: () => boolean;
  /** What it knows as the chain's writer; null while it is not the writer. */
  writer: () => WriterView | null;
};

const sourcesByRegistry = new WeakMap<Registry, Map<string, Set<IndexerSource>>>();

/**
 * What the indexer gauges but the counters are computed from at a scrape: by chain id, each
 * running indexer instance (createIngestor registers one and removes it when stopped).
 */
export function indexerSources(registry: Registry): Map<string, Set<IndexerSource>> {
  let sources = sourcesByRegistry.get(registry);
  if (!sources) {
    sources = new Map();
    sourcesByRegistry.set(registry, sources);
  }
  return sources;
}

/** Adds an instance to `indexerSources`; the returned function removes it. */
export function registerIndexerSource(
  registry: Registry,
  chainId: number,
  source: IndexerSource,
): () => void {
  const sources = indexerSources(registry);
  const key = String(chainId);
  const instances = sources.get(key) ?? new Set();
  sources.set(key, instances);
  instances.add(source);
  return () => {
    instances.delete(source);
    if (instances.size === 0 && sources.get(key) === instances) sources.delete(key);
  };
}

const num = (n: bigint | null): number | null => (n === null ? null : Number(n));

/** Every value of the reorg counter's `depth` label (depthBucket's). */
export const DEPTH_BUCKETS = ["1", "2-5", "6-20", "21+"] as const;

/** Depth buckets keep the label set small. */
export function depthBucket(depth: number): string {
  if (depth <= 1) return "1";
  if (depth <= 5) return "2-5";
  if (depth <= 20) return "6-20";
  return "21+";
}
