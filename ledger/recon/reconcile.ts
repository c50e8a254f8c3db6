/**
 * One reconciliation run of one chain at one final block: load (incrementally when a previous
 * completed run exists), match, read on-chain balances at the block, check balances, store the run
 * and its breaks, raise metrics, and log an error-level alert when there is any break.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { ChainConfig } from "../../chains/index.js";
import { readAuditHead } from "../../foundation/audit.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, snapshotPeer, withTransaction } from "../../foundation/db.js";
import { metricOnce, withinTimeout } from "../../foundation/metrics.js";
import { readFinalized } from "../../indexers/finality.js";
import { loadTip } from "../../indexers/store.js";
import { MEMORY_MAX_ROWS } from "./balanceCache.js";
import { type BalanceCheck, checkBalances } from "./balances.js";
import { countUnresolvedBreaks, type UnresolvedBreakCount } from "./breakStates.js";
import { BlockNotFinalError, NoFinalBlockError, RunLockLostError } from "./errors.js";
import { DEFAULT_INFLOW_ROTATION, findUnattributedInflows } from "./inflows.js";
import {
  createRateLimiter,
  DEFAULT_BALANCE_READS,
  readCustodyBalances,
  ZERO_ADDRESS,
} from "./onchain.js";
import { loadRunSnapshot } from "./runSnapshot.js";
import type { ChainReaders, SweepReader } from "./sources.js";
import {
  type ChainMemory,
  completeRun,
  createRun,
  failRun,
  findJournalRecord,
  findPreviousRun,
  type RunMode,
} from "./store.js";
import {
  BREAK_TYPES,
  type Break,
  type BreakType,
  CHAIN_BACKED_KINDS,
  type ReorgHold,
} from "./types.js";

/** Without traces there is no fact for a native sweep's internal move (see MatchInput). */
const WITHOUT_TRACES = new Set([...CHAIN_BACKED_KINDS].filter((k) => k !== "sweep"));

/**
 * A run's read-only snapshot plans without merge joins. The entries' reads join
 * `ledger.posted_entries` to the accounts, and for a range of some 50,000 entries (a full run's
 * stream page, a catch-up's new entries) the planner can cost a merge join over `accounts_pkey`
 * fed by `transfers_debit` as if it read a sliver of that index: it walks every transfer instead.
 * At 10M transfers that join read one stream page's worth in 5.5 s, against 0.45 s through
 * `transfers_chain_ref` (docs/scale.md, session 14). No read of a run needs a merge join.
 * It takes a transaction id (watermarks.ts: the bound of its seq gaps), so its commit writes a
 * WAL record; it writes nothing else, so the commit need not wait for that record's flush.
 */
const SNAPSHOT_SETTINGS = { enable_mergejoin: "off", synchronous_commit: "off" } as const;

export type RunOptions = {
  chain: ChainConfig;
  /** Default: the newest block the confirmation rule has made final. */
  block?: number;
  /** Re-examine everything instead of continuing from the last completed run. */
  full?: boolean;
  /**
   * Without `block`: stay this many blocks behind the newest final block, so facts confirmed a
   * moment ago have had time to be booked (the scheduled role uses ~30 s; default 0).
   */
  graceBlocks?: number;
  /**
   * Aborts when the chain's lock the run is made under is lost (the reconciler role's loop): the
   * run stops at its next step with RECON_LOCK_LOST, stored failed, never completed.
   */
  signal?: AbortSignal;
};

export type RunSummary = {
  runId: number;
  chainId: number;
  block: number;
  mode: RunMode;
  clean: boolean;
  /** Breaks that alert: open ones (new, reopened, or acknowledged at another difference). */
  alerting: number;
  breaks: Break[];
  checks: BalanceCheck[];
  /** Reorg holds (not breaks): open ones, and ones posted since the previous run. */
  holds: ReorgHold[];
  factsExamined: number;
  entriesExamined: number;
  matched: number;
  deferred: number;
  /**
   * `onchain`: the on-chain balance read alone, from its start to its answer (it overlaps the
   * load in an incremental run, and follows the match in a full one).
   */
  timingsMs: {
    load: number;
    match: number;
    balances: number;
    store: number;
    total: number;
    onchain: number;
  };
};

export type Reconciler = {
  run: (options: RunOptions) => Promise<RunSummary>;
  /** The newest block of the chain the confirmation rule has made final (and that is indexed). */
  finalBlock: (chain: ChainConfig) => Promise<number>;
};

export function createReconciler({
  common,
  pool,
  sweeps,
  chains,
  lookbackMs,
  inflowRotation,
  streamPage,
}: {
  common: Common;
  pool: Pool;
  /** Booked sweeps, the signer's (signer/sweeps' `sweepReader`): given by the caller. */
  sweeps: SweepReader;
  /**
   * Deposit addresses an incremental run reads (balances, unattributed inflows) beyond active ones;
   * default: the chain's `recon.rotation`.
   */
  inflowRotation?: number;
  /** Facts per tx-hash range of a full run (stream.ts); default DEFAULT_STREAM_PAGE. */
  streamPage?: number;
  /** How far back an incremental run re-reads recent rows (see load.ts); default 5 minutes. */
  lookbackMs?: number;
  /** The on-chain reads per chain (chains/' `adapterPerChain(common)` in production): given by the caller. */
  chains: ChainReaders;
}): Reconciler {
  const log = common.logger.child({ component: "reconciler" });
  const balanceReads = (chain: ChainConfig) => {
    const c = chain.recon;
    return {
      rotation: inflowRotation ?? c?.rotation ?? DEFAULT_INFLOW_ROTATION,
      batchSize: c?.batchSize ?? DEFAULT_BALANCE_READS.batchSize,
      requestsPerSecond: c?.requestsPerSecond ?? DEFAULT_BALANCE_READS.requestsPerSecond,
      multicall3: c?.multicall3,
      balanceLoop: c?.balanceLoop,
      inFlight: c?.inFlight,
    };
  };
  // One rate limit per chain, shared by its runs (a full run and the scheduled one may overlap).
  const limiters = new Map<number, { rps: number; wait: () => Promise<void> }>();
  const limiter = (chain: ChainConfig, rps: number) => {
    let l = limiters.get(chain.chainId);
    if (!l || l.rps !== rps) {
      l = { rps, wait: createRateLimiter(rps) };
      limiters.set(chain.chainId, l);
    }
    return l.wait;
  };
  const metrics = reconMetrics(common);
  // ReconciliationFailing is increase(…{result="failed"}) > 0: a series first exported at 1 shows
  // no increase, so the first failed run of a process would not alert. It starts at 0.
  for (const c of common.config.chains)
    metrics.runs.inc({ chain_id: String(c.chainId), result: "failed" }, 0);
  const adapter = chains;
  // Running tables' rows carried from a chain's previous run (store.ts ChainMemory). A run takes
  // its chain's memory and puts back the memory its completed run leaves: overlapping runs of a
  // chain never share one, and a failed run drops it.
  const memories = new Map<number, ChainMemory>();

  /** Our stored canonical block's hash at `n` (the indexer's published view), if stored. */
  async function canonicalHash(chainId: number, n: bigint | number): Promise<string | undefined> {
    const { rows } = await pool.query<{ hash: string }>(
      "SELECT hash FROM chain.canonical_blocks WHERE chain_id = $1 AND number = $2",
      [chainId, n.toString()],
    );
    return rows[0]?.hash;
  }

  async function finalBlock(chain: ChainConfig): Promise<number> {
    const tip = await loadTip(pool, chain.chainId);
    if (!tip) throw new NoFinalBlockError(chain.chainId, "the indexer has stored no block yet");
    const indexed = Number(tip.number);
    let final: number;
    if (chain.confirmations.kind === "blocks") {
      final = indexed - chain.confirmations.blocks;
    } else {
      const finalized = await adapter(chain).getFinalizedBlock();
      if (finalized === null)
        throw new NoFinalBlockError(chain.chainId, "the node does not report a finalized block");
      if (finalized.number > BigInt(indexed)) {
        // Above what is indexed, the tag cannot be checked against our blocks: the finalized
        // block the indexer published (checked against its blocks, indexers/sync/commitRange.ts).
        const published = await readFinalized(pool, chain.chainId);
        if (!published)
          throw new NoFinalBlockError(chain.chainId, "the indexer has published no final block");
        final = Number(published.number);
      } else {
        // The tag counts only when its block is ours (as the indexer's): the endpoint that
        // answered may be on another fork, whose finalized height says nothing about our chain.
        const ours = await canonicalHash(chain.chainId, finalized.number);
        if (ours !== finalized.hash)
          throw new NoFinalBlockError(
            chain.chainId,
            `the node's finalized block ${finalized.number} (${finalized.hash}) is not our block at that height (${ours ?? "not stored"})`,
          );
        final = Number(finalized.number);
      }
    }
    if (final < 0)
      throw new NoFinalBlockError(chain.chainId, `indexed up to ${indexed}, not yet confirmed`);
    return final;
  }

  async function run(options: RunOptions): Promise<RunSummary> {
    const { chain } = options;
    const chainId = chain.chainId;
    const t0 = performance.now();
    const final = await finalBlock(chain);
    const block = options.block ?? final - (options.graceBlocks ?? 0);
    if (block > final) throw new BlockNotFinalError(chainId, block, final);
    if (block < 0)
      throw new NoFinalBlockError(chainId, `final block ${final} is within the grace period`);
    const { signal } = options;
    if (signal?.aborted) throw new RunLockLostError(chainId, undefined);
    const previous = options.full ? null : await findPreviousRun(pool, chainId, block);
    // A full run matches everything it sees, but the runs after it continue from its seq gaps.
    const journal = previous === null ? await findJournalRecord(pool, chainId) : null;
    const mode: RunMode = previous ? "incremental" : "full";
    const hash = await canonicalHash(chainId, block);
    const tokens = await assetTokens(pool, chain);
    const runId = await createRun(pool, {
      chainId,
      block,
      blockHash: hash ?? null,
      mode,
      previousRunId: previous?.id ?? null,
      inputs: { confirmations: chain.confirmations, final_block: final, tokens },
    });
    const runLog = log.child({ chain_id: chainId, run_id: runId, block, mode });
    let onchainMs = 0;
    const carried = memories.get(chainId) ?? {};
    memories.delete(chainId);
    const lockLost = () => new RunLockLostError(chainId, runId);
    const stopIfLost = () => {
      if (signal?.aborted) throw lockLost();
    };
    try {
      const reads = balanceReads(chain);
      // One snapshot for both sides: a fact and the entry booking it are seen together or not at all.
      // (Not re-run on a retryable error: the balance read starts inside.) An incremental run also
      // reads on a second client in the same snapshot when the pool has one to spare: its changed
      // entries (10,000 accounts' names for a block of 10,000 deposits) while this client reads
      // the rest (docs/scale.md, session 18).
      const loaded = await withTransaction(
        pool,
        async (client) => {
          const peer =
            previous === null
              ? null
              : await snapshotPeer(pool, client, { settings: SNAPSHOT_SETTINGS });
          try {
            return await loadRunSnapshot(client, {
              peer: peer?.client,
              chainId,
              block,
              previous,
              journal,
              rotation: reads.rotation,
              chainBackedKinds: chain.traces ? undefined : WITHOUT_TRACES,
              carried,
              readBalances: (addresses) => {
                const start = performance.now();
                return readCustodyBalances(adapter(chain), {
                  addresses,
                  tokens,
                  block,
                  blockHash: hash,
                  options: reads,
                  limit: limiter(chain, reads.requestsPerSecond),
                }).finally(() => {
                  onchainMs = performance.now() - start;
                });
              },
              sweeps,
              lookbackMs,
              streamPage,
            });
          } finally {
            await peer?.end();
          }
        },
        { isolation: "repeatable read", readOnly: true, attempts: 1, settings: SNAPSHOT_SETTINGS },
      );
      stopIfLost();
      const { inputs, matching, counts } = loaded;
      // A full run reads while it matches: its load time is in `match`.
      const t2 = performance.now();
      const t1 = t2 - loaded.matchMs;
      // Open holds always; posted ones once (the run after they were posted), or all in a full run.
      const holds = inputs.reorgHolds.filter(
        (h) => h.state === "held" || !previous || h.updatedAt >= previous.snapshotAt,
      );
      const onchainReading = previous === null ? loaded.readBalances() : loaded.onchainRead;
      onchainReading.catch(() => {}); // awaited in the completion, after its early writes
      // The writes that need no on-chain balance (expected balances, liabilities) go out while the
      // balances are read, in the one transaction completeRun opens first and finishes (a failed
      // read rolls them back).
      const { result, states, alerting, memory } = await completeRun(pool, runId, {
        chainId,
        expectedFacts: loaded.expectedUpdate,
        liabilities: inputs.liabilityUpdate,
        memory: carried,
        result: async () => {
          // The read may take minutes at scale: a lost lock stops the run without waiting for it.
          const onchain = await unlessAborted(onchainReading, signal, lockLost);
          const inflows = findUnattributedInflows({
            onchain,
            expected: loaded.expectedBalances,
            addresses: loaded.inflowSelection.addresses,
          });
          const balances = checkBalances({
            onchain,
            ledger: inputs.ledger,
            liabilities: inputs.liabilities,
            breaks: [...matching.breaks, ...inflows],
            custody: inputs.custody,
            unreadDeposits: loaded.unreadDeposits,
          });
          const t3 = performance.now();
          return {
            t3,
            watermarks: inputs.watermarks,
            deferredEntries: inputs.deferredEntries,
            factsExamined: counts.facts,
            entriesExamined: counts.entries,
            matched: matching.matched,
            checks: balances.checks,
            depositBalances: { block, balances: onchain },
            breaks: [...matching.breaks, ...inflows, ...balances.breaks],
            holds,
            inputs: {
              custody_addresses: loaded.custodyCount,
              deferred_entries: counts.deferred,
              balance_addresses_read: new Set(onchain.map((b) => b.address)).size,
              inflow_addresses_checked: loaded.inflowSelection.addresses.length,
              inflow_cursor: loaded.inflowSelection.cursor,
              swept_unmined: loaded.sweptUnmined,
            },
            auditHead: await readAuditHead(pool),
          };
        },
        beforeComplete: stopIfLost,
      });
      const { breaks, t3 } = result;
      // Not after a full run: holding every chain's rows from a full reconciliation of all
      // chains took its peak RSS from 802 MB to 2,239 MB at 10M; the next incremental run loads
      // them once. Kept only while small enough to hold for every chain (~300 bytes an address).
      if (previous === null) memory.deposits = memory.expected = undefined;
      if ((memory.deposits?.rows.size ?? 0) > MEMORY_MAX_ROWS) memory.deposits = undefined;
      if ((memory.expected?.rows.size ?? 0) > MEMORY_MAX_ROWS) memory.expected = undefined;
      memories.set(chainId, memory);
      breaks.forEach((b, i) => {
        b.state = states[i]!;
      });
      const t4 = performance.now();
      const summary: RunSummary = {
        runId,
        chainId,
        block,
        mode,
        clean: breaks.length === 0,
        alerting,
        breaks,
        checks: result.checks,
        holds,
        factsExamined: counts.facts,
        entriesExamined: counts.entries,
        matched: matching.matched,
        deferred: counts.deferred,
        timingsMs: {
          load: t1 - t0,
          match: t2 - t1,
          balances: t3 - t2,
          store: t4 - t3,
          total: t4 - t0,
          onchain: onchainMs,
        },
      };
      metrics.observe(summary);
      report(runLog, summary);
      return summary;
    } catch (error) {
      // The process's stop aborts the RPC client's signal before it stops the roles (ops/start.ts):
      // a run whose read failed then was stopped, not failed, and pages no one on a deploy.
      if (common.shutdown.isShuttingDown()) {
        await failRun(pool, runId, error, "interrupted by the process's stop").catch(() => {});
        runLog.info({ msg: "reconciliation run interrupted by stop", err: error });
        throw error;
      }
      await failRun(pool, runId, error).catch(() => {});
      metrics.runs.inc({ chain_id: String(chainId), result: "failed" });
      runLog.error({ msg: "reconciliation run failed", err: error });
      throw error;
    }
  }

  return { run, finalBlock };
}

/**
 * `promise`'s outcome, or `stopped()`'s error as soon as `signal` aborts (the promise runs on,
 * unheard). Also the attestation tick's, around its reserves read (ledger/attest/attest.ts).
 */
export function unlessAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  stopped: () => Error,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(stopped());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(stopped());
    signal.addEventListener("abort", onAbort, { once: true });
    promise.finally(() => signal.removeEventListener("abort", onAbort)).then(resolve, reject);
  });
}

/** Token addresses to check: the chain's listed tokens and any asset the ledger knows on it. */
async function assetTokens(pool: Pool, chain: ChainConfig): Promise<string[]> {
  const r = await pool.query<{ token: string }>(
    "SELECT token FROM ledger.asset_list WHERE chain_id = $1",
    [chain.chainId],
  );
  const tokens = new Set<string>([ZERO_ADDRESS]);
  for (const t of chain.tokens) tokens.add(t.address.toLowerCase());
  for (const row of r.rows) tokens.add(row.token);
  return [...tokens].sort();
}

function report(logger: Common["logger"], s: RunSummary): void {
  const fields = {
    facts_examined: s.factsExamined,
    entries_examined: s.entriesExamined,
    matched: s.matched,
    reorg_holds: s.holds.length,
    duration_ms: Math.round(s.timingsMs.total),
  };
  if (s.clean) {
    logger.info({ msg: "reconciliation run clean: no breaks", ...fields });
    return;
  }
  const byType: Partial<Record<BreakType, number>> = {};
  for (const b of s.breaks) byType[b.type] = (byType[b.type] ?? 0) + 1;
  if (s.alerting === 0) {
    // Every break is acknowledged at the difference the operator saw: known, not re-alerted.
    logger.info({
      msg: "reconciliation breaks, all acknowledged",
      break_count: s.breaks.length,
      breaks_by_type: byType,
      ...fields,
    });
    return;
  }
  const alerting = s.breaks.filter((b) => b.state !== "acknowledged");
  // The alert: one error line per run with breaks, counts by type and the first few keys.
  logger.error({
    msg: "reconciliation breaks",
    alert: "custody_recon_breaks",
    break_count: s.breaks.length,
    alerting_count: s.alerting,
    breaks_by_type: byType,
    first_breaks: alerting
      .slice(0, 10)
      .map((b) => ({ type: b.type, key: b.key, asset: b.assetId })),
    ...fields,
  });
}

/**
 * Where the break gauges read at a scrape, per registry (exportStoredBreaks): the reconciler role's
 * chains. Without one (the CLI, the demo, simulations) the gauges keep what the process's own latest
 * run found.
 */
const storedBreakSources = new WeakMap<Registry, Set<StoredBreakSource>>();
type StoredBreakSource = {
  chainIds: readonly number[];
  /** Every type a read has shown (a newer revision's too): each is set again, to 0 once gone. */
  types: Set<string>;
  /** The counts, or undefined when Postgres failed or was slower than the scrape's timeout. */
  read: () => Promise<UnresolvedBreakCount[] | undefined>;
};

/**
 * Makes the process's break gauges say what the stored break states of `chains` say at each
 * scrape (the reconciler role, for the chains it serves); the returned function stops it. A run
 * stores its breaks' states, so the gauges follow every run of the chain, wherever it ran: a break
 * the CLI's run found (an operator's, the nightly `--full`) pages at the next scrape, where the
 * role's own runs showed it only once one of them found it too: its next pass (up to
 * RECON_INTERVAL_MS away) and the run's time, or a pass later when that run's block, its grace
 * period behind the newest final block, is below the CLI's. An operator's acknowledgement or
 * resolution shows at the next scrape too.
 */
export function exportStoredBreaks(
  common: Common,
  {
    pool,
    chains,
    timeoutMs = 2000,
  }: { pool: Pool; chains: readonly Pick<ChainConfig, "chainId">[]; timeoutMs?: number },
): () => void {
  const registry = common.metrics.registry;
  reconMetrics(common);
  const chainIds = chains.map((c) => c.chainId);
  // One query at a time: both gauges collect at once in a scrape (the registry collects every
  // metric in parallel) and share it, and a query Postgres has not answered by the next scrape is
  // waited on again rather than joined by another (a stalled server holds one of the pool's
  // clients for the gauges, not one more per scrape).
  let reading: Promise<UnresolvedBreakCount[]> | undefined;
  const source: StoredBreakSource = {
    chainIds,
    types: new Set(BREAK_TYPES),
    read: () => {
      reading ??= countUnresolvedBreaks(pool, chainIds).finally(() => {
        reading = undefined;
      });
      return withinTimeout(reading, timeoutMs);
    },
  };
  let sources = storedBreakSources.get(registry);
  if (!sources) {
    sources = new Set();
    storedBreakSources.set(registry, sources);
  }
  sources.add(source);
  return () => {
    sources.delete(source);
  };
}

/**
 * One of the break gauges from the stored states. A read that fails or times out leaves the
 * figures as they were (the last read's, or the run's): no figure is no evidence the breaks are
 * gone, and a zero or an empty series would end a page; the scrape still answers in time.
 */
async function setFromStoredStates(
  registry: Registry,
  gauge: Gauge,
  state: UnresolvedBreakCount["state"],
): Promise<void> {
  for (const source of storedBreakSources.get(registry) ?? []) {
    const counts = await source.read();
    if (!counts) continue;
    for (const c of counts) source.types.add(c.type);
    for (const chainId of source.chainIds) {
      const chain_id = String(chainId);
      const byType = new Map<string, number>([...source.types].map((t) => [t, 0]));
      for (const c of counts)
        if (c.chainId === chainId && c.state === state) byType.set(c.type, c.count);
      for (const [type, n] of byType) gauge.set({ chain_id, type }, n);
    }
  }
}

function reconMetrics(common: Common) {
  const registry = common.metrics.registry;
  const breaks = metricOnce(
    registry,
    "custody_recon_breaks",
    () =>
      new Gauge({
        name: "custody_recon_breaks",
        help: "Alerting (open) breaks by chain and type, as stored now (read at scrape by the reconciler role; else as this process's latest run found them); acknowledged ones are in custody_recon_breaks_acknowledged",
        labelNames: ["chain_id", "type"],
        registers: [registry],
        async collect() {
          await setFromStoredStates(registry, this, "open");
        },
      }),
  );
  const acknowledged = metricOnce(
    registry,
    "custody_recon_breaks_acknowledged",
    () =>
      new Gauge({
        name: "custody_recon_breaks_acknowledged",
        help: "Breaks an operator acknowledged at their current difference (not alerting), by chain and type, as stored now (read at scrape by the reconciler role; else as this process's latest run found them)",
        labelNames: ["chain_id", "type"],
        registers: [registry],
        async collect() {
          await setFromStoredStates(registry, this, "acknowledged");
        },
      }),
  );
  const runs = metricOnce(
    registry,
    "custody_recon_runs_total",
    () =>
      new Counter({
        name: "custody_recon_runs_total",
        help: "Reconciliation runs by result (clean, breaks, acknowledged = only acknowledged breaks, failed)",
        labelNames: ["chain_id", "result"],
        registers: [registry],
      }),
  );
  const lastBlock = metricOnce(
    registry,
    "custody_recon_last_block",
    () =>
      new Gauge({
        name: "custody_recon_last_block",
        help: "Block of the latest completed reconciliation run",
        labelNames: ["chain_id"],
        registers: [registry],
      }),
  );
  const unexplained = metricOnce(
    registry,
    "custody_recon_unexplained_difference",
    () =>
      new Gauge({
        name: "custody_recon_unexplained_difference",
        help: "Sum of |unexplained| balance differences of the latest run, base units (may lose precision above 2^53)",
        labelNames: ["chain_id", "asset"],
        registers: [registry],
      }),
  );
  return {
    runs,
    observe(s: RunSummary) {
      const chain_id = String(s.chainId);
      const counts = new Map<string, number>(BREAK_TYPES.map((t) => [t, 0]));
      const acked = new Map<string, number>(BREAK_TYPES.map((t) => [t, 0]));
      for (const b of s.breaks) {
        const into = b.state === "acknowledged" ? acked : counts;
        into.set(b.type, (into.get(b.type) ?? 0) + 1);
      }
      for (const [type, n] of counts) breaks.set({ chain_id, type }, n);
      for (const [type, n] of acked) acknowledged.set({ chain_id, type }, n);
      runs.inc({
        chain_id,
        result: s.clean ? "clean" : s.alerting === 0 ? "acknowledged" : "breaks",
      });
      lastBlock.set({ chain_id }, s.block);
      const perAsset = new Map<string, bigint>();
      for (const c of s.checks) {
        const v = c.unexplained < 0n ? -c.unexplained : c.unexplained;
        perAsset.set(c.assetId, (perAsset.get(c.assetId) ?? 0n) + v);
      }
      for (const [asset, v] of perAsset) unexplained.set({ chain_id, asset }, Number(v));
    },
  };
}
