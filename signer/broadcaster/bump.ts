/**
 * Bump stage: the newest live attempt of a nonce not mined within the chain's bump interval (or
 * refused as underpriced, or named by the stall stage: the node holds nothing executable at the
 * lowest nonce even after its stored bytes were resent) is replaced at the same nonce with fees
 * raised by at least the replacement minimum (fees.ts), never above the cap; at the cap an alert
 * fires and the capped attempt is resent as is (so is a due attempt while fees cannot be read),
 * through sendInOrder like every send, so the node's answer is recorded. A failed re-signature
 * (KMS) is retried on a later pass. A request an operator failed (or one whose failure a deep
 * reorg undid, undone.ts) has only its cancels bumped,
 * including one failed outright before migration 0107, which is not followed (nonces.ts names
 * those whose nonce is still unused). On a halted chain no attempt of a request no node has taken
 * (its payment or a cancel) is replaced or resent (halt.ts); the halt is read again after a KMS
 * signature of the pass. A replacement raises its nonce's worst case: one the balance cannot cover
 * with the rest in flight (budget.ts) is not signed either, and the current attempt is resent as
 * at the cap (alert `insufficient_funds`): signed, the node may take it, and once the nonces
 * before it mine the wallet can no longer pay it, while its old bytes, which it could, are gone
 * from the pool; that nonce then holds every later one for good. New sends wait meanwhile
 * (`state.bumpsOwed`). A new cancel (cancel.ts) is not held: it fills a nonce nothing else can.
 */
import { LeaseLostError } from "../errors.js";
import { type BumpResult, bumpFees, estimateFees, type Fees } from "../fees.js";
import { maxCost } from "../gas.js";
import type { Lease } from "../lease.js";
import {
  cancelsOnly,
  liveAttempts,
  newestPerNonce,
  storeAttempt,
  type WatchedRequest,
} from "./attempts.js";
import { type InFlight, inFlightCost, readL1Yardstick } from "./budget.js";
import type { BroadcasterContext } from "./context.js";
import { sendableNow } from "./halt.js";
import { reestimate, regasDue, rejectAttempt } from "./regas.js";
import { DEAD, sendInOrder, signTx } from "./send.js";

export async function bump(
  ctx: BroadcasterContext,
  lease: Lease,
  watched: readonly WatchedRequest[],
  latestCount: bigint,
  /** Attempts to replace now whatever their age (the stall stage's escalation). */
  early: ReadonlySet<string> = new Set(),
  /** Requests outside the watched set whose cancels are still raised (nonces.ts, legacyFailed). */
  cancelsOf: ReadonlySet<string> = new Set(),
): Promise<void> {
  const { chain } = ctx;
  const now = Date.now();
  const inFlight = new Map(
    watched.filter((r) => r.status === "signed" || r.status === "broadcast").map((r) => [r.id, r]),
  );
  const candidates = newestPerNonce(await liveAttempts(ctx, latestCount)).filter(
    (a) =>
      // An operator failed it: its payment is never signed again, only its cancel is bumped.
      (inFlight.has(a.requestId)
        ? a.purpose === "cancel" || !cancelsOnly(inFlight.get(a.requestId)!)
        : a.purpose === "cancel" && cancelsOf.has(a.requestId)) &&
      (a.lastErrorClass === "underpriced" ||
        regasDue(a) ||
        early.has(a.id) ||
        (a.status === "broadcast" && now - (a.sentAt ?? a.createdAt) >= chain.bumpIntervalMs)),
  );
  // On a halted chain a request no node has taken (refused as underpriced, say) is neither
  // replaced nor resent: its replacement would be its first send (halt.ts). What is out is bumped.
  const due = await sendableNow(ctx, candidates);
  // A bump owed for a nonce used since holds nothing back any more.
  for (const nonce of ctx.state.bumpsOwed.keys())
    if (nonce < latestCount) ctx.state.bumpsOwed.delete(nonce);
  if (due.length === 0) return;
  // Fees are needed only to sign a replacement, and the balance and what is in flight to check it
  // fits: a node that cannot tell them gets the due attempts' stored bytes again (as at the cap),
  // and the tick goes on to its doorbells. The count and the balance are one node's, read
  // together, the count first, as intake reads them (chainView walletNow): a send mined between
  // is counted twice (a bump waits), never in neither; and what is in flight is counted from
  // that count (budget.ts `UNMINED_THERE`), whatever the tracker has seen mined since.
  let market: Fees | undefined;
  let budget: { balance: bigint; spent: InFlight; left: bigint } | undefined;
  let head: bigint | undefined;
  try {
    const wallet = await ctx.chainView.walletNow();
    const fees = await estimateFees(ctx.client, chain, wallet.head, ctx.chainView.gasPriceAt);
    const l1 = await readL1Yardstick(ctx, wallet.head);
    const { balance } = wallet;
    const spent = await inFlightCost(ctx, wallet.latestCount, l1);
    market = fees;
    budget = { balance, spent, left: balance - spent.total };
    head = wallet.head;
  } catch (error) {
    ctx.log.warn({
      msg: "fees not known, due attempts resent unchanged",
      due: due.length,
      err: error,
    });
  }
  // `due` is as of the halt read before the loop; a replacement's KMS signature (hundreds of ms,
  // more when KMS is slow) leaves time for the indexer to open a halt. So after a signature the
  // halt is read again (sendableNow) before the next attempt is replaced: none is re-signed for a
  // request the halt now holds (sendInOrder would hold its bytes, but KMS signed new ones).
  let signedSinceRead = false;
  let sendable: ReadonlySet<string> | undefined;
  for (const [i, a] of due.entries()) {
    // A task that lost the lease neither resends nor signs: a standby may own this nonce now, and
    // a replacement signed here could never be stored (its store goes through the lost lease).
    if (!lease.isHeld()) throw new LeaseLostError(lease.key);
    if (signedSinceRead) {
      sendable = new Set((await sendableNow(ctx, due.slice(i))).map((d) => d.id));
      signedSinceRead = false;
    }
    if (sendable && !sendable.has(a.id)) continue;
    let result: BumpResult =
      market === undefined
        ? { replace: false, capped: false }
        : bumpFees(a.fees, market, chain.maxFeePerGas);
    // Refused for gas below what the chain charges now (regas.ts): re-estimated at the wallet's
    // head and re-signed, at its own fees where the cap leaves no room to raise them.
    let gasLimit = a.gasLimit;
    const regasAt = regasDue(a) && inFlight.has(a.requestId) ? head : undefined;
    const regassed = regasAt !== undefined;
    if (regassed) {
      const fresh = await reestimate(ctx, lease, a, inFlight.get(a.requestId)!, regasAt);
      if (fresh === undefined) continue;
      gasLimit = fresh;
      if (!result.replace) result = { replace: true, fees: a.fees, capped: result.capped };
    }
    if (result.capped) {
      ctx.metrics.feeCapHits.inc(ctx.labels);
      ctx.alert("fee_cap", {
        request_id: a.requestId,
        nonce: String(a.nonce),
        cap: chain.maxFeePerGas.toString(),
      });
      await lease.query(
        "UPDATE custody.tx_requests SET fee_capped_at = COALESCE(fee_capped_at, now()), updated_at = now() WHERE id = $1",
        [a.requestId],
      );
    }
    if (result.replace && budget) {
      const raise = replacementRaise(budget.spent, a, gasLimit, result.fees);
      if (raise > budget.left) {
        ctx.state.bumpsOwed.set(a.nonce, raise);
        ctx.alert("insufficient_funds", {
          request_id: a.requestId,
          nonce: String(a.nonce),
          balance: budget.balance.toString(),
          in_flight: (budget.balance - budget.left).toString(),
          bump: raise.toString(),
        });
        result = { replace: false, capped: false };
      } else {
        budget.left -= raise;
        ctx.state.bumpsOwed.delete(a.nonce);
      }
    }
    if (!result.replace) {
      // No valid replacement under the cap or within the balance, or no fees known: keep the
      // current attempt, resend it, wait. Through sendInOrder, as every stage sends: the halt
      // read now, and the node's answer recorded (bytes refused as underpriced and taken now put
      // the request out, and are no longer due every pass; a refusal gets its class's response).
      // Its clock restarts: at the cap it is resent once per bump interval, not every pass.
      const [sent] = await sendInOrder(ctx, lease, [a]);
      if (sent)
        await lease.query("UPDATE custody.tx_attempts SET broadcast_at = now() WHERE id = $1", [
          a.id,
        ]);
      continue;
    }
    // Same nonce, same gas limit (but a re-estimate's); a cancel stays a cancel. A payment is
    // re-signed only for a request in flight (every other due attempt is a cancel, filtered above).
    const req = inFlight.get(a.requestId);
    const tx =
      a.purpose === "cancel" || req === undefined
        ? { nonce: a.nonce, to: ctx.from, value: 0n, data: "0x" as const, gasLimit }
        : { nonce: a.nonce, to: req.to, value: req.value, data: req.data, gasLimit };
    let signed: { raw: `0x${string}`; hash: `0x${string}` };
    signedSinceRead = true;
    try {
      signed = await signTx(ctx, tx, result.fees);
    } catch (error) {
      ctx.log.warn({ msg: "KMS signing of a bump failed; retried next pass", err: error });
      continue;
    }
    // A re-estimate's replacement takes the refused bytes' place: they are rejected with it (never
    // resent; found still if they mine, as every attempt is), so a refusal of the replacement is
    // counted against MAX_REGAS and, past it, leaves the nonce to the nonce stage's cancel.
    const stored = await lease.transaction(async () => {
      if (regassed) await rejectAttempt(lease, a.id);
      return storeAttempt(ctx, lease, {
        requestId: a.requestId,
        nonce: a.nonce,
        purpose: a.purpose,
        hash: signed.hash,
        raw: signed.raw,
        gasLimit: tx.gasLimit,
        fees: result.fees,
      });
    });
    ctx.metrics.attempts.inc({ ...ctx.labels, kind: regassed ? "regas" : "bump" });
    ctx.log.info({
      msg: regassed ? "attempt re-signed with a fresh gas estimate" : "attempt bumped",
      request_id: a.requestId,
      nonce: String(a.nonce),
      tx_hash: signed.hash,
      ...(regassed ? { gas_limit: String(gasLimit), was: String(a.gasLimit) } : {}),
    });
    const [sent] = await sendInOrder(ctx, lease, [stored]);
    // A replacement refused for good (rejected, or kept live for a re-estimate: regas.ts) leaves
    // the attempts it would replace live and due: their clock restarts, so the nonce is bumped again
    // a bump interval later, not on every pass (a KMS signature and a refused attempt each pass for
    // as long as the nonce does not mine: a node refusing every replacement "intrinsic gas too low"
    // while the L1 price is up, once its re-estimates ran out).
    if (sent?.r.cls && DEAD.has(sent.r.cls))
      await lease.query(
        `UPDATE custody.tx_attempts SET broadcast_at = now()
          WHERE chain_id = $1 AND from_address = $2 AND nonce = $3 AND status = 'broadcast'
            AND id <> $4`,
        [ctx.chain.chainId, ctx.from, a.nonce.toString(), stored.id],
      );
  }
}

/**
 * What replacing `a` with the same transaction at `gasLimit` and `fees` adds to what is in flight:
 * its gas at the new limit and max fee less at its own, beyond its nonce's dearest live attempt
 * (value and L1 fee are its request's, and the operator fee its gas limit's: unchanged, the
 * limit changing only where the chain charges the L1 cost as gas, never on the OP stack).
 */
function replacementRaise(
  spent: InFlight,
  a: { id: string; nonce: bigint; gasLimit: bigint; fees: Fees },
  gasLimit: bigint,
  fees: Fees,
): bigint {
  const gas = (limit: bigint, f: Fees) =>
    maxCost({ value: 0n, gasLimit: limit, fees: f, l1Fee: 0n, operatorFee: 0n });
  const dearest = spent.ofNonce.get(a.nonce) ?? 0n;
  const cost =
    (spent.ofAttempt.get(a.id) ?? dearest) + gas(gasLimit, fees) - gas(a.gasLimit, a.fees);
  return cost > dearest ? cost - dearest : 0n;
}
