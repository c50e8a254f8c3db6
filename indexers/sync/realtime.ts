/**
 * Realtime stage: one pass of following the head. The poll is one call, `latest` block with its
 * transactions, from an endpoint at or past the best head seen, else at or past our stored tip (and
 * past it when our tip has been the head for a block time: see poll, a node stuck on a fork):
 * - same block as our tip: nothing to do (no second call to re-check the tip's hash: the poll did);
 * - the next block on our tip: stored with its logs by block hash (only when its bloom may hold a
 *   listed token's Transfer), receipts of watched txs and traces where on: ~2 calls per block;
 * - a different hash at our height, or a next block on another parent: reorg evidence;
 * - further ahead: the historical stage takes the gap.
 * With no endpoint at our tip, one endpoint's `latest` is compared with our block at its height: a
 * different hash is reorg evidence from a node at that height; the same hash means the nodes are
 * behind, so ingestion waits (NoHealthyEndpointError to the loop: readiness false, a metric).
 * New heads over WS only wake the loop earlier (watchHeads).
 */
import { NoHealthyEndpointError, type RawBlock, watchNewHeads } from "../../chains/index.js";
import { readFinalized } from "../finality.js";
import { canonicalHashes, loadTip, type Tip } from "../store.js";
import { backfill } from "./backfill.js";
import { advanceAtTip, commitRange } from "./commitRange.js";
import { holdFinal, observeHead, observeIndexed, type SyncContext } from "./context.js";
import { fetchBlockData } from "./fetchRange.js";
import { handleReorg } from "./reorg.js";

/**
 * `stored`: the next block on our tip; `behind`: more than one block (the historical stage took
 * them), so look again at once; `idle`: nothing new.
 */
export type PassResult = "stored" | "behind" | "idle";

/** One pass: bring the stored chain up to the node's head. */
export async function syncPass(ctx: SyncContext): Promise<PassResult> {
  const tip = ctx.knownTip ?? (await loadTip(ctx.pool, ctx.chainId));
  ctx.knownTip = null;
  observeIndexed(ctx, tip?.number ?? null);
  // Before the first read: the best head from every endpoint, not only from the first one asked.
  // A first endpoint stuck on a losing fork (its head stopped above our tip, or above the start
  // block) answered the poll, and the backfill to its head read its fork (the best head it showed
  // was the only one seen): orphaned blocks stored, their deposits credited, and a fork below the
  // chain's final blocks halted the chain once a node past it was asked. Each endpoint shows our
  // published final block first (chains/rpc.ts holdFinal): a node of another network with our
  // chain id and a higher head was the best head, its blocks read over ours (a reorg reaching our
  // final blocks: the chain halted).
  if (!ctx.headsAsked) {
    holdFinal(ctx, await readFinalized(ctx.pool, ctx.chainId));
    await ctx.adapter.rpc.askEveryHead();
    ctx.headsAsked = true;
  }
  if (tip === null) {
    const head = await ctx.adapter.getHead({ preferBestHead: true });
    observeHead(ctx, head);
    if (head < BigInt(ctx.chain.startBlock)) return "idle";
    await backfill(ctx, null, head);
    return "behind";
  }
  let latest: RawBlock;
  try {
    latest = await poll(ctx, tip);
  } catch (error) {
    if (error instanceof NoHealthyEndpointError) return behindTip(ctx, tip, error);
    throw error;
  }
  const n = BigInt(latest.number);
  observeHead(ctx, n);
  ctx.state.noHealthyEndpoint = null;
  if (n === tip.number) {
    if (latest.hash.toLowerCase() !== tip.hash) {
      await handleReorg(ctx, tip, tip.number);
      return "stored";
    }
    await advanceAtTip(ctx, tip);
    ctx.knownTip = tip;
    return "idle";
  }
  if (n === tip.number + 1n) {
    if (latest.parentHash.toLowerCase() !== tip.hash) {
      await handleReorg(ctx, tip, tip.number);
      return "stored";
    }
    await commitRange(ctx, tip, await fetchBlockData(ctx, latest), { watchedCurrent: true });
    return "stored";
  }
  await backfill(ctx, tip, n);
  return "behind";
}

/**
 * The `latest` block, from a node at or past the best head seen when one is there, else at or
 * past our tip (preferBestHead). A node stuck on a losing fork (its consensus client gone: its
 * head stopped, it keeps answering the orphaned blocks) is at or past our tip for ever: asked
 * first, its `latest` is our tip ("nothing new", while the chain moves on and a deposit in an
 * orphaned block stays credited), or a block of its fork above ours that the historical stage
 * would store. So our tip for a block time already is asked once more of a node past it (how the
 * best head is learned when the first endpoint never falls behind); none there: our tip.
 */
async function poll(ctx: SyncContext, tip: Tip): Promise<RawBlock> {
  const latest = await ctx.adapter.getLatestBlock(tip.number, { preferBestHead: true });
  if (
    BigInt(latest.number) !== tip.number ||
    Date.now() - ctx.state.headChangedAt < ctx.chain.blockTimeMs
  )
    return latest;
  return ctx.adapter.getLatestBlock(tip.number + 1n).catch((error: unknown) => {
    if (error instanceof NoHealthyEndpointError) return latest;
    throw error;
  });
}

async function behindTip(
  ctx: SyncContext,
  tip: Tip,
  waiting: NoHealthyEndpointError,
): Promise<PassResult> {
  // Any endpoint's latest block: a different hash at its own height is evidence; null is a
  // syncing node; the same hash is a node behind us.
  const latest = await ctx.adapter.getLatestBlock().catch(() => null as RawBlock | null);
  if (latest) {
    const n = BigInt(latest.number);
    const stored = (await canonicalHashes(ctx.pool, ctx.chainId, n, n)).get(n);
    if (n <= tip.number && stored !== undefined && stored !== latest.hash.toLowerCase()) {
      await handleReorg(ctx, tip, n);
      return "stored";
    }
  }
  throw waiting;
}

/** Subscribe to new heads over WS (if configured) to wake the loop; returns the unsubscribe. */
export function watchHeads(ctx: SyncContext, onHead: () => void): () => Promise<void> {
  const wsUrl = ctx.chain.wsUrl;
  if (!wsUrl) return async () => {};
  return watchNewHeads(wsUrl, {
    onHead: () => {
      ctx.state.wsHeads++;
      onHead();
    },
    onError: (err) =>
      ctx.logger.warn({ msg: "new-heads subscription failed; polling continues", err }),
  });
}
