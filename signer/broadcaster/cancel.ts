/**
 * Cancel jobs: a nonce whose every attempt was refused for good is used by a 0-value transfer to
 * the hot wallet itself, so later nonces are not stuck behind a hole; the request fails when that
 * cancel's block is final (track stage). Bounded: a failed try (KMS or RPC error) or a refused
 * cancel waits a backoff (doubling, capped) before the next; after `maxCancelAttempts` refused
 * cancels (counted in Postgres, so restarts do not reset it; an operator retry does) the request
 * is `needs_review` with an alert, and no further cancel is tried. A request an operator already
 * failed has no one left to decide: its cancels go on, slowly, with a `nonce_gap` alert each time.
 * On a halted chain the nonce of a request no node has taken (still `signed`) is not cancelled
 * until the resume (halt.ts).
 */
import { backoffMs } from "../../foundation/backoff.js";
import { bumpFees, estimateFees, type Fees } from "../fees.js";
import type { Lease } from "../lease.js";
import { attemptsOf, recordEvent, storeAttempt } from "./attempts.js";
import type { BroadcasterContext } from "./context.js";
import { cancelGasLimit } from "./gasPlan.js";
import type { CancelJob } from "./nonces.js";
import { DEAD, sendInOrder, signTx } from "./send.js";

/**
 * `head`: the block the tick's snapshot was read at (a node at the best head): the cancels' fees and
 * gas are asked there, as intake's are (gas.ts estimateTxGas, fees.ts estimateFees).
 */
export type Canceller = {
  run: (lease: Lease, jobs: readonly CancelJob[], head: bigint) => Promise<void>;
};

export function createCanceller(ctx: BroadcasterContext): Canceller {
  const { settings } = ctx;
  /** Per request: failed tries in a row and when the next may start. */
  const backoff = new Map<string, { failures: number; nextAt: number }>();

  function failed(requestId: string, why: string, error?: unknown) {
    const b = backoff.get(requestId) ?? { failures: 0, nextAt: 0 };
    b.failures++;
    const wait = backoffMs(b.failures - 1, {
      baseMs: settings.cancelBackoffMs,
      maxMs: settings.maxCancelBackoffMs,
      maxDoublings: 20,
    });
    b.nextAt = Date.now() + wait;
    backoff.set(requestId, b);
    ctx.log.warn({
      msg: "cancel not placed; retrying after a backoff",
      request_id: requestId,
      why,
      failures: b.failures,
      retry_in_ms: wait,
      ...(error ? { err: error } : {}),
    });
  }

  /**
   * A cancel's fees: a valid replacement of the request's newest (best-paying) attempt at the
   * nonce, whatever its status (bytes a node refused to us may sit in another's pool, as when an
   * operator's cancel races the payment), at least the market, never above the cap (at the cap:
   * the market, and the bump stage takes it from there).
   */
  async function cancelFees(job: CancelJob, head: bigint): Promise<Fees> {
    const market = await estimateFees(ctx.client, ctx.chain, head, ctx.chainView.gasPriceAt);
    const newest = (await attemptsOf(ctx, [job.requestId]))
      .get(job.requestId)
      ?.find((a) => a.nonce === job.nonce);
    if (!newest) return market;
    const raised = bumpFees(newest.fees, market, ctx.chain.maxFeePerGas);
    return raised.replace ? raised.fees : market;
  }

  /** Cancels of this nonce refused for good since the last operator decision (retry or fail). */
  async function refusedCancels(job: CancelJob): Promise<number> {
    const { rows } = await ctx.pool.query(
      `SELECT count(*)::int AS n FROM custody.tx_attempts a
        WHERE a.request_id = $1 AND a.nonce = $2 AND a.purpose = 'cancel' AND a.status = 'rejected'
          AND a.created_at > COALESCE((SELECT max(e.created_at) FROM custody.tx_request_events e
                                        WHERE e.request_id = $1
                                          AND e.event IN ('operator_retry', 'operator_failed')),
                                      '-infinity')`,
      [job.requestId, job.nonce.toString()],
    );
    return rows[0].n;
  }

  async function giveUp(lease: Lease, job: CancelJob, refused: number) {
    await lease.transaction(async () => {
      const upd = await lease.query(
        `UPDATE custody.tx_requests
            SET status = 'needs_review', review_reason = 'CANCEL_UNSENDABLE',
                outcome_seq = outcome_seq + 1, updated_at = now()
          WHERE id = $1 AND status IN ('signed', 'broadcast')`,
        [job.requestId],
      );
      if (upd.rowCount === 0) return;
      await recordEvent(lease, {
        requestId: job.requestId,
        from: job.status,
        to: "needs_review",
        event: "needs_review",
        reason: "CANCEL_UNSENDABLE",
        details: { nonce: job.nonce.toString(), refused_cancels: refused },
      });
    });
    backoff.delete(job.requestId);
    ctx.alert("cancel_unsendable", {
      request_id: job.requestId,
      nonce: String(job.nonce),
      refused_cancels: refused,
    });
  }

  async function cancelOne(lease: Lease, job: CancelJob, head: bigint) {
    const refused = await refusedCancels(job);
    const exhausted = refused >= settings.maxCancelAttempts;
    if (exhausted && !job.byOperator) {
      await giveUp(lease, job, refused);
      return;
    }
    const b = backoff.get(job.requestId);
    if (b && Date.now() < b.nextAt) return;
    // On a halted chain a request no node has taken waits, neither failed nor cancelled (halt.ts):
    // its cancel would be the first bytes of it to leave. Cancelled on a pass after the resume.
    if (ctx.state.halt && job.status === "signed") return;
    // Failed by an operator already: no one else decides; keep trying slowly, alerting each try.
    if (exhausted) ctx.alert("nonce_gap", { request_id: job.requestId, nonce: String(job.nonce) });
    let stored: Awaited<ReturnType<typeof storeAttempt>>;
    try {
      const fees = await cancelFees(job, head);
      const tx = {
        nonce: job.nonce,
        to: ctx.from,
        value: 0n,
        data: "0x" as const,
        gasLimit: await cancelGasLimit(ctx, head),
      };
      const { raw, hash } = await signTx(ctx, tx, fees);
      stored = await lease.transaction(async () => {
        const a = await storeAttempt(ctx, lease, {
          requestId: job.requestId,
          nonce: job.nonce,
          purpose: "cancel",
          hash,
          raw,
          gasLimit: tx.gasLimit,
          fees,
        });
        await recordEvent(lease, {
          requestId: job.requestId,
          from: job.status,
          to: job.status,
          event: "cancel_signed",
          details: { nonce: job.nonce.toString(), tx_hash: hash, refused_before: refused },
        });
        return a;
      });
    } catch (error) {
      if ((error as { code?: string }).code === "SIGNER_LEASE_LOST") throw error;
      failed(job.requestId, "signing or storing the cancel failed", error);
      return;
    }
    ctx.metrics.attempts.inc({ ...ctx.labels, kind: "cancel" });
    ctx.crash("after_cancel_commit");
    const [result] = await sendInOrder(ctx, lease, [stored]);
    // Held: a halt opened while KMS signed it (halt.ts). Stored, it goes out after the resume.
    if (!result) return;
    if (result.r.cls && DEAD.has(result.r.cls)) {
      failed(job.requestId, `cancel refused: ${result.r.cls}`);
      return;
    }
    backoff.delete(job.requestId);
    ctx.alert("nonce_cancelled", { request_id: job.requestId, nonce: String(job.nonce) });
  }

  return {
    async run(lease, jobs, head) {
      for (const job of jobs) await cancelOne(lease, job, head);
      for (const id of backoff.keys())
        if (!jobs.some((j) => j.requestId === id)) backoff.delete(id);
    },
  };
}
