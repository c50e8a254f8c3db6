/**
 * Storage that stays small: after a commit moved the published finalized block, stored blocks
 * more than `blockRetention` below it are deleted (a bounded batch per pass, at most every
 * `pruneIntervalMs`). What stays: every block a reorg can reach (above the finalized block, which
 * never moves down: a reorg reaching it halts the chain) plus the retention below it for audits,
 * the finalized block that reconciliation and the ledger read included. Facts are never pruned.
 */
import { pruneBlocks } from "../store.js";
import type { SyncContext } from "./context.js";

/** Rows deleted per statement: keeps each DELETE short next to the ingest transactions. */
const PRUNE_BATCH = 20_000;

export async function maybePrune(ctx: SyncContext, finalized: bigint | null | undefined) {
  if (finalized === null || finalized === undefined) return;
  const now = Date.now();
  if (now - ctx.prune.at < ctx.prune.intervalMs) return;
  const below = finalized - BigInt(ctx.prune.retention);
  if (below <= ctx.prune.below) return;
  ctx.prune.at = now;
  try {
    let deleted = 0;
    for (;;) {
      const n = await pruneBlocks(ctx.pool, ctx.chainId, below, PRUNE_BATCH);
      deleted += n;
      if (n < PRUNE_BATCH || ctx.stopping()) break;
    }
    ctx.prune.below = below;
    if (deleted > 0)
      ctx.logger.debug({ msg: "pruned blocks", below: below.toString(), blocks: deleted });
  } catch (err) {
    // Pruning is housekeeping: a failure is retried at the next interval, ingestion goes on.
    ctx.logger.warn({ msg: "pruning blocks failed", err });
  }
}
