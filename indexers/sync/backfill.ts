/**
 * Historical stage: from the stored tip to `head`, ranges of `batchBlocks` are fetched
 * `concurrency` ahead and committed strictly in order. A range whose first parent is not the
 * stored tip is reorg evidence (the node has the next block, so it is past the tip).
 */
import type { RangeData } from "../extractFacts.js";
import type { Tip } from "../store.js";
import { commitRange } from "./commitRange.js";
import type { SyncContext } from "./context.js";
import { fetchRange } from "./fetchRange.js";
import { handleReorg } from "./reorg.js";

export type Progress = { at: number; startedAt: number; startBlock: bigint };

/**
 * The "backfill progress" line, or null when none is due: only while behind the head (indexed <
 * head) and at most once per `intervalMs`, with the rate since this backfill started and the ETA.
 * At the head there is nothing to report, so a caught-up indexer writes no progress lines.
 */
export function progressLine(
  progress: Progress,
  indexed: bigint,
  head: bigint,
  now: number,
  intervalMs: number,
): Record<string, unknown> | null {
  if (indexed >= head) return null;
  if (now - progress.at < intervalMs) return null;
  const done = Number(indexed - progress.startBlock + 1n);
  const rate = done / Math.max(0.001, (now - progress.startedAt) / 1000);
  const remaining = Number(head - indexed);
  return {
    msg: "backfill progress",
    indexed: indexed.toString(),
    head: head.toString(),
    blocks_per_s: Math.round(rate * 10) / 10,
    remaining_blocks: remaining,
    eta_s: rate > 0 ? Math.round(remaining / rate) : null,
  };
}

function reportProgress(ctx: SyncContext, progress: Progress, indexed: bigint, head: bigint) {
  const now = Date.now();
  const line = progressLine(progress, indexed, head, now, ctx.progressIntervalMs);
  if (!line) return;
  ctx.logger.info(line);
  progress.at = now;
}

export async function backfill(ctx: SyncContext, start: Tip | null, head: bigint): Promise<void> {
  let tip = start;
  // Every endpoint's head is asked again each block time (chains/rpc.ts askEveryHead): the ranges
  // are read from a node at the best head seen (fetchRange), and a first endpoint stuck on a
  // losing fork above our tip during a long backfill stayed at it while the chain moved on (no
  // other node was asked its head): its fork was read and stored until the backfill ended.
  let headsAskedAt = Date.now();
  let cursor = tip ? tip.number + 1n : BigInt(ctx.chain.startBlock);
  const progress: Progress = { at: Date.now(), startedAt: Date.now(), startBlock: cursor };
  const inflight: { from: bigint; to: bigint; data: Promise<RangeData> }[] = [];
  const launch = () => {
    while (inflight.length < ctx.concurrency && cursor <= head && !ctx.stopping()) {
      const from = cursor;
      const to = from + ctx.batchBlocks - 1n < head ? from + ctx.batchBlocks - 1n : head;
      const data = fetchRange(ctx, from, to);
      data.catch(() => {}); // awaited in order below; later ones may be abandoned
      inflight.push({ from, to, data });
      cursor = to + 1n;
    }
  };
  launch();
  while (inflight.length > 0 && !ctx.stopping()) {
    const next = inflight.shift()!;
    const data = await next.data;
    const first = data.blocks[0]!;
    if (tip && first.parentHash.toLowerCase() !== tip.hash)
      return handleReorg(ctx, tip, tip.number);
    tip = await commitRange(ctx, tip, data);
    reportProgress(ctx, progress, tip.number, head);
    if (Date.now() - headsAskedAt >= ctx.chain.blockTimeMs) {
      headsAskedAt = Date.now();
      await ctx.adapter.rpc.askEveryHead();
    }
    launch();
  }
}
