/**
 * Track stage: follow every sent transaction to finality.
 *
 * - A used nonce (below the chain's mined count) gets its receipt looked up among ALL attempts of
 *   the request, rejected ones included (one node may refuse bytes another mines). Found, in a
 *   block the nodes at its height still have (never from a node's stale index, as below): the
 *   request is `mined` with block, fee and transfer position recorded once. Not found: first the
 *   fallback client, then every endpoint on its own; still nothing after a grace period:
 *   `receipt_unknown` (still searched, never failed). Only when the nonce is used at a final block
 *   and every endpoint answered without any attempt of ours: `needs_review` and an alert. Its
 *   nonce free again (at the best head): back to `broadcast` and sent again, or to `signed` when
 *   no node ever took any of its bytes (BACK_TO_BROADCASTER), which a halted chain holds. An
 *   operator's nonce fill whose nonce another transaction used at a final block (read from that
 *   block, never from missing receipts: fillUsedElsewhere) fails as NONCE_FILL_USED, no review.
 * - A mined request is re-checked against the canonical block hash at its height (asked only of
 *   nodes at or past that height): same hash, it moves to `confirmed` at the confirmation rule and
 *   is finalized at the finality rule (`finalized_at`, terminal), each only where one node shows
 *   its block with the block that rule counts from (the tag's, or the one that many blocks above;
 *   never from a head alone, which one bogus answer may put far above the chain). A
 *   reverted or cancelled attempt stays `mined` until final and only then fails the request; so
 *   does a token transfer() that mined with status 1 but moved nothing (the token returned false
 *   and logged no Transfer out of the wallet: TRANSFER_MOVED_NOTHING), never `confirmed`. A
 *   request an operator failed while its nonce was unused (cancel_requested, operator.ts) fails as
 *   OPERATOR_FAILED at its cancel's final block; if its own send mined instead and paid, it is
 *   followed like any payment, with an `operator_fail_overridden` event and alert (one that
 *   reverted, or moved nothing, paid no one: it fails at its final block as any such send does),
 *   and a reorg never sends its payment again. So is a request whose failure at a final block a
 *   deep reorg undid (undone.ts) whose own send mined and paid on the new branch:
 *   `failed_request_paid`, event and alert.
 * - A different hash: the receipt is looked up again (re-included elsewhere: recorded, counted as
 *   a reorg; a receipt still placing it in a block replaced at that height, a node's stale index,
 *   is not taken). Not in the chain and the nonce free again: back to `broadcast` and the stored
 *   bytes are resent (same nonce). Nonce still used but no receipt: `receipt_unknown`. Our hash,
 *   but the count says the nonce is free: the hash is asked again of a node at the count's head
 *   (a node stuck on the losing fork keeps showing our orphaned block), and its answer decides.
 * Every such change is in custody.tx_request_events and bumps the outcome doorbell.
 */
import type { Hex } from "viem";
import { NoHealthyEndpointError } from "../../chains/errors.js";
import { feePaid, finalityRule, operatorFeePaid } from "../../chains/index.js";
import { mapLimit } from "../../foundation/mapLimit.js";
import type { Lease } from "../lease.js";
import type { NonceEvidence } from "../nonceEvidence.js";
import { NONCE_FILL_KIND } from "../operator.js";
import {
  feeOnTransfer,
  feeOnTransferJson,
  transferMovedNothing,
  transferPosition,
} from "../transferPosition.js";
import {
  type Attempt,
  attemptsOf,
  BACK_TO_BROADCASTER,
  cancelsOnly,
  recordEvent,
  type WatchedRequest,
} from "./attempts.js";
import type { ChainSnapshot, FinalizedTag, TrackedReceipt } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { sendRaw } from "./send.js";

/** States whose entry was rung: leaving them rings again (callers may have acted on them). */
const RUNG = new Set(["confirmed", "receipt_unknown", "needs_review"]);

export type Tracker = {
  track: (lease: Lease, watched: readonly WatchedRequest[], snap: ChainSnapshot) => Promise<void>;
};

export function createTracker(ctx: BroadcasterContext): Tracker {
  const { chainView, settings } = ctx;
  const finality = finalityRule(ctx.chain);
  /** Under a blocks finality rule: how deep a block is when final (the block itself counts). */
  const finalDepth = finality.kind === "blocks" ? BigInt(Math.max(1, finality.blocks)) : null;
  /** Under a blocks confirmation rule: how deep a block is when confirmed (null: the tag rule). */
  const confirmDepth =
    ctx.chain.confirmations.kind === "blocks"
      ? BigInt(Math.max(1, ctx.chain.confirmations.blocks))
      : null;
  /** Last full (every endpoint) search per request. */
  const lastFullSearch = new Map<string, number>();
  /** A confirmed tx whose height no node has any more and whose nonce is free: first seen at. */
  const shortChainSince = new Map<string, number>();
  let lastFullCheck = 0;

  type Mined = { req: WatchedRequest; winner: Attempt; receipt: TrackedReceipt };

  /** Per request whose operator fee was not told: when that was last logged. */
  const feeUnknownLogged = new Map<string, number>();

  /**
   * What each receipt paid the chain outside gas and the L1 data fee: the operator fee (OP stack
   * since Isthmus), read from the chain at the receipt's block. One not told (no answer, a node
   * error, no endpoint keeping state at that block) is never a fee of 0: that receipt is left out
   * of this round (its request stays as it is, its nonce used: nothing is sent for it) and read
   * again next tick, logged once a minute; the others are recorded, and the tick goes on (its
   * bumps and cancels are not held behind one receipt).
   */
  async function withOperatorFees(
    found: readonly Mined[],
  ): Promise<(Mined & { operatorFee: bigint })[]> {
    const told = await mapLimit(found, 8, ({ receipt }) =>
      operatorFeePaid(ctx.client, ctx.chain, receipt).then(
        (fee) => ({ fee }),
        (error: unknown) => ({ error }),
      ),
    );
    const known: (Mined & { operatorFee: bigint })[] = [];
    const now = Date.now();
    for (const [i, m] of found.entries()) {
      const r = told[i]!;
      if ("fee" in r) {
        feeUnknownLogged.delete(m.req.id);
        known.push({ ...m, operatorFee: r.fee });
        continue;
      }
      if (now - (feeUnknownLogged.get(m.req.id) ?? 0) < 60_000) continue;
      feeUnknownLogged.set(m.req.id, now);
      ctx.log.warn({
        msg: "operator fee of a mined transaction not known; its receipt is recorded once it is",
        request_id: m.req.id,
        tx_hash: m.winner.txHash,
        block_number: m.receipt.blockNumber.toString(),
        err: r.error,
      });
    }
    return known;
  }

  /** Record receipts found: one transaction for the whole set (a busy wallet mines hundreds). */
  async function markMined(lease: Lease, candidates: readonly Mined[]): Promise<void> {
    const found = await withOperatorFees(candidates);
    if (found.length === 0) return;
    const rows = found.map(({ req, winner, receipt, operatorFee }) => {
      const paid = winner.purpose === "send" && receipt.success;
      const sent = { from: ctx.from, to: req.to, value: req.value, data: req.data };
      const listed = ctx.chain.tokens.map((t) => t.address);
      const position = paid ? transferPosition(sent, receipt.logs, listed) : null;
      const charged = paid && !position ? feeOnTransfer(sent, receipt.logs, listed) : null;
      // A token whose transfer() returned false instead of reverting: status 1, nothing moved.
      // Not a payment: it fails at its final block like a revert (nextStep), never confirmed.
      const nothing = paid && !position && !charged && transferMovedNothing(sent, receipt.logs);
      const rechained = req.blockHash !== null && req.blockHash !== receipt.blockHash;
      const fee = feePaid({ ...receipt, operatorFee });
      return { req, winner, receipt, fee, position, charged, nothing, rechained };
    });
    /**
     * Requests an operator failed whose own send mined, and requests whose failure a deep reorg
     * undid whose own send mined (not recorded yet: once each): the event each gets.
     */
    const overridden = new Map<string, "operator_fail_overridden" | "failed_request_paid">();
    await lease.transaction(async () => {
      // A payment mined for a request an operator failed, or one an operator may have decided
      // since the watched row was read (decisions apply only to these statuses); every other
      // payment, the usual case, needs no read.
      const sends = rows
        .filter(
          (x) =>
            x.winner.purpose === "send" &&
            (cancelsOnly(x.req) ||
              x.req.status === "receipt_unknown" ||
              x.req.status === "needs_review"),
        )
        .map((x) => x.req.id);
      if (sends.length > 0) {
        // Read here, not from the watched row: the operator's decision may be newer than it.
        // An operator's decision first: a request both failed by one and undone is theirs.
        const { rows: o } = await lease.query<{ id: string; operator: boolean }>(
          `SELECT r.id, r.cancel_requested_at IS NOT NULL AS operator FROM custody.tx_requests r
            WHERE r.id = ANY($1::text[])
              AND (r.cancel_requested_at IS NOT NULL OR r.failure_undone_at IS NOT NULL)
              AND NOT EXISTS (SELECT 1 FROM custody.tx_request_events e
                               WHERE e.request_id = r.id
                                 AND e.event IN ('operator_fail_overridden', 'failed_request_paid'))`,
          [sends],
        );
        // A send that reverted (or moved nothing) paid no one: nothing overrode the failure. An
        // operator's stands (the request fails at that block's finality, as a revert), and an
        // undone one fails again there, as before.
        const moved = new Set(
          rows.filter((x) => x.receipt.success && !x.nothing).map((x) => x.req.id),
        );
        for (const r of o)
          if (moved.has(r.id))
            overridden.set(r.id, r.operator ? "operator_fail_overridden" : "failed_request_paid");
      }
      await lease.query(
        `UPDATE custody.tx_requests r
           SET status = 'mined', tx_hash = v.hash, block_number = v.bn, block_hash = v.bh,
               receipt_success = v.ok, gas_used = v.gu, effective_gas_price = v.egp, fee = v.fee,
               transfer_position = v.pos, transfer_log_index = v.li, fee_on_transfer = v.fot,
               transfer_moved_nothing = v.nothing, receipt_missing_since = NULL,
               review_reason = NULL, reorg_count = r.reorg_count + v.reorg,
               outcome_seq = r.outcome_seq + v.seq, updated_at = now()
          FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bool[], $6::numeric[],
                      $7::numeric[], $8::numeric[], $9::text[], $10::int[], $11::int[], $12::int[],
                      $13::jsonb[], $14::bool[])
               AS v(id, hash, bn, bh, ok, gu, egp, fee, pos, li, reorg, seq, fot, nothing)
         WHERE r.id = v.id`,
        [
          rows.map((x) => x.req.id),
          rows.map((x) => x.winner.txHash),
          rows.map((x) => x.receipt.blockNumber.toString()),
          rows.map((x) => x.receipt.blockHash),
          rows.map((x) => x.receipt.success),
          rows.map((x) => x.receipt.gasUsed.toString()),
          rows.map((x) => x.receipt.effectiveGasPrice.toString()),
          rows.map((x) => x.fee.toString()),
          rows.map((x) => x.position?.position ?? null),
          rows.map((x) => x.position?.logIndex ?? null),
          rows.map((x) => (x.rechained ? 1 : 0)),
          rows.map((x) => (RUNG.has(x.req.status) ? 1 : 0)),
          rows.map((x) => (x.charged ? feeOnTransferJson(x.charged) : null)),
          rows.map((x) => x.nothing),
        ],
      );
      await lease.query(
        `UPDATE custody.tx_attempts a
            SET status = CASE WHEN a.id = v.winner THEN 'mined'
                              WHEN a.status IN ('signed', 'broadcast', 'mined', 'replaced') THEN 'replaced'
                              ELSE a.status END
           FROM unnest($1::text[], $2::bigint[]) AS v(request_id, winner)
          WHERE a.request_id = v.request_id`,
        [rows.map((x) => x.req.id), rows.map((x) => x.winner.id)],
      );
      for (const { req, winner, receipt, rechained } of rows) {
        const override = overridden.get(req.id);
        if (
          !rechained &&
          !override &&
          req.status !== "receipt_unknown" &&
          req.status !== "needs_review"
        )
          continue;
        await recordEvent(lease, {
          requestId: req.id,
          from: req.status,
          to: "mined",
          event: override ?? (rechained ? "rechained" : "receipt_found"),
          details: {
            tx_hash: winner.txHash,
            block_number: receipt.blockNumber.toString(),
            block_hash: receipt.blockHash,
            ...(rechained ? { previous_block_hash: req.blockHash } : {}),
            ...(winner.status === "rejected" ? { attempt_was_rejected_by_a_node: true } : {}),
          },
        });
      }
    });
    for (const { req, winner, receipt, rechained } of rows) {
      const override = overridden.get(req.id);
      if (override === "failed_request_paid") {
        // Its caller took the failure (a final block said so) and released what it held; the
        // branch an operator accepted at the chain's resume holds its payment instead.
        ctx.log.error({
          msg: "a request that had failed at a final block was paid: a deep reorg undid the block, and its own send mined instead",
          request_id: req.id,
          kind: req.kind,
          ref_id: req.refId,
          tx_hash: winner.txHash,
          block_number: String(receipt.blockNumber),
        });
        ctx.alert("failed_request_paid", {
          request_id: req.id,
          kind: req.kind,
          ref_id: req.refId,
          tx_hash: winner.txHash,
          block_number: String(receipt.blockNumber),
        });
      }
      if (override === "operator_fail_overridden") {
        // The operator's failure was a cancel; the payment it raced mined first: the money left.
        ctx.log.error({
          msg: "a request an operator failed was paid: its own send mined before the cancel",
          request_id: req.id,
          tx_hash: winner.txHash,
          block_number: String(receipt.blockNumber),
        });
        ctx.alert("operator_fail_overridden", {
          request_id: req.id,
          tx_hash: winner.txHash,
          block_number: String(receipt.blockNumber),
        });
      }
      if (rechained)
        ctx.log.warn({
          msg: "mined transaction re-included in another block",
          request_id: req.id,
          tx_hash: winner.txHash,
          block_number: String(receipt.blockNumber),
        });
      if (req.blockHash === null && req.status !== "receipt_unknown")
        ctx.metrics.timeToMine.observe(
          ctx.labels,
          Math.max(0, (Date.now() - req.createdAt) / 1000),
        );
    }
  }

  /**
   * The tx left the chain and its nonce is free: back to broadcast, resend the bytes that mined.
   * A request an operator failed (cancel_requested), or whose failure a deep reorg undid
   * (failure_undone, undone.ts), gets only its cancels back: never its payment.
   */
  async function unmine(lease: Lease, req: WatchedRequest, attempts: Attempt[]): Promise<void> {
    await lease.transaction(async () => {
      await lease.query(
        `UPDATE custody.tx_requests
           SET status = 'broadcast', block_number = NULL, block_hash = NULL, receipt_success = NULL,
               gas_used = NULL, effective_gas_price = NULL, fee = NULL, transfer_position = NULL,
               transfer_log_index = NULL, fee_on_transfer = NULL, transfer_moved_nothing = false,
               reorg_count = reorg_count + 1,
               outcome_seq = outcome_seq + $2, updated_at = now()
         WHERE id = $1`,
        [req.id, RUNG.has(req.status) ? 1 : 0],
      );
      await lease.query(
        `UPDATE custody.tx_attempts SET status = 'broadcast', broadcast_at = now()
         WHERE request_id = $1 AND status IN ('mined', 'replaced') AND (purpose = 'cancel' OR NOT $2)`,
        [req.id, cancelsOnly(req)],
      );
      await recordEvent(lease, {
        requestId: req.id,
        from: req.status,
        to: "broadcast",
        event: "reorged_out",
        details: {
          tx_hash: req.txHash,
          block_number: req.blockNumber?.toString(),
          block_hash: req.blockHash,
        },
      });
    });
    // Told once the move committed: a pass rolled back (a lease lost, a failed insert) changed
    // nothing, and the next pass sees the same reorg.
    ctx.log.warn({
      msg: "mined transaction reorged out, resending its bytes",
      request_id: req.id,
      tx_hash: req.txHash,
      was: req.status,
    });
    if (req.status === "confirmed")
      ctx.alert("confirmed_tx_reorged_out", { request_id: req.id, tx_hash: req.txHash });
    const winner = attempts.find((a) => a.txHash === req.txHash);
    if (winner && (winner.purpose === "cancel" || !cancelsOnly(req)))
      await sendRaw(ctx, lease, winner.raw);
  }

  /**
   * The nonce is used, none of our attempts has a receipt anywhere we looked. Only from the status
   * this pass saw (like needsReview): an operator's decision made meanwhile stands.
   */
  async function receiptUnknown(
    lease: Lease,
    req: WatchedRequest,
    event: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    const moved = await lease.transaction(async () => {
      const upd = await lease.query(
        `UPDATE custody.tx_requests
           SET status = 'receipt_unknown', block_number = NULL, block_hash = NULL,
               receipt_success = NULL, gas_used = NULL, effective_gas_price = NULL, fee = NULL,
               transfer_position = NULL, transfer_log_index = NULL, fee_on_transfer = NULL,
               transfer_moved_nothing = false, reorg_count = reorg_count + $2, receipt_missing_since = COALESCE(receipt_missing_since, now()),
               outcome_seq = outcome_seq + 1, updated_at = now()
         WHERE id = $1 AND status = $3`,
        [req.id, req.blockHash !== null ? 1 : 0, req.status],
      );
      if (upd.rowCount === 0) return false;
      await recordEvent(lease, {
        requestId: req.id,
        from: req.status,
        to: "receipt_unknown",
        event,
        details,
      });
      return true;
    });
    if (!moved) return;
    ctx.log.warn({
      msg: "nonce used but no receipt of ours found",
      request_id: req.id,
      nonce: String(req.nonce),
    });
  }

  async function needsReview(lease: Lease, req: WatchedRequest, reason: string): Promise<void> {
    const moved = await lease.transaction(async () => {
      const upd = await lease.query(
        `UPDATE custody.tx_requests
           SET status = 'needs_review', review_reason = $2, outcome_seq = outcome_seq + 1, updated_at = now()
         WHERE id = $1 AND status = $3`,
        [req.id, reason, req.status],
      );
      if (upd.rowCount === 0) return false;
      await recordEvent(lease, {
        requestId: req.id,
        from: req.status,
        to: "needs_review",
        event: "needs_review",
        reason,
        details: { nonce: req.nonce.toString() },
      });
      return true;
    });
    if (!moved) return;
    ctx.alert("needs_review", { request_id: req.id, nonce: String(req.nonce), reason });
  }

  /**
   * A nonce fill (operator.ts, fills.ts) whose nonce the chain shows used at a final block by a
   * transaction that is none of its attempts (nonceEvidence: read from the block, never from
   * receipts; our final block shown by the same node) has done its job: `failed` as
   * NONCE_FILL_USED (at that final block, evidenced; it paid nothing), with an event naming that
   * transaction. Only from the status this pass saw. Another transaction in a block not final yet:
   * `wait`, nothing changes. Nodes that cannot tell, or one of its own attempts there: `unknown`,
   * nothing changes here (the usual receipt search and review go on).
   */
  async function fillUsedElsewhere(
    lease: Lease,
    req: WatchedRequest,
    mine: readonly Attempt[],
  ): Promise<"failed" | "wait" | "unknown"> {
    let evidence: NonceEvidence;
    try {
      evidence = await chainView.nonceEvidence(req.nonce);
    } catch (error) {
      ctx.log.warn({
        msg: "nonce fill: the nodes cannot tell what used its nonce; asked again later",
        request_id: req.id,
        nonce: String(req.nonce),
        err: error,
      });
      return "unknown";
    }
    if (evidence.kind !== "consumed") return "unknown";
    if (mine.some((a) => a.txHash.toLowerCase() === evidence.txHash)) return "unknown";
    if (!evidence.final) return "wait";
    const moved = await lease.transaction(async () => {
      const upd = await lease.query(
        `UPDATE custody.tx_requests
            SET status = 'failed', error_code = 'NONCE_FILL_USED', error_message = $3,
                review_reason = NULL, receipt_missing_since = NULL, finalized_at = now(),
                outcome_seq = outcome_seq + 1, updated_at = now()
          WHERE id = $1 AND status = $2`,
        [
          req.id,
          req.status,
          `nonce ${req.nonce} used on chain by ${evidence.txHash} (block ${evidence.blockNumber}, final) after the fill was signed`,
        ],
      );
      if (upd.rowCount === 0) return false;
      await lease.query(
        `UPDATE custody.tx_attempts SET status = 'replaced'
          WHERE request_id = $1 AND status IN ('signed', 'broadcast')`,
        [req.id],
      );
      await recordEvent(lease, {
        requestId: req.id,
        from: req.status,
        to: "failed",
        event: "nonce_fill_used",
        details: {
          nonce: req.nonce.toString(),
          used_by: evidence.txHash,
          block_number: evidence.blockNumber.toString(),
          block_hash: evidence.blockHash,
        },
      });
      return true;
    });
    // Moved meanwhile (an operator's decision): theirs stands.
    if (!moved) return "wait";
    ctx.metrics.outcomes.inc({ ...ctx.labels, status: "failed" });
    ctx.log.warn({
      msg: "nonce fill not needed: another transaction used its nonce at a final block",
      request_id: req.id,
      nonce: String(req.nonce),
      used_by: evidence.txHash,
    });
    return "failed";
  }

  type Step =
    | { do: "finalize"; id: string }
    | { do: "confirm"; id: string; final: boolean }
    | {
        do: "fail";
        id: string;
        code: "CANCELLED" | "REVERTED" | "TRANSFER_MOVED_NOTHING" | "OPERATOR_FAILED";
      };

  /** Confirmation and finality of a request still in its recorded block. */
  function nextStep(
    req: WatchedRequest,
    winner: Attempt | undefined,
    snap: ChainSnapshot,
  ): Step | undefined {
    const b = req.blockNumber!;
    const final = snap.finalizedHeight !== null && b <= snap.finalizedHeight;
    if (req.status === "confirmed") return final ? { do: "finalize", id: req.id } : undefined;
    const paid =
      winner?.purpose !== "cancel" && req.receiptSuccess === true && !req.transferMovedNothing;
    if (paid) {
      if (snap.confirmedHeight === null || b > snap.confirmedHeight) return undefined;
      return { do: "confirm", id: req.id, final };
    }
    // Reverted, cancelled, or a token transfer() that moved nothing (returned false): the request
    // fails only once that block is final.
    if (!final) return undefined;
    // A cancel an operator asked for fails the request as theirs (its reason is cancel_reason).
    const cancelled = winner?.purpose === "cancel";
    return {
      do: "fail",
      id: req.id,
      code: cancelled
        ? req.cancelRequested
          ? "OPERATOR_FAILED"
          : "CANCELLED"
        : req.transferMovedNothing
          ? "TRANSFER_MOVED_NOTHING"
          : "REVERTED",
    };
  }

  /**
   * The heights of the steps' blocks one node shows, in one batch, together with the block `rule`
   * counts from: the node's finalized tag's block (chainView.onTagChain), or under a rule of
   * `depth` blocks the block that many heights above the highest of them (chainView.underHeight).
   * The heights the steps were chosen by came from the head of one answer (maybe a bogus one, far
   * above the chain), and a block's hash maybe from another node, on a fork where it is one deep.
   */
  async function shownWith(
    rule: { tag: FinalizedTag } | { depth: bigint },
    steps: readonly Step[],
    byId: ReadonlyMap<string, WatchedRequest>,
  ): Promise<Set<bigint>> {
    const blocks = new Map<bigint, Hex>();
    let highest = 0n;
    for (const x of steps) {
      const req = byId.get(x.id)!;
      blocks.set(req.blockNumber!, req.blockHash!);
      if (req.blockNumber! > highest) highest = req.blockNumber!;
    }
    if (blocks.size === 0) return new Set();
    return "tag" in rule
      ? chainView.onTagChain(rule.tag, blocks)
      : chainView.underHeight(highest + rule.depth - 1n, blocks);
  }

  /**
   * The steps that stand. A step the finality rule decided (finalize, fail, a confirmation made
   * final) only where shownWith that rule; a confirmation it did not make final stays one without
   * finality, and stands only where shownWith the confirmation rule (a confirmation posts a
   * withdrawal: a head no node has, one bogus answer, confirms nothing). A final block is
   * confirmed too (finality is never shallower); under the tag rule what the tag did not make
   * final is not confirmed. At most one batch for each rule per pass.
   */
  async function heldByRules(
    steps: readonly Step[],
    byId: ReadonlyMap<string, WatchedRequest>,
    snap: ChainSnapshot,
  ): Promise<Step[]> {
    const blockOf = (x: Step) => byId.get(x.id)!.blockNumber!;
    // A tag is read only when the finality rule is the tag (confirmations by tag imply it).
    const tag = snap.finalizedTag;
    const finalBy = tag ? { tag } : finalDepth !== null ? { depth: finalDepth } : null;
    const byFinality = (x: Step) => x.do !== "confirm" || x.final;
    const final = finalBy && (await shownWith(finalBy, steps.filter(byFinality), byId));
    const afterFinality = steps.flatMap((x): Step[] => {
      if (!byFinality(x) || final === null || final.has(blockOf(x))) return [x];
      return x.do === "confirm" ? [{ ...x, final: false }] : [];
    });
    const unfinal = afterFinality.filter((x) => x.do === "confirm" && !x.final);
    const confirmed =
      confirmDepth === null
        ? new Set<bigint>()
        : await shownWith({ depth: confirmDepth }, unfinal, byId);
    return afterFinality.filter((x) => x.do !== "confirm" || x.final || confirmed.has(blockOf(x)));
  }

  /** Apply confirmation/finality steps: a few set-based statements in one transaction. */
  async function applySteps(lease: Lease, steps: readonly Step[]): Promise<void> {
    if (steps.length === 0) return;
    const finalize = steps.filter((x) => x.do === "finalize").map((x) => x.id);
    const confirm = steps.filter((x) => x.do === "confirm");
    const fail = steps.filter((x) => x.do === "fail");
    await lease.transaction(async () => {
      if (finalize.length > 0)
        await lease.query(
          `UPDATE custody.tx_requests SET finalized_at = now(), updated_at = now()
            WHERE id = ANY($1) AND status = 'confirmed' AND finalized_at IS NULL`,
          [finalize],
        );
      if (confirm.length > 0)
        await lease.query(
          `UPDATE custody.tx_requests r
              SET status = 'confirmed', finalized_at = CASE WHEN v.final THEN now() END,
                  outcome_seq = r.outcome_seq + 1, updated_at = now()
             FROM unnest($1::text[], $2::bool[]) AS v(id, final)
            WHERE r.id = v.id AND r.status = 'mined'`,
          [confirm.map((x) => x.id), confirm.map((x) => x.final)],
        );
      if (fail.length > 0)
        await lease.query(
          `UPDATE custody.tx_requests r
              SET status = 'failed', error_code = v.code, finalized_at = now(),
                  error_message = CASE WHEN v.code = 'OPERATOR_FAILED' THEN r.cancel_reason
                                       WHEN v.code = 'TRANSFER_MOVED_NOTHING' THEN
                                         'the token''s transfer() mined without a Transfer out of the wallet (it returned false): nothing moved'
                                       ELSE r.error_message END,
                  outcome_seq = r.outcome_seq + 1, updated_at = now()
             FROM unnest($1::text[], $2::text[]) AS v(id, code)
            WHERE r.id = v.id AND r.status = 'mined'`,
          [fail.map((x) => x.id), fail.map((x) => x.code)],
        );
    });
    const finalized = finalize.length + confirm.filter((x) => x.final).length;
    if (finalized > 0) ctx.metrics.outcomes.inc({ ...ctx.labels, status: "finalized" }, finalized);
    if (confirm.length > 0)
      ctx.metrics.outcomes.inc({ ...ctx.labels, status: "confirmed" }, confirm.length);
    if (fail.length > 0) ctx.metrics.outcomes.inc({ ...ctx.labels, status: "failed" }, fail.length);
  }

  /**
   * Receipts from a node at or past `head` (the snapshot's), for the reason onCanonicalBlocks
   * asks hashes there. No node there right now: none found this pass (missing, not evidence).
   */
  async function receiptsAt(
    hashes: readonly Hex[],
    head: bigint,
  ): Promise<Map<Hex, TrackedReceipt>> {
    try {
      return await chainView.receipts(hashes, head);
    } catch (error) {
      if (!(error instanceof NoHealthyEndpointError)) throw error;
      return new Map();
    }
  }

  /**
   * The receipts whose block is the one the nodes at its height have (`known`: heights already
   * read this pass), asked of a node at or past `head` (the snapshot's: where its count came
   * from). A node whose transaction index still points at a block replaced since answers the
   * receipt from there: taken, the request is `mined` in an orphaned block, and the next hash
   * check takes it out again (a flip-flop callers see; with the nonce free, never resent). A node
   * stuck below the head on the losing fork shows that orphaned block at its height for as long as
   * it is stuck: asked, it would keep the receipt (and the request confirmed there, never final).
   * No node there: kept, as no evidence either way. Several receipts of one hash (each endpoint's,
   * receiptsEverywhere): the one in the block the nodes at its height have, before one at a
   * height no node has now; the stuck node's orphaned one never hides the canonical one.
   */
  async function onCanonicalBlocks(
    receipts: ReadonlyMap<Hex, TrackedReceipt | readonly TrackedReceipt[]>,
    head: bigint,
    known: ReadonlyMap<bigint, Hex> = new Map(),
  ): Promise<Map<Hex, TrackedReceipt>> {
    const candidates = [...receipts].map(([h, r]) => [h, Array.isArray(r) ? r : [r]] as const);
    const heights = new Set(candidates.flatMap(([, rs]) => rs.map((r) => r.blockNumber)));
    const ask = [...heights].filter((b) => !known.has(b));
    const canonical = new Map(known);
    if (ask.length > 0)
      for (const [b, h] of await chainView.blockHashes(ask, head)) canonical.set(b, h);
    const out = new Map<Hex, TrackedReceipt>();
    for (const [h, rs] of candidates) {
      const taken =
        rs.find((r) => canonical.get(r.blockNumber) === r.blockHash) ??
        rs.find((r) => canonical.get(r.blockNumber) === undefined);
      if (taken) out.set(h, taken);
    }
    return out;
  }

  /**
   * Which mined requests to check against the canonical chain this pass: those about to change
   * (confirmation or finality reached), those whose nonce the chain says is free, and all of them
   * every `fullCheckMs` (a re-inclusion elsewhere keeps the nonce used, so only a hash check sees it).
   */
  function dueForCheck(req: WatchedRequest, snap: ChainSnapshot, full: boolean): boolean {
    if (full || snap.latestCount <= req.nonce) return true;
    const b = req.blockNumber!;
    if (snap.finalizedHeight !== null && b <= snap.finalizedHeight) return true;
    return req.status === "mined" && snap.confirmedHeight !== null && b <= snap.confirmedHeight;
  }

  async function trackInBlock(
    lease: Lease,
    all: WatchedRequest[],
    snap: ChainSnapshot,
  ): Promise<void> {
    const full = Date.now() - lastFullCheck >= Math.max(5_000, 2 * ctx.chain.blockTimeMs);
    const inBlock = all.filter((r) => dueForCheck(r, snap, full));
    if (full) lastFullCheck = Date.now();
    if (inBlock.length === 0) return;
    // From a node at the best head first: one stuck on a losing fork is "at" every height up to
    // its head and shows its orphaned block there (a withdrawal re-included in another block, its
    // nonce still used, stayed recorded in the orphaned block while that node was first).
    const canonical = await chainView.blockHashes(
      inBlock.map((r) => r.blockNumber!),
      undefined,
      { preferBestHead: true },
    );
    const attempts = await attemptsOf(
      ctx,
      inBlock.map((r) => r.id),
    );
    const moved: WatchedRequest[] = [];
    const steps: Step[] = [];
    /** Our block at its height, yet the count says the nonce is free: two nodes disagree. */
    const disputed: WatchedRequest[] = [];
    for (const req of inBlock) {
      const mine = attempts.get(req.id) ?? [];
      const hash = canonical.get(req.blockNumber!);
      // The count says the nonce is free only from a node that has reached the block: a lagging
      // node's count is as of an older block (missing data, never a reorg).
      const nonceFree = snap.latestCount <= req.nonce && snap.head >= req.blockNumber!;
      if (hash === req.blockHash) {
        shortChainSince.delete(req.id);
        // The block holds it but the count says the nonce is free: two nodes disagree (below).
        if (nonceFree) {
          disputed.push(req);
          continue;
        }
        const step = nextStep(
          req,
          mine.find((a) => a.txHash === req.txHash),
          snap,
        );
        if (step) steps.push(step);
        continue;
      }
      if (hash === undefined) {
        // No node has that height now. With the nonce free too, the chain got shorter (or every
        // node lags): a `mined` tx is resent at once (the outcome callers see is unchanged), a
        // confirmed one only after this has lasted a while.
        if (!nonceFree) continue;
        if (req.status === "confirmed") {
          const since = shortChainSince.get(req.id) ?? Date.now();
          shortChainSince.set(req.id, since);
          if (Date.now() - since < Math.max(10_000, 3 * ctx.chain.blockTimeMs)) continue;
        }
        shortChainSince.delete(req.id);
        await unmine(lease, req, mine);
        continue;
      }
      moved.push(req);
    }
    await applySteps(lease, await heldByRules(steps, new Map(inBlock.map((r) => [r.id, r])), snap));
    if (disputed.length > 0) {
      // The hash came from a node at the best head seen, else the first node at the block's
      // height; the count from a node at the snapshot's head. A node stuck on the losing fork (its
      // consensus client gone) is at that height for ever and shows our orphaned block there
      // (asked when no node at the best head answered), so "wait" would hold the request
      // `confirmed` and its nonce unused (every later nonce behind it) for as long as it stays
      // stuck. Asked again of a node at or past the head the count came from: another block
      // there is the reorg (handled as any replaced block below); ours again, or no node there
      // now, decides nothing and it waits.
      const atHead = await chainView.blockHashes(
        disputed.map((r) => r.blockNumber!),
        snap.head,
      );
      for (const req of disputed) {
        const hash = atHead.get(req.blockNumber!);
        if (hash === undefined || hash === req.blockHash) continue;
        canonical.set(req.blockNumber!, hash);
        moved.push(req);
      }
    }
    if (moved.length === 0) return;
    // Its block was replaced: where is it now? Not in a block the nodes at its height have
    // replaced (onCanonicalBlocks).
    const hashes = moved.flatMap((r) => (attempts.get(r.id) ?? []).map((a) => a.txHash));
    const found = await onCanonicalBlocks(
      await receiptsAt(hashes, snap.head),
      snap.head,
      canonical,
    );
    for (const req of moved) {
      const mine = attempts.get(req.id) ?? [];
      const hit = mine.find((a) => found.has(a.txHash.toLowerCase() as Hex));
      if (hit) {
        await markMined(lease, [
          { req, winner: hit, receipt: found.get(hit.txHash.toLowerCase() as Hex)! },
        ]);
        continue;
      }
      // The snapshot's node has not reached the replaced block: its count is no evidence yet.
      if (snap.head < req.blockNumber!) continue;
      if (snap.latestCount <= req.nonce) {
        await unmine(lease, req, mine);
        continue;
      }
      const everywhere = await onCanonicalBlocks(
        (await chainView.receiptsEverywhere(mine.map((a) => a.txHash))).found,
        snap.head,
        canonical,
      );
      const far = mine.find((a) => everywhere.has(a.txHash.toLowerCase() as Hex));
      if (far)
        await markMined(lease, [
          { req, winner: far, receipt: everywhere.get(far.txHash.toLowerCase() as Hex)! },
        ]);
      else
        await receiptUnknown(lease, req, "reorged_out", {
          tx_hash: req.txHash,
          block_number: req.blockNumber?.toString(),
          block_hash: req.blockHash,
          note: "the block was replaced; the nonce is used by a tx we have no receipt for",
        });
    }
  }

  async function trackUnmined(
    lease: Lease,
    unmined: WatchedRequest[],
    snap: ChainSnapshot,
  ): Promise<void> {
    const used = unmined.filter((r) => r.nonce < snap.latestCount);
    // A nonce the chain gave back: whatever used it is gone; send ours again.
    for (const req of unmined) {
      if (req.nonce < snap.latestCount) continue;
      const unusedAgain =
        req.status === "receipt_unknown" ||
        (req.status === "needs_review" && req.reviewReason === "NONCE_CONSUMED_NO_KNOWN_ATTEMPT");
      if (unusedAgain) {
        // Free again only as told by a node at the best head seen: where the nonce was used is
        // not known, and a lagging node's count is as of an older block.
        if (!snap.atBestHead) continue;
        const moved = await lease.transaction(async () => {
          // Only from the status this tick read: an operator's decision committed since stands.
          // Back to `signed` when no node ever took any of its bytes (it reached receipt_unknown
          // from `signed`: the nonce was used by another transaction before any was taken): on a
          // halted chain they are held like any request's not out yet (halt.ts).
          const { rows } = await lease.query<{ status: string }>(
            `UPDATE custody.tx_requests
                SET status = ${BACK_TO_BROADCASTER}, receipt_missing_since = NULL,
                    review_reason = NULL, outcome_seq = outcome_seq + 1, updated_at = now()
              WHERE id = $1 AND status = $2
              RETURNING status`,
            [req.id, req.status],
          );
          const to = rows[0]?.status;
          if (to === undefined) return undefined;
          await recordEvent(lease, {
            requestId: req.id,
            from: req.status,
            to,
            event: "nonce_unmined",
            details: { nonce: req.nonce.toString() },
          });
          return to;
        });
        if (moved)
          ctx.log.warn({
            msg: "nonce free again on chain; resending",
            request_id: req.id,
            status: moved,
          });
      } else if (req.receiptMissingSince !== null) {
        await lease.query(
          "UPDATE custody.tx_requests SET receipt_missing_since = NULL WHERE id = $1",
          [req.id],
        );
      }
    }
    if (used.length === 0) return;
    const attempts = await attemptsOf(
      ctx,
      used.map((r) => r.id),
    );
    const found = await onCanonicalBlocks(
      await receiptsAt(
        used.flatMap((r) => (attempts.get(r.id) ?? []).map((a) => a.txHash)),
        snap.head,
      ),
      snap.head,
    );
    const now = Date.now();
    const hits: Mined[] = [];
    const missing: WatchedRequest[] = [];
    for (const req of used) {
      const hit = (attempts.get(req.id) ?? []).find((a) =>
        found.has(a.txHash.toLowerCase() as Hex),
      );
      if (hit) {
        lastFullSearch.delete(req.id);
        hits.push({ req, winner: hit, receipt: found.get(hit.txHash.toLowerCase() as Hex)! });
      } else missing.push(req);
    }
    await markMined(lease, hits);
    for (const req of missing) {
      const mine = attempts.get(req.id) ?? [];
      let missingSince = req.receiptMissingSince;
      if (missingSince === null) {
        missingSince = now;
        await lease.query(
          "UPDATE custody.tx_requests SET receipt_missing_since = now() WHERE id = $1 AND receipt_missing_since IS NULL",
          [req.id],
        );
      }
      const graceOver = now - missingSince >= settings.receiptGraceMs;
      if (!graceOver) continue;
      if (now - (lastFullSearch.get(req.id) ?? 0) < settings.fullSearchIntervalMs) continue;
      lastFullSearch.set(req.id, now);
      const everywhere = await chainView.receiptsEverywhere(mine.map((a) => a.txHash));
      const current = await onCanonicalBlocks(everywhere.found, snap.head);
      const far = mine.find((a) => current.has(a.txHash.toLowerCase() as Hex));
      if (far) {
        lastFullSearch.delete(req.id);
        await markMined(lease, [
          { req, winner: far, receipt: current.get(far.txHash.toLowerCase() as Hex)! },
        ]);
        continue;
      }
      const unsent = req.status === "signed" || req.status === "broadcast";
      if (unsent)
        await receiptUnknown(lease, { ...req }, "receipt_unknown", {
          attempts: mine.length,
          endpoints_answered: everywhere.answered,
          endpoints: everywhere.endpoints,
        });
      const finalCount = await snap.finalizedCount();
      // An operator's nonce fill whose nonce another transaction used at a final block: the gap is
      // filled, its own bytes never mined. It ends by itself (from review too), no operator owed;
      // while that block is not final as the indexer published it, it waits (no review either).
      if (req.kind === NONCE_FILL_KIND && finalCount !== null && req.nonce < finalCount) {
        const status = unsent ? "receipt_unknown" : req.status;
        if ((await fillUsedElsewhere(lease, { ...req, status }, mine)) !== "unknown") continue;
      }
      if (req.status === "needs_review") continue;
      // Used at a final block, every endpoint answered, none of our attempts there.
      if (
        finalCount !== null &&
        req.nonce < finalCount &&
        everywhere.answered === everywhere.endpoints
      )
        await needsReview(
          lease,
          { ...req, status: "receipt_unknown" },
          "NONCE_CONSUMED_NO_KNOWN_ATTEMPT",
        );
    }
  }

  return {
    async track(lease, watched, snap) {
      const inBlock = watched.filter(
        (r) => (r.status === "mined" || r.status === "confirmed") && r.blockNumber !== null,
      );
      const unmined = watched.filter(
        (r) =>
          r.status === "signed" ||
          r.status === "broadcast" ||
          r.status === "receipt_unknown" ||
          r.status === "needs_review",
      );
      await trackInBlock(lease, inBlock, snap);
      await trackUnmined(lease, unmined, snap);
      const ids = new Set(watched.map((r) => r.id));
      for (const id of lastFullSearch.keys()) if (!ids.has(id)) lastFullSearch.delete(id);
      for (const id of shortChainSince.keys()) if (!ids.has(id)) shortChainSince.delete(id);
      for (const id of feeUnknownLogged.keys()) if (!ids.has(id)) feeUnknownLogged.delete(id);
    },
  };
}
