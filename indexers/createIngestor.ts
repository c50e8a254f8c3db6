/**
 * One chain's ingestor. `syncOnce` brings the stored chain up to the node's head: it fetches block
 * ranges concurrently (blocks with transactions, Transfer logs of listed tokens, traces, receipts
 * of watched transactions), commits them strictly in order, one transaction per range with the
 * checkpoint, and handles reorgs of any depth. `start` runs `syncOnce` in a polling loop.
 */
import { type Address, createPublicClient, type Hex, hexToBytes, webSocket } from "viem";
import {
  bloomBits,
  bloomHas,
  ChainDataInconsistentError,
  type EvmAdapter,
  type RawLog,
  type RawReceipt,
  TRANSFER_TOPIC,
} from "../chains/index.js";
import type { Common } from "../ops/common.js";
import type { ChainConfig } from "../ops/config.js";
import { type Pool, type PoolClient, withTransaction } from "../ops/db.js";
import { BaseError } from "../ops/errors.js";
import {
  type BlockHeader,
  checkBlocksLinked,
  extractFacts,
  type Fact,
  headerOf,
  type RangeData,
  txsNeedingReceipts,
} from "./extractFacts.js";
import { finalityRule, finalizedHeight, publishFinalized } from "./finality.js";
import { depthBucket, indexerMetrics } from "./metrics.js";
import {
  canonicalHashes,
  confirmFacts,
  insertBlocks,
  insertFacts,
  loadTip,
  lockTip,
  lowestCanonicalBlock,
  orphanAbove,
  recordReorg,
  type StatusChange,
  saveTip,
  type Tip,
} from "./store.js";
import { createWatchedSet, type WatchedSet } from "./watched.js";

/** Rung after a commit that confirmed or orphaned facts (the `chain-facts` doorbell). */
export type FactsDoorbell = (range: {
  chainId: number;
  fromBlock: bigint;
  toBlock: bigint;
  tipHash: string;
}) => Promise<void>;

/** First key of the per-chain advisory lock (the second is the chain id). */
const LEASE_NAMESPACE = 0x636e6478; // "cndx"

export type IngestorOptions = {
  /** Most blocks per batch (one transaction). */
  batchBlocks?: number;
  /** Ranges fetched ahead of the one being committed during backfill. */
  concurrency?: number;
  pollIntervalMs?: number;
  progressIntervalMs?: number;
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
  /** New-head notifications received over WS (0 without a wsUrl). */
  wsHeads: number;
};

export type Ingestor = {
  syncOnce: () => Promise<void>;
  start: () => void;
  stop: () => Promise<void>;
  status: () => IngestorStatus;
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
  const chain: ChainConfig = adapter.chain;
  const chainId = chain.chainId;
  const labels = { chain_id: String(chainId) };
  const logger = common.logger.child({ component: "indexer", chain_id: chainId });
  const metrics = indexerMetrics(common.metrics.registry);
  const batchBlocks = BigInt(options.batchBlocks ?? 100);
  const concurrency = options.concurrency ?? 3;
  // With a WS URL, new heads wake the loop at once and polling is only the backstop.
  const pollIntervalMs =
    options.pollIntervalMs ??
    (chain.wsUrl
      ? Math.max(1000, chain.blockTimeMs * 2)
      : Math.max(100, Math.min(chain.blockTimeMs / 2, 2000)));
  const progressIntervalMs = options.progressIntervalMs ?? 5000;
  const tokens: Address[] = chain.tokens.map((t) => t.address);
  const finality = finalityRule(chain);
  const watched = await createWatchedSet({ pool, chainId, logger });

  const state: IngestorStatus = {
    chainId,
    head: null,
    indexed: null,
    headChangedAt: Date.now(),
    syncedAt: Date.now(),
    lastError: null,
    standby: false,
    wsHeads: 0,
  };
  let stopping = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  function observeHead(head: bigint) {
    if (state.head !== head) {
      state.head = head;
      state.headChangedAt = Date.now();
    }
    metrics.chainHead.set(labels, Number(head));
  }

  function observeIndexed(n: bigint | null) {
    state.indexed = n;
    if (n !== null) metrics.indexedBlock.set(labels, Number(n));
    if (n !== null && state.head !== null)
      metrics.lag.set(labels, Math.max(0, Number(state.head - n)));
  }

  async function ring(change: StatusChange, tipHash: string) {
    if (!doorbell || change.count === 0 || change.fromBlock === null || change.toBlock === null)
      return;
    try {
      await doorbell({ chainId, fromBlock: change.fromBlock, toBlock: change.toBlock, tipHash });
    } catch (err) {
      // Consumers also sweep Postgres: a lost doorbell delays work, it loses none.
      logger.warn({ msg: "chain-facts doorbell failed", err });
    }
  }

  /**
   * The highest blocks meeting the confirmation rule and the finality rule, given the stored tip.
   * The node's `finalized` tag is asked at most once, and only when a rule uses it.
   */
  async function rulesUpTo(
    tip: bigint,
  ): Promise<{ confirmed: bigint | null; final: bigint | null }> {
    const needsTag = chain.confirmations.kind === "finalized" || finality.kind === "finalized";
    const nodeFinalized = needsTag ? await adapter.getFinalizedHead() : null;
    // Blocks rules count from the stored tip (the best head is never lower while we ingest).
    const head = state.head !== null && state.head > tip ? state.head : tip;
    return {
      confirmed: finalizedHeight(chain.confirmations, { head: tip, tip, nodeFinalized }),
      final: finalizedHeight(finality, { head, tip, nodeFinalized }),
    };
  }

  async function fetchReceipts(
    blocks: RangeData["blocks"],
    wanted: Set<string>,
    have: Map<string, RawReceipt>,
  ): Promise<void> {
    const perBlock = blocks
      .map((b) => ({
        number: BigInt(b.number),
        txHashes: b.transactions
          .map((t) => t.hash)
          .filter((h) => wanted.has(h.toLowerCase()) && !have.has(h.toLowerCase())),
      }))
      .filter((b) => b.txHashes.length > 0);
    const receipts = await adapter.getBlockReceipts(perBlock);
    for (const list of receipts)
      for (const r of list) {
        const hash = r.transactionHash.toLowerCase();
        if (wanted.has(hash)) have.set(hash, r);
      }
  }

  async function fetchRange(from: bigint, to: bigint): Promise<RangeData> {
    const numbers: bigint[] = [];
    for (let n = from; n <= to; n++) numbers.push(n);
    const maybeBlocks = await adapter.getBlocks(numbers);
    const blocks = maybeBlocks.map((b, i) => {
      if (!b)
        throw new ChainDataInconsistentError(`node has no block ${numbers[i]} (behind or reorged)`);
      return b;
    });
    checkBlocksLinked(blocks);
    const receipts = new Map<string, RawReceipt>();
    const [logs, frames] = await Promise.all([
      adapter.getTransferLogs({ fromBlock: from, toBlock: to, tokens }),
      chain.traces
        ? adapter.getCallFrames(
            blocks.map((b) => ({
              number: BigInt(b.number),
              txHashes: b.transactions.map((t) => t.hash),
            })),
          )
        : Promise.resolve([]),
      fetchReceipts(blocks, txsNeedingReceipts(blocks, watched), receipts),
    ]);
    return { blocks, receipts, logs: await recoverDroppedLogs(blocks, logs), frames };
  }

  const tokenBits = tokens.map((t) => ({ token: t, bits: bloomBits(t) }));
  const transferBits = bloomBits(TRANSFER_TOPIC);

  /**
   * A provider can silently return fewer logs than a range holds. Each block's bloom says which
   * listed tokens may have a Transfer in it; where the range answer has none, ask again for that
   * block by hash. Bloom false positives cost one extra call; a real drop is logged and counted.
   */
  async function recoverDroppedLogs(
    blocks: RangeData["blocks"],
    logs: RawLog[],
  ): Promise<RawLog[]> {
    if (tokenBits.length === 0) return logs;
    const present = new Set(
      logs.map((l) => `${l.blockHash.toLowerCase()}/${l.address.toLowerCase()}`),
    );
    const suspects: { blockHash: Hex; tokens: Address[] }[] = [];
    for (const block of blocks) {
      if (!block.logsBloom) continue;
      const bloom = hexToBytes(block.logsBloom);
      if (!bloomHas(bloom, transferBits)) continue;
      const hash = block.hash.toLowerCase();
      const maybe = tokenBits
        .filter((t) => !present.has(`${hash}/${t.token.toLowerCase()}`) && bloomHas(bloom, t.bits))
        .map((t) => t.token);
      if (maybe.length > 0) suspects.push({ blockHash: block.hash, tokens: maybe });
    }
    if (suspects.length === 0) return logs;
    const found = (await adapter.getTransferLogsAtBlock(suspects)).flat();
    if (found.length > 0) {
      metrics.droppedLogs.inc(labels, found.length);
      logger.warn({
        msg: "eth_getLogs range answer left out logs; recovered them by block hash",
        recovered_logs: found.length,
        blocks: suspects.length,
      });
    }
    return [...logs, ...found];
  }

  async function commitRange(tip: Tip | null, data: RangeData): Promise<Tip> {
    // The watched set may have grown since the fetch: top up receipts for newly watched txs.
    await watched.ensureCurrent(pool);
    await fetchReceipts(data.blocks, txsNeedingReceipts(data.blocks, watched), data.receipts);
    const facts: Fact[] = extractFacts(data, { watched, tokens });
    const headers: BlockHeader[] = data.blocks.map(headerOf);
    const last = headers[headers.length - 1]!;
    const newTip: Tip = { number: last.number, hash: last.hash };
    const { confirmed: upTo, final } = await rulesUpTo(newTip.number);
    const { inserted, confirmed } = await withTransaction(pool, async (client: PoolClient) => {
      // Losing this commit in a Postgres crash loses nothing: the checkpoint goes with it and the
      // range is fetched again; and any later synchronous commit (e.g. a ledger credit that read
      // these facts) flushes the WAL past it first.
      await client.query("SET LOCAL synchronous_commit = off");
      await lockTip(client, chainId, tip);
      const fresh = await insertBlocks(client, chainId, headers);
      const inserted = await insertFacts(client, chainId, facts, upTo, fresh);
      const confirmed =
        upTo === null
          ? { count: 0, fromBlock: null, toBlock: null }
          : await confirmFacts(client, chainId, upTo);
      await saveTip(client, chainId, newTip);
      await publishFinalized(client, chainId, final);
      return { inserted, confirmed };
    });
    metrics.blocks.inc(labels, headers.length);
    const byKind = new Map<string, number>();
    for (const f of facts) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
    for (const [kind, n] of byKind) metrics.facts.inc({ ...labels, kind }, n);
    observeIndexed(newTip.number);
    await ring(mergeChanges(inserted, confirmed), newTip.hash);
    return newTip;
  }

  /** Highest stored canonical block that the node still has with the same hash. */
  async function findCommonAncestor(tip: Tip): Promise<Tip | null> {
    const lowest = await lowestCanonicalBlock(pool, chainId);
    if (lowest === null) return null;
    let hi = tip.number;
    while (hi >= lowest) {
      const lo = hi - 63n > lowest ? hi - 63n : lowest;
      const stored = await canonicalHashes(pool, chainId, lo, hi);
      const numbers: bigint[] = [];
      for (let n = hi; n >= lo; n--) numbers.push(n);
      const remote = await adapter.getHeaders(numbers);
      for (let i = 0; i < numbers.length; i++) {
        const n = numbers[i]!;
        const hash = remote[i]?.hash.toLowerCase();
        if (hash !== undefined && stored.get(n) === hash) return { number: n, hash };
      }
      hi = lo - 1n;
    }
    return null;
  }

  async function handleReorg(tip: Tip): Promise<void> {
    const ancestor = await findCommonAncestor(tip);
    const lowest = (await lowestCanonicalBlock(pool, chainId)) ?? BigInt(chain.startBlock);
    const ancestorNumber = ancestor ? ancestor.number : lowest - 1n;
    const head = await adapter.getHead();
    const [headBlock] = await adapter.getHeaders([head]);
    const newTip: Tip = { number: head, hash: headBlock?.hash.toLowerCase() ?? "unknown" };
    const depth = Number(tip.number - ancestorNumber);
    const beyondWindow = depth > chain.reorgWindow;
    const orphaned = await withTransaction(pool, async (client) => {
      await lockTip(client, chainId, tip);
      const orphaned = await orphanAbove(client, chainId, ancestorNumber);
      await recordReorg(client, {
        chainId,
        depth,
        ancestor: ancestorNumber,
        oldTip: tip,
        newTip,
        beyondWindow,
        orphanedConfirmedFacts: orphaned.confirmedBefore,
      });
      await saveTip(client, chainId, ancestor);
      return orphaned;
    });
    metrics.reorgs.inc({
      ...labels,
      depth: depthBucket(depth),
      beyond_window: String(beyondWindow),
    });
    if (orphaned.confirmedBefore > 0)
      metrics.orphanedConfirmed.inc(labels, orphaned.confirmedBefore);
    const fields = {
      chain_id: chainId,
      depth,
      common_ancestor: ancestorNumber.toString(),
      old_tip: `${tip.number}:${tip.hash}`,
      new_tip: `${newTip.number}:${newTip.hash}`,
      orphaned_facts: orphaned.count,
      orphaned_confirmed_facts: orphaned.confirmedBefore,
      reorg_window: chain.reorgWindow,
    };
    if (beyondWindow || orphaned.confirmedBefore > 0)
      logger.error({ msg: "reorg deeper than the reorg window or confirmation rule", ...fields });
    else logger.warn({ msg: "reorg detected", ...fields });
    observeIndexed(ancestor?.number ?? null);
    await ring(orphaned, newTip.hash);
  }

  let progress = { at: Date.now(), startedAt: Date.now(), startBlock: 0n };

  function reportProgress(indexed: bigint, head: bigint) {
    const now = Date.now();
    if (now - progress.at < progressIntervalMs) return;
    const done = Number(indexed - progress.startBlock);
    const rate = done / Math.max(0.001, (now - progress.startedAt) / 1000);
    const remaining = Number(head - indexed);
    logger.info({
      msg: "backfill progress",
      indexed: indexed.toString(),
      head: head.toString(),
      blocks_per_s: Math.round(rate * 10) / 10,
      remaining_blocks: remaining,
      eta_s: rate > 0 ? Math.round(remaining / rate) : null,
    });
    progress.at = now;
  }

  async function syncOnce(): Promise<void> {
    const head = await adapter.getHead();
    observeHead(head);
    let tip = await loadTip(pool, chainId);
    observeIndexed(tip?.number ?? null);
    if (tip && head <= tip.number) {
      // Nothing new: a same-height or shorter replacement chain shows only in the tip's hash.
      const [atTip] = await adapter.getHeaders([tip.number]);
      if (!atTip || atTip.hash.toLowerCase() !== tip.hash) return handleReorg(tip);
      if (chain.confirmations.kind === "finalized" || finality.kind === "finalized") {
        const { confirmed: upTo, final } = await rulesUpTo(tip.number);
        const change = await withTransaction(pool, async (c) => {
          await publishFinalized(c, chainId, final);
          return upTo === null || chain.confirmations.kind !== "finalized"
            ? { count: 0, fromBlock: null, toBlock: null }
            : confirmFacts(c, chainId, upTo);
        });
        await ring(change, tip.hash);
      }
      return;
    }
    let cursor = tip ? tip.number + 1n : BigInt(chain.startBlock);
    if (head - cursor > batchBlocks)
      progress = { at: Date.now(), startedAt: Date.now(), startBlock: cursor };
    const inflight: { from: bigint; to: bigint; data: Promise<RangeData> }[] = [];
    const launch = () => {
      while (inflight.length < concurrency && cursor <= head && !stopping) {
        const from = cursor;
        const to = from + batchBlocks - 1n < head ? from + batchBlocks - 1n : head;
        const data = fetchRange(from, to);
        data.catch(() => {}); // awaited in order below; later ones may be abandoned
        inflight.push({ from, to, data });
        cursor = to + 1n;
      }
    };
    launch();
    while (inflight.length > 0 && !stopping) {
      const next = inflight.shift()!;
      const calls0 = adapter.rpc.callCount();
      const data = await next.data;
      const first = data.blocks[0]!;
      if (tip && first.parentHash.toLowerCase() !== tip.hash) return handleReorg(tip);
      tip = await commitRange(tip, data);
      metrics.rpcCallsPerBlock.set(labels, (adapter.rpc.callCount() - calls0) / data.blocks.length);
      reportProgress(tip.number, head);
      launch();
    }
  }

  /**
   * One writer per chain: a session advisory lock on a dedicated connection. It dies with the
   * process (kill -9 included), so a standby takes over without any cleanup.
   */
  let lease: PoolClient | undefined;
  let releaseLease: (() => Promise<void>) | undefined;
  async function holdLease(): Promise<boolean> {
    if (lease) return true;
    const client = await pool.connect();
    const { rows } = await client.query<{ ok: boolean }>(
      "SELECT pg_try_advisory_lock($1, $2) AS ok",
      [LEASE_NAMESPACE, chainId],
    );
    if (!rows[0]?.ok) {
      client.release();
      return false;
    }
    const onError = () => {
      if (lease !== client) return;
      lease = undefined;
      client.off("error", onError);
      client.release(true);
    };
    client.on("error", onError);
    releaseLease = async () => {
      if (lease !== client) return;
      lease = undefined;
      client.off("error", onError);
      const ok = await client
        .query("SELECT pg_advisory_unlock($1, $2)", [LEASE_NAMESPACE, chainId])
        .then(
          () => true,
          () => false,
        );
      client.release(!ok);
    };
    lease = client;
    logger.info({ msg: "indexer lease acquired" });
    return true;
  }

  async function run(): Promise<void> {
    let failures = 0;
    let standbyLogged = false;
    while (!stopping) {
      try {
        if (!(await holdLease())) {
          if (!standbyLogged) logger.info({ msg: "another indexer holds this chain, standing by" });
          standbyLogged = true;
          state.standby = true;
          state.syncedAt = Date.now();
          await sleep(Math.max(1000, pollIntervalMs));
          continue;
        }
        state.standby = false;
        await syncOnce();
        state.syncedAt = Date.now();
        state.lastError = null;
        failures = 0;
      } catch (err) {
        if (stopping) break;
        failures++;
        const code = err instanceof BaseError ? err.code : "UNEXPECTED";
        state.lastError = err instanceof Error ? err.message : String(err);
        metrics.errors.inc({ ...labels, code });
        // Inconsistent data is what a reorg in progress looks like: retry soon, quietly.
        if (err instanceof ChainDataInconsistentError)
          logger.info({ msg: "refetching", reason: state.lastError });
        else logger.warn({ msg: "ingest failed, retrying", err, failures });
        await sleep(Math.min(5000, pollIntervalMs * 2 ** Math.min(failures, 5)));
        continue;
      }
      await sleep(pollIntervalMs);
    }
    await releaseLease?.();
  }

  // A wake-up that arrives during a pass (not during a sleep) must not be lost: the pass may have
  // read the head just before the new block, so the next sleep is skipped instead.
  let wakeRequested = false;
  function requestWake(): void {
    if (wake) wake();
    else wakeRequested = true;
  }

  function sleep(ms: number): Promise<void> {
    if (wakeRequested || stopping) {
      wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wake = done;
    });
  }

  /** Subscribe to new heads over WS (if configured) to wake the loop; returns the unsubscribe. */
  function watchHeads(): () => Promise<void> {
    if (!chain.wsUrl) return async () => {};
    const transport = webSocket(chain.wsUrl, { reconnect: true, keepAlive: true, retryCount: 5 });
    const client = createPublicClient({ transport });
    const unwatch = client.watchBlockNumber({
      onBlockNumber: () => {
        state.wsHeads++;
        requestWake();
      },
      onError: (err) =>
        logger.warn({ msg: "new-heads subscription failed; polling continues", err }),
    });
    return async () => {
      unwatch();
      // The socket is shared per URL inside viem; closing it stops its reconnect timers.
      await client.transport
        .getRpcClient()
        .then((c) => c.close())
        .catch(() => {});
    };
  }
  let unwatchHeads: (() => Promise<void>) | undefined;

  return {
    syncOnce,
    watched,
    start() {
      if (loop) return;
      unwatchHeads = watchHeads();
      loop = run();
    },
    async stop() {
      stopping = true;
      await unwatchHeads?.();
      requestWake();
      await loop?.catch(() => {});
      await watched.stop();
    },
    status: () => ({ ...state }),
  };
}

function mergeChanges(a: StatusChange, b: StatusChange): StatusChange {
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
