/**
 * Halt stage: on a halted chain (indexers/halts.ts, docs/chain-halts.md) nothing new leaves the hot
 * wallet. A reorg reached a final block and, until an operator resumes the chain, the balances the
 * requests were approved against may count deposits the chain no longer has. So, while the chain's
 * halt is open:
 *
 * - intake signs nothing: pending requests keep no nonce and wait (neither failed nor cancelled);
 * - a request no node has taken yet (status `signed`: none of its attempts was accepted, pooled or
 *   mined; a node refusing one as underpriced or as a nonce gap took nothing, send.ts; or one that
 *   went from `signed` to receipt_unknown or review, its nonce used by another transaction, and
 *   whose nonce is free again: the tracker moves it back to `signed`, track.ts) sends
 *   nothing: not its stored bytes (resync, each tick, a nonce gap, the stall stage), no
 *   replacement of them (bump stage), which would be its first broadcast, and no cancel of its
 *   nonce (its payment refused for good: cancel.ts signs none while the halt is open, and one
 *   signed as the halt opened waits, stored): a cancel is new bytes too, and it would spend gas
 *   and the nonce on a request the resume would otherwise just send. sendInOrder and the bump
 *   stage ask `sendableNow`.
 *
 * What is already out is followed as before, and what only finishes it goes on: its stored bytes
 * again (resync, stall, a reorg's resend), bumps (the same payload at the same nonce, re-signed: one
 * of them mines, never both) and its cancels (0 to ourselves): none moves value a node has not
 * already been given, and holding them would only leave a sent payment stuck in a pool.
 *
 * Where the halt is read: at each tick's start (readHalt: intake and the cancel stage sign nothing
 * new, the gauge), and again right before each batch of stored bytes is sent (sendableNow, one
 * indexed query per batch): between the two lie gas estimates, KMS signatures (hundreds of ms,
 * more when KMS is slow) and the other stages, and a halt the indexer opens meanwhile must hold
 * bytes no node has taken yet, the batch intake (or a cancel) has just stored among them (they
 * stay `signed`, sent after the resume). The requests waiting on it are the gauge
 * `custody_signer_held_requests{reason="chain_halted"}`, and a log line marks each halt seen and
 * its end, once each, whichever read saw it. After the resume the next tick takes them as usual.
 */
import type { ChainHalt } from "../../indexers/index.js";
import { openHalt } from "../../indexers/index.js";
import { type Attempt, neverTaken } from "./attempts.js";
import type { BroadcasterContext } from "./context.js";

/** Read the chain's open halt into `ctx.state.halt`; export how many requests wait on it. */
export async function readHalt(ctx: BroadcasterContext): Promise<ChainHalt | null> {
  const halt = await openHalt(ctx.pool, ctx.chain.chainId);
  await noteHalt(ctx, halt);
  return halt;
}

/**
 * The chain's open halt read now, not as the tick began: a halt opened since is taken into
 * `ctx.state.halt` (logged and exported as at a tick's start), so the rest of the tick holds too.
 */
export async function freshHalt(ctx: BroadcasterContext): Promise<ChainHalt | null> {
  const halt = await openHalt(ctx.pool, ctx.chain.chainId);
  if (halt?.id !== ctx.state.halt?.id) await noteHalt(ctx, halt);
  return halt;
}

/** Keep `halt` as the chain's; log a halt first seen and its end (once each); export the gauge. */
async function noteHalt(ctx: BroadcasterContext, halt: ChainHalt | null): Promise<void> {
  const was = ctx.state.halt;
  ctx.state.halt = halt;
  let held = 0;
  if (halt) {
    const { rows } = await ctx.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM custody.tx_requests
        WHERE chain_id = $1 AND from_address = $2 AND status IN ('pending', 'signed')`,
      [ctx.chain.chainId, ctx.from],
    );
    held = rows[0]!.n;
    if (was?.id !== halt.id)
      ctx.log.warn({
        msg: "chain halted: no new transaction is signed or sent until an operator resumes it",
        halted_since: halt.haltedAt.toISOString(),
        reason: halt.reason,
        held_requests: held,
      });
  } else if (was) {
    ctx.log.info({ msg: "chain resumed: held requests go out", halted_since: was.haltedAt });
  }
  ctx.metrics.held.set({ ...ctx.labels, reason: "chain_halted" }, held);
}

/**
 * The attempts that may be sent (or replaced) now: on a halted chain, none of a request no node
 * has taken yet (status `signed`: its payment, or a cancel of its nonce); the rest only finishes
 * what a node already has. The halt is read fresh (freshHalt): the tick's read may be older than
 * the KMS signature of the bytes about to go out.
 */
export async function sendableNow(
  ctx: BroadcasterContext,
  attempts: readonly Attempt[],
): Promise<Attempt[]> {
  if (attempts.length === 0) return [];
  if (!(await freshHalt(ctx))) return [...attempts];
  // Also one in receipt_unknown or review that no node ever took (neverTaken): the resync sends
  // its stored bytes once its nonce is free again, before the tracker moves it back to `signed`.
  const { rows } = await ctx.pool.query<{ id: string }>(
    `SELECT r.id FROM custody.tx_requests r
      WHERE r.id = ANY($1::text[])
        AND (r.status = 'signed'
             OR (r.status IN ('receipt_unknown', 'needs_review') AND ${neverTaken("r.id")}))`,
    [[...new Set(attempts.map((a) => a.requestId))]],
  );
  const unsent = new Set(rows.map((r) => r.id));
  return attempts.filter((a) => !unsent.has(a.requestId));
}
