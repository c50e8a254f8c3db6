/**
 * Nonce stage: the chain's mined count is the truth (Chainlink TXM's approach). Each pass, every
 * nonce of ours that the chain has not used must have a live attempt (stored bytes a node may
 * still include); one that has none gets its newest stored non-rejected attempt back on the wire
 * or, when every attempt was refused for good, becomes a cancel job. This is also what revisits a
 * nonce whose cancel failed (KMS or RPC error, kill -9 between the refusal and the cancel): the
 * job is derived from Postgres and the chain each pass, never remembered in memory only. A request
 * an operator failed while its nonce was unused (cancel_requested_at, operator.ts; or `failed` by
 * an operator before migration 0107) never gets its own bytes back: only cancels use its nonce;
 * nor does one whose failure at a final block a deep reorg undid (failure_undone_at, undone.ts).
 * Nothing is decided on a count from a node behind the best head seen (`atBestHead`): it is as of
 * an older block, so a nonce the chain used since reads as unused (a cancel signed for it, stored
 * bytes marked live again); the stage waits for a node at the head.
 */
import type { Lease } from "../lease.js";
import { type Attempt, attemptsOf, cancelsOnly, type WatchedRequest } from "./attempts.js";
import type { ChainSnapshot } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { sendInOrder } from "./send.js";

export type CancelJob = {
  requestId: string;
  nonce: bigint;
  status: string;
  /** An operator failed it (failed already, or cancel_requested): cancels only, never given up. */
  byOperator: boolean;
};

export type NonceCheck = {
  jobs: CancelJob[];
  /**
   * Requests an operator failed outright before migration 0107 whose nonce the chain has not
   * used: not followed (not in the watched set), so the bump stage is told whose cancels to raise.
   */
  legacyFailed: ReadonlySet<string>;
};

export async function checkNonces(
  ctx: BroadcasterContext,
  lease: Lease,
  watched: readonly WatchedRequest[],
  snap: ChainSnapshot,
): Promise<NonceCheck> {
  if (!snap.atBestHead) return { jobs: [], legacyFailed: new Set() };
  const open = watched.filter(
    (r) => (r.status === "signed" || r.status === "broadcast") && r.nonce >= snap.latestCount,
  );
  const jobs: CancelJob[] = [];
  // Requests an operator failed outright before migration 0107 keep their nonce: if the chain has
  // not used it, cancel it. (Since 0107 such a request stays `broadcast` until a cancel is final.)
  const { rows } = await ctx.pool.query<{ id: string; nonce: string }>(
    `SELECT id, nonce::text FROM custody.tx_requests
      WHERE chain_id = $1 AND from_address = $2 AND status = 'failed' AND nonce >= $3`,
    [ctx.chain.chainId, ctx.from, snap.latestCount.toString()],
  );
  const failed = rows.map((r) => ({
    id: r.id,
    nonce: BigInt(r.nonce), // int8 text, not NUMERIC
    status: "failed",
    cancelRequested: true,
    failureUndone: false,
  }));
  const legacyFailed = new Set(failed.map((r) => r.id));
  const ids = [...open.map((r) => r.id), ...failed.map((r) => r.id)];
  if (ids.length === 0) return { jobs, legacyFailed };
  // Which of them have no live attempt (usually none): only those have their attempts read.
  const { rows: bare } = await ctx.pool.query<{ id: string }>(
    `SELECT id FROM unnest($1::text[]) AS r(id)
      WHERE NOT EXISTS (SELECT 1 FROM custody.tx_attempts a
                         WHERE a.request_id = r.id AND a.status IN ('signed', 'broadcast'))`,
    [ids],
  );
  if (bare.length === 0) return { jobs, legacyFailed };
  const bareIds = new Set(bare.map((r) => r.id));
  const attempts = await attemptsOf(ctx, [...bareIds]);
  const revive: Attempt[] = [];
  for (const req of [...open, ...failed]) {
    if (!bareIds.has(req.id)) continue;
    const mine = attempts.get(req.id) ?? [];
    if (mine.some((a) => a.status === "signed" || a.status === "broadcast")) continue;
    // Newest first: the best-paying bytes that no node refused for good.
    const usable = mine.find((a) => a.status !== "rejected");
    // Failed by an operator, or failed at a final block a deep reorg undid (its caller released
    // its hold, undone.ts): its payment is never sent again, and no one is left to decide.
    const onlyCancels = cancelsOnly(req);
    if (usable && !onlyCancels) revive.push(usable);
    else
      jobs.push({
        requestId: req.id,
        nonce: req.nonce,
        status: req.status,
        byOperator: onlyCancels,
      });
  }
  if (revive.length > 0) {
    ctx.log.warn({
      msg: "nonce without a live attempt; resending its stored bytes",
      nonces: revive.map((a) => String(a.nonce)),
    });
    await lease.query(
      "UPDATE custody.tx_attempts SET status = 'broadcast', broadcast_at = now() WHERE id = ANY($1::bigint[])",
      [revive.map((a) => a.id)],
    );
    await sendInOrder(
      ctx,
      lease,
      revive.sort((x, y) => (x.nonce < y.nonce ? -1 : 1)),
    );
  }
  return { jobs, legacyFailed };
}
