/**
 * Send stage: sign with KMS, send only stored bytes, and apply the one response of each node error
 * class (nodeErrors.ts). Bytes a node refuses for good are marked `rejected`; what then happens to
 * their nonce (another live attempt, or a cancel) is the nonce stage's job on the next pass, never
 * a recursive call from here, so one refusal can never turn into a loop.
 */
import { type Hex, keccak256 } from "viem";
import { LeaseLostError } from "../errors.js";
import { type Fees, withFees } from "../fees.js";
import type { Lease } from "../lease.js";
import { classifyNodeError, errorText, type NodeErrorClass } from "../nodeErrors.js";
import { type Attempt, liveAttempts, NODE_TOOK, neverTaken, newestPerNonce } from "./attempts.js";
import type { BroadcasterContext } from "./context.js";
import { sendableNow } from "./halt.js";
import { refusalRegassed } from "./regas.js";

/**
 * A node's answer to one send: no `cls` means accepted. `known` says the node answered "already
 * known" (it holds these exact bytes): counted as sent, and the stall stage's evidence that
 * resending them to this node can change nothing.
 */
export type SendResult = { cls?: NodeErrorClass; message?: string; known?: true };

/** Permanent refusals: these signed bytes can never be included anywhere. */
export const DEAD: ReadonlySet<NodeErrorClass> = new Set([
  "intrinsic_gas_too_low",
  "gas_limit_too_high",
  "fee_cap_exceeded",
  "execution_reverted",
]);

export type UnsignedTx = { nonce: bigint; to: Hex; value: bigint; data: Hex; gasLimit: bigint };

export async function signTx(
  ctx: BroadcasterContext,
  tx: UnsignedTx,
  fees: Fees,
): Promise<{ raw: Hex; hash: Hex }> {
  const serializable = withFees(
    {
      chainId: ctx.chain.chainId,
      nonce: Number(tx.nonce),
      to: tx.to,
      value: tx.value,
      data: tx.data,
      gas: tx.gasLimit,
    },
    fees,
  );
  const raw = (await ctx.account.signTransaction(serializable)) as Hex;
  return { raw, hash: keccak256(raw) };
}

/**
 * Send stored bytes; `already_known` counts as sent. Only while the lease is held: a task that
 * lost it sends nothing more (a standby may be replacing these bytes by then).
 */
export async function sendRaw(
  ctx: BroadcasterContext,
  lease: Pick<Lease, "key" | "isHeld">,
  raw: Hex,
): Promise<SendResult> {
  if (!lease.isHeld()) throw new LeaseLostError(lease.key);
  try {
    await ctx.client.sendRawTransaction({ serializedTransaction: raw });
    return {};
  } catch (error) {
    const cls = classifyNodeError(error);
    if (cls === "already_known") return { known: true };
    const message = errorText(error).slice(0, 500);
    ctx.metrics.sendErrors.inc({ ...ctx.labels, class: cls });
    ctx.log.info({ msg: "node refused a send", class: cls, error: message.slice(0, 300) });
    return { cls, message };
  }
}

/**
 * Record a node's refusal of an attempt and apply its class's response; returns whether its bytes
 * were rejected for good. An "intrinsic gas too low" a re-estimate answers (regas.ts: a chain whose
 * gas carries the L1 cost) leaves them live, for the bump stage, as an underpriced refusal does.
 */
async function recordRefusal(
  ctx: BroadcasterContext,
  lease: Lease,
  attempt: Attempt,
  { cls, message }: SendResult,
): Promise<boolean> {
  // Transient/unknown/insufficient funds/a node's own fee cap: the bytes stay `signed` (resent
  // every tick).
  const stillUnsent =
    cls === "transient" ||
    cls === "unknown" ||
    cls === "insufficient_funds" ||
    cls === "node_fee_cap";
  if (cls === "insufficient_funds")
    ctx.alert("insufficient_funds", { nonce: String(attempt.nonce) });
  if (cls === "node_fee_cap")
    ctx.alert("node_fee_cap", {
      request_id: attempt.requestId,
      nonce: String(attempt.nonce),
      error: message,
    });
  if (cls === "unknown") ctx.log.warn({ msg: "unrecognised node error", error: message });
  const dead =
    cls !== undefined && DEAD.has(cls) && !(await refusalRegassed(ctx, lease, attempt, cls));
  const status = dead ? "rejected" : stillUnsent ? "signed" : "broadcast";
  await lease.query(
    `UPDATE custody.tx_attempts
       SET status = CASE WHEN status IN ('signed', 'broadcast') THEN $2 ELSE status END,
           broadcast_at = CASE WHEN $2 = 'broadcast' THEN COALESCE(broadcast_at, now()) ELSE broadcast_at END,
           last_error_class = $3, last_error = $4
     WHERE id = $1`,
    [attempt.id, status, cls ?? null, message ?? null],
  );
  // The request is out only once a node took some attempt of it. An `underpriced` or `nonce_gap`
  // refusal hands the attempt to the bump or nonce stages (status `broadcast`) but no node has it:
  // the request stays `signed` (callers see `signing`), which is what a halted chain holds
  // (halt.ts). A refusal with no class here is an answer that the nonce is pooled or used.
  if (status === "broadcast" && cls === undefined) {
    await lease.query(
      `UPDATE custody.tx_requests SET status = 'broadcast', updated_at = now()
       WHERE id = $1 AND status = 'signed'`,
      [attempt.requestId],
    );
  }
  return dead;
}

/**
 * Send attempts, all at once (one eth_sendRawTransaction request each, so a node may receive a
 * later nonce first and queue it), and record the answers in one transaction. A node that loses
 * or never promotes one of them is the stall stage's case (stall.ts). Nothing is sent once the
 * lease is counted lost (its record would fail anyway): the rest of a tick that lost it sends no
 * more stored bytes, which a standby may be replacing by then.
 */
export async function sendInOrder(
  ctx: BroadcasterContext,
  lease: Lease,
  attempts: readonly Attempt[],
  { afterSend }: { afterSend?: () => void } = {},
): Promise<{ a: Attempt; r: SendResult }[]> {
  if (attempts.length === 0) return [];
  if (!lease.isHeld()) throw new LeaseLostError(lease.key);
  // Every stage sends through here (resync, a nonce gap, stall, nonce stage, cancels, bumps): on a
  // halted chain none sends an attempt of a request no node has taken (halt.ts), the halt read
  // now, not as the tick began.
  const sendable = await sendableNow(ctx, attempts);
  if (sendable.length === 0) return [];
  const results = await Promise.all(
    sendable.map(async (a) => ({ a, r: await sendRaw(ctx, lease, a.raw) })),
  );
  afterSend?.();
  const rejected = new Set<string>();
  await lease.transaction(async () => {
    // Accepted sends in two statements; the rest one by one (they are rare).
    const ok = results.filter(({ r }) => !r.cls);
    if (ok.length > 0) {
      await lease.query(
        `UPDATE custody.tx_attempts
           SET status = 'broadcast', broadcast_at = COALESCE(broadcast_at, now()),
               last_error_class = NULL, last_error = NULL
         WHERE id = ANY($1::bigint[]) AND status IN ('signed', 'broadcast')`,
        [ok.map(({ a }) => a.id)],
      );
      await lease.query(
        `UPDATE custody.tx_requests SET status = 'broadcast', updated_at = now()
         WHERE id = ANY($1) AND status = 'signed'`,
        [ok.map(({ a }) => a.requestId)],
      );
      // One without a receipt (its nonce free again, before the tracker moves it) keeps its
      // status: the take is recorded (NODE_TOOK), so it goes back as `broadcast`, never as `signed`
      // (no node has it), which a halted chain would hold (BACK_TO_BROADCASTER).
      await lease.query(
        `INSERT INTO custody.tx_request_events (request_id, from_status, to_status, event, actor)
         SELECT r.id, r.status, r.status, '${NODE_TOOK}', 'signer' FROM custody.tx_requests r
          WHERE r.id = ANY($1) AND r.status IN ('receipt_unknown', 'needs_review')
            AND ${neverTaken("r.id")}`,
        [ok.map(({ a }) => a.requestId)],
      );
    }
    for (const { a, r } of results) {
      if (!r.cls) continue;
      // An older attempt bounced by its own replacement, or a nonce already used: nothing to
      // record beyond "it was out" (the tracker finds which attempt mined).
      if (r.cls === "replacement_underpriced" || r.cls === "nonce_too_low") {
        if (a.status === "signed") await recordRefusal(ctx, lease, a, {});
        continue;
      }
      if (await recordRefusal(ctx, lease, a, r)) rejected.add(a.id);
    }
  });
  for (const { a, r } of results) {
    const fields = { request_id: a.requestId, nonce: String(a.nonce), class: r.cls };
    if (r.cls === "underpriced")
      ctx.log.info({ msg: "attempt underpriced, bumping", nonce: String(a.nonce) });
    if (rejected.has(a.id))
      ctx.log.warn({
        msg: "attempt rejected for good; its nonce goes to the nonce stage",
        ...fields,
      });
    else if (r.cls && DEAD.has(r.cls))
      ctx.log.warn({
        msg: "attempt refused for gas below what the chain charges now (its L1 cost rose); re-estimating it at the same nonce",
        ...fields,
      });
  }
  if (rejected.size > 0) ctx.crash("after_reject");
  return results;
}

/**
 * Resend stored bytes: after a lease change (every live attempt) or each tick (unsent only), or
 * when a node reports a nonce gap. The newest live attempt per unmined nonce.
 */
export async function resendLive(
  ctx: BroadcasterContext,
  lease: Lease,
  { onlyUnsent, latestCount }: { onlyUnsent: boolean; latestCount: bigint },
): Promise<void> {
  // On a halted chain sendInOrder holds the attempts of a request no node has taken (halt.ts).
  const newest = newestPerNonce(await liveAttempts(ctx, latestCount));
  const toSend = onlyUnsent ? newest.filter((a) => a.status === "signed") : newest;
  if (toSend.length === 0) return;
  const results = await sendInOrder(ctx, lease, toSend);
  if (!onlyUnsent) return;
  // A node missing a lower nonce: give it every live attempt once (never recursively).
  if (results.some(({ r }) => r.cls === "nonce_gap")) {
    const all = newestPerNonce(await liveAttempts(ctx, latestCount));
    await sendInOrder(ctx, lease, all);
  }
}
