/**
 * Stall stage: the wallet's lowest open nonce is the chain's mined count, yet it does not mine.
 * Every later nonce waits behind it, so a send a node lost (dropped from its pool, a load-balanced
 * backend that never passed it on, a pool that holds it but never promotes it: anvil under
 * concurrent sends) freezes the whole hot wallet until the bump interval. Here:
 *
 * 1. The same nonce has been the lowest open one for `stallResendMs`, and its newest live attempt
 *    was sent at least that long ago.
 * 2. The node's pending count is not above that nonce: it holds nothing executable there. A node
 *    that does (pending count above it) is just slow or priced out: that is the bump's business.
 *    Nothing is decided from absence: the answer only chooses between waiting and resending.
 * 3. The attempt's stored bytes are resent (the same transaction: idempotent by hash and nonce).
 * 4. Still not pending `stallResendMs` later, or the node answered "already known" (it holds these
 *    bytes and still counts nothing pending: resending them cannot help), the attempt is bumped at
 *    once: the replacement the bump interval would make anyway, only earlier; every attempt is
 *    stored and whichever mines wins, so no second payment is possible.
 *
 * The state is per process and only paces these steps: after a restart, resync resends every live
 * attempt anyway.
 */
import type { Lease } from "../lease.js";
import {
  ATTEMPT_COLUMNS,
  type Attempt,
  type AttemptRow,
  attemptFromRow,
  type WatchedRequest,
} from "./attempts.js";
import type { ChainSnapshot } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { sendableNow } from "./halt.js";
import { sendInOrder } from "./send.js";

export type StallWatch = {
  /** One pass; returns the attempt ids the bump stage must replace now. */
  check: (
    lease: Lease,
    watched: readonly WatchedRequest[],
    snap: ChainSnapshot,
  ) => Promise<Set<string>>;
};

export function createStallWatch(ctx: BroadcasterContext): StallWatch {
  const heals = ctx.metrics.stallHeals;
  /** The nonce being watched: since when it is the lowest open one, and what was done about it. */
  let watch: {
    nonce: bigint;
    since: number;
    nextCheckAt: number;
    resent?: { attemptId: string; at: number };
    bumped?: string;
  } | null = null;

  async function newestLive(nonce: bigint): Promise<Attempt | undefined> {
    const { rows } = await ctx.pool.query<AttemptRow>(
      `SELECT ${ATTEMPT_COLUMNS} FROM custody.tx_attempts
        WHERE chain_id = $1 AND from_address = $2 AND nonce = $3 AND status IN ('signed', 'broadcast')
        ORDER BY id DESC LIMIT 1`,
      [ctx.chain.chainId, ctx.from, nonce.toString()],
    );
    return rows[0] ? attemptFromRow(rows[0]) : undefined;
  }

  return {
    async check(lease, watched, snap) {
      const early = new Set<string>();
      const T = ctx.settings.stallResendMs;
      const now = Date.now();
      let lowest: WatchedRequest | undefined;
      for (const r of watched)
        if ((r.status === "signed" || r.status === "broadcast") && r.nonce >= snap.latestCount)
          if (!lowest || r.nonce < lowest.nonce) lowest = r;
      if (!lowest || lowest.nonce !== snap.latestCount) {
        watch = null;
        return early;
      }
      if (watch?.nonce !== lowest.nonce)
        watch = { nonce: lowest.nonce, since: now, nextCheckAt: now + T };
      if (now < watch.nextCheckAt) return early;
      const a = await newestLive(lowest.nonce);
      // Unsent bytes are resent every tick by the send stage; no live attempt is the nonce stage's.
      if (a?.status !== "broadcast" || a.sentAt === null) {
        watch.nextCheckAt = now + T;
        return early;
      }
      if (now - a.sentAt < T) {
        watch.nextCheckAt = a.sentAt + T;
        return early;
      }
      if (watch.bumped === a.id) return early;
      // On a halted chain a request no node has taken sends nothing, resent or bumped (halt.ts):
      // nothing to heal until the resume, and no heal to log or count.
      if ((await sendableNow(ctx, [a])).length === 0) {
        watch.nextCheckAt = now + T;
        return early;
      }
      const pending = await ctx.chainView.pendingCount();
      const fields = {
        request_id: a.requestId,
        nonce: String(a.nonce),
        tx_hash: a.txHash,
        node_pending_count: String(pending),
        sent_ms_ago: Math.round(now - a.sentAt),
      };
      if (pending > a.nonce) {
        // The node holds something executable at this nonce: waiting (and the bump) decide.
        watch.nextCheckAt = now + T;
        return early;
      }
      // already_known: the node holds these bytes and counts nothing pending (it will not execute
      // them); not_pending: they were resent and accepted one pass ago, and still nothing is.
      let reason = "not_pending";
      if (watch.resent?.attemptId !== a.id) {
        ctx.log.warn({
          msg: "lowest open nonce not mined and not pending on the node; resending its stored bytes",
          ...fields,
        });
        heals.inc({ ...ctx.labels, action: "resend" });
        const [result] = await sendInOrder(ctx, lease, [a]);
        watch.resent = { attemptId: a.id, at: Date.now() };
        watch.nextCheckAt = Date.now() + T;
        if (!result?.r.known) return early;
        reason = "already_known";
      } else if (now - watch.resent.at < T) {
        return early;
      }
      ctx.log.warn({
        msg: "lowest open nonce still not pending on the node after its stored bytes were resent; bumping it now",
        reason,
        ...fields,
      });
      heals.inc({ ...ctx.labels, action: "bump" });
      watch.bumped = a.id;
      early.add(a.id);
      return early;
    },
  };
}
