/**
 * Commit stage: one fetched range becomes one database transaction: blocks, facts (confirmed
 * directly where the confirmation rule is already met), confirmations of earlier facts, the
 * checkpoint (locked and compared with the range's parent), and the published finalized block.
 */
import { operatorFeePaid } from "../../chains/index.js";
import { type PoolClient, withTransaction } from "../../foundation/db.js";
import {
  type BlockHeader,
  extractFacts,
  type Fact,
  headerOf,
  operatorFeesOf,
  type RangeData,
  txsNeedingReceipts,
} from "../extractFacts.js";
import { finalizedHeight, publishFinalized, saveTipAndPublishFinalized } from "../finality.js";
import {
  canonicalHashes,
  confirmFacts,
  insertBlocks,
  insertFacts,
  lockTip,
  type StatusChange,
  type Tip,
} from "../store.js";
import { holdFinal, mergeChanges, observeIndexed, ring, type SyncContext } from "./context.js";
import { fetchReceipts, recoverCutLogs } from "./fetchRange.js";
import { maybePrune } from "./prune.js";

const NO_CHANGE: StatusChange = { count: 0, fromBlock: null, toBlock: null };

/**
 * The node's `finalized` tag, asked only when a rule uses it, and at most every 4 block times
 * (or when the head moved 8 blocks): it moves slowly, and realtime must stay near 2 calls a block.
 * It counts only when its block is our canonical block at that height (stored, or in `range`, the
 * blocks being committed): the endpoint that answered may be on another fork than the one that
 * served our blocks, and its finalized chain then says nothing about ours. A tag above our blocks
 * cannot be checked yet, so it is not used until we reach it. A commit that fails drops the cache
 * (commitRange): `range` never landed, so a check against it says nothing about the next commit.
 */
async function nodeFinalized(ctx: SyncContext, range: BlockHeader[]): Promise<bigint | null> {
  const head = ctx.state.head ?? 0n;
  const cached = ctx.finalizedTag;
  const ttl = Math.max(1000, 4 * ctx.chain.blockTimeMs);
  if (cached && Date.now() - cached.at < ttl && head - cached.head < 8n) return cached.value;
  const tag = await ctx.adapter.getFinalizedBlock();
  let value: bigint | null = null;
  if (tag) {
    const ours =
      range.find((h) => h.number === tag.number)?.hash ??
      (await canonicalHashes(ctx.pool, ctx.chainId, tag.number, tag.number)).get(tag.number);
    if (ours === tag.hash) value = tag.number;
    else
      ctx.logger.info({
        msg: "the node's finalized block is not our block at that height (or not stored yet): not used",
        finalized: `${tag.number}:${tag.hash}`,
        ours: ours ?? null,
      });
  }
  ctx.finalizedTag = { value, at: Date.now(), head };
  return value;
}

/** The highest blocks meeting the confirmation rule and the finality rule, given the stored tip. */
export async function rulesUpTo(
  ctx: SyncContext,
  tip: bigint,
  range: BlockHeader[] = [],
): Promise<{ confirmed: bigint | null; final: bigint | null }> {
  const needsTag =
    ctx.chain.confirmations.kind === "finalized" || ctx.finality.kind === "finalized";
  const tag = needsTag ? await nodeFinalized(ctx, range) : null;
  // Both count from the stored tip (the highest block a node served us and we linked to our chain
  // by parent hash), never from the head: that is one eth_blockNumber or `latest` answer, a number
  // any endpoint can say (a lying proxy, a node of another network), and a bogus one would make
  // every block a backfill stores final. So finality trails the stored tip by N - 1 blocks during a
  // backfill too, and reaches head - N + 1 at the head.
  return {
    confirmed: finalizedHeight(ctx.chain.confirmations, { tip, nodeFinalized: tag }),
    final: finalizedHeight(ctx.finality, { tip, nodeFinalized: tag }),
  };
}

export async function commitRange(
  ctx: SyncContext,
  tip: Tip | null,
  data: RangeData,
  /**
   * watchedCurrent: the fetch already brought the watched set up to date after the blocks were
   * received (fetchBlockData does, beside its RPC calls), so no second barrier is needed.
   */
  opts: { watchedCurrent?: boolean } = {},
): Promise<Tip> {
  const { pool, chainId, watched, tokens } = ctx;
  // The watched set may have grown since the fetch: top up receipts for newly watched txs.
  if (!opts.watchedCurrent) await watched.ensureCurrent(pool);
  await fetchReceipts(ctx, data.blocks, txsNeedingReceipts(data.blocks, watched), data.receipts);
  // Against the watched set as it is now, for both stages' answers (ranged or by hash).
  const logs = await recoverCutLogs(ctx, data);
  // What each watched sender paid outside gas and the L1 data fee (OP stack since Isthmus):
  // receipts do not carry it, so it is read from the chain at the receipt's block.
  const operatorFees = await operatorFeesOf(data, watched, (r) =>
    operatorFeePaid(ctx.adapter.client, ctx.chain, r),
  );
  const facts: Fact[] = extractFacts(
    { ...data, logs },
    {
      operatorFees,
      watched,
      tokens,
      l1DataFee: ctx.chain.l1DataFee,
      onFeeFieldMissing: (field) =>
        ctx.metrics.receiptFeeFieldMissing.inc({ ...ctx.labels, component: "indexer", field }),
    },
  );
  const headers: BlockHeader[] = data.blocks.map(headerOf);
  const last = headers[headers.length - 1]!;
  const newTip: Tip = { number: last.number, hash: last.hash };
  const { confirmed: upTo, final } = await rulesUpTo(ctx, newTip.number, headers);
  const { inserted, confirmed, finalized } = await withTransaction(
    pool,
    async (client: PoolClient) => {
      // Losing this commit in a Postgres crash loses nothing: the checkpoint goes with it and the
      // range is fetched again; and any later synchronous commit (e.g. a ledger credit that read
      // these facts) flushes the WAL past it first. So it commits asynchronously.
      // Following the head this is 5-6 round trips (begin, lock, blocks, facts, confirmations,
      // checkpoint with finality, commit): round trips, not rows, are what a block costs.
      await lockTip(client, chainId, tip, { asyncCommit: true });
      const fresh = await insertBlocks(client, chainId, headers);
      const inserted = await insertFacts(client, chainId, facts, upTo, fresh);
      const confirmed = upTo === null ? NO_CHANGE : await confirmFacts(client, chainId, upTo);
      const finalized = await saveTipAndPublishFinalized(client, chainId, newTip, final);
      return { inserted, confirmed, finalized };
    },
  ).catch((error: unknown) => {
    // The cached tag may have been checked against these blocks, which were not stored: the next
    // commit may be of another fork's blocks at those heights, so it asks the node again.
    ctx.finalizedTag = null;
    throw error;
  });
  ctx.metrics.blocks.inc(ctx.labels, headers.length);
  const byKind = new Map<string, number>();
  for (const f of facts) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  for (const [kind, n] of byKind) ctx.metrics.facts.inc({ ...ctx.labels, kind }, n);
  // Calls per stored block, the polls that found nothing since the last block included.
  const calls = ctx.adapter.rpc.callCount();
  ctx.observed.rpcCallsPerBlock = (calls - ctx.callsAtLastBlock) / headers.length;
  ctx.callsAtLastBlock = calls;
  ctx.knownTip = newTip;
  holdFinal(ctx, finalized);
  observeIndexed(ctx, newTip.number);
  await ring(ctx, mergeChanges(inserted, confirmed), newTip.hash);
  await maybePrune(ctx, finalized?.number);
  return newTip;
}

/**
 * Nothing new to store: rules that follow the node's `finalized` tag may still have moved
 * (confirmations and the published finalized block). Blocks rules cannot: no call is made.
 */
export async function advanceAtTip(ctx: SyncContext, tip: Tip): Promise<void> {
  if (ctx.chain.confirmations.kind !== "finalized" && ctx.finality.kind !== "finalized") return;
  const { confirmed: upTo, final } = await rulesUpTo(ctx, tip.number);
  const { change, finalized } = await withTransaction(ctx.pool, async (c) => {
    const finalized = await publishFinalized(c, ctx.chainId, final);
    const change =
      upTo === null || ctx.chain.confirmations.kind !== "finalized"
        ? NO_CHANGE
        : await confirmFacts(c, ctx.chainId, upTo);
    return { change, finalized };
  });
  holdFinal(ctx, finalized);
  await ring(ctx, change, tip.hash);
  await maybePrune(ctx, finalized?.number);
}
