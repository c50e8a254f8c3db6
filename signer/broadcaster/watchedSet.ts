/**
 * The requests the broadcaster follows (attempts.ts `watchedRequests`: with a nonce and not final),
 * kept in memory so a tick reads only the rows that changed instead of every open request twice
 * per 500 ms. Every update of a request stamps `changed_at` (a trigger, migration 0104); a read
 * takes the rows changed since the previous read minus an overlap (a transaction that stamped its
 * rows before our read but committed after it is seen next time), and every `fullReloadMs` the
 * whole set is read again, so nothing can stay stale for longer than that.
 */
import {
  WATCHED_COLUMNS,
  type WatchedRequest,
  type WatchedRow,
  watchedFromRow,
  watchedRequests,
} from "./attempts.js";
import type { BroadcasterContext } from "./context.js";

const WATCHED_STATES = new Set(["signed", "broadcast", "mined", "receipt_unknown", "needs_review"]);

const CHANGED = `
SELECT ${WATCHED_COLUMNS}, nonce IS NOT NULL AS has_nonce
FROM custody.tx_requests
WHERE chain_id = $1 AND from_address = $2 AND changed_at >= $3`;

export type WatchedSet = {
  /** The watched requests now, by nonce. */
  read: () => Promise<WatchedRequest[]>;
  /** What the last read fetched: the whole set, or only the rows changed since the one before. */
  lastRead: () => { full: boolean; rows: number };
};

export function createWatchedSet(
  ctx: Pick<BroadcasterContext, "pool" | "chain" | "from">,
  { overlapMs = 10_000, fullReloadMs = 30_000 }: { overlapMs?: number; fullReloadMs?: number } = {},
): WatchedSet {
  const byId = new Map<string, WatchedRequest>();
  let sorted: WatchedRequest[] = [];
  /** Database time of the last read (the next read takes rows changed since then minus the overlap). */
  let readAt: Date | undefined;
  let fullAt = 0;
  let last = { full: true, rows: 0 };

  /** Database time, read before the rows: a row stamped later is at or after it. */
  const dbNow = async () =>
    (await ctx.pool.query<{ now: Date }>("SELECT clock_timestamp() AS now")).rows[0]!.now;

  async function full() {
    const at = await dbNow();
    const all = await watchedRequests(ctx);
    byId.clear();
    for (const r of all) byId.set(r.id, r);
    sorted = all;
    readAt = at;
    fullAt = Date.now();
    last = { full: true, rows: all.length };
  }

  async function changed(since: Date) {
    const { rows } = await ctx.pool.query<WatchedRow & { has_nonce: boolean }>(CHANGED, [
      ctx.chain.chainId,
      ctx.from,
      new Date(since.getTime() - overlapMs),
    ]);
    last = { full: false, rows: rows.length };
    if (rows.length === 0) return;
    for (const row of rows) {
      const watched =
        row.has_nonce &&
        (WATCHED_STATES.has(row.status) || (row.status === "confirmed" && !row.finalized));
      if (watched) byId.set(row.id, watchedFromRow(row));
      else byId.delete(row.id);
    }
    sorted = [...byId.values()].sort((x, y) =>
      x.nonce < y.nonce ? -1 : x.nonce > y.nonce ? 1 : 0,
    );
  }

  return {
    async read() {
      if (readAt === undefined || Date.now() - fullAt >= fullReloadMs) await full();
      else {
        const since = readAt;
        const at = await dbNow();
        await changed(since);
        readAt = at;
      }
      return sorted;
    },
    lastRead: () => last,
  };
}
