/**
 * An operator fails a withdrawal in `needs_review` (audited, with a reason): the signer's request
 * is failed first (its own audited record, refused if the chain moved it meanwhile, or if the chain
 * shows one of its own transactions used its nonce: the money left and only its receipt is
 * missing), then the withdrawal, in one transaction holding the withdrawal's row lock: every
 * refusal comes before anything changes, and both records commit together. One connection: a
 * second one, waited for while the first is held, would deadlock a pool whose connections are all
 * held so (as many operators failing at once as the pool has connections).
 *
 * - The nonce was used by another transaction in a final block (or never taken): the withdrawal
 *   fails now and its hold is released.
 * - The nonce is unused: one of its signed sends may still mine, so the signer cancels the nonce
 *   instead. The withdrawal goes back to `broadcast` (the operator's move, audited) with its hold
 *   standing; it fails (OPERATOR_FAILED) and the hold is released when the cancel's block is final,
 *   or it is paid if its own send mines first.
 *
 * Repeating it after a crash, or while the cancel runs, finishes the job or answers as it is.
 */
import { type PoolClient, withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import {
  failTxRequestByOperatorIn,
  getTxOutcomes,
  nonceEvidenceFromChains,
  type TxOutcome,
  TxRequestNotReviewableError,
} from "../../signer/index.js";
import { NotFoundError, WithdrawalStateError } from "../errors.js";
import type { WithdrawalStages } from "./context.js";
import { getWithdrawal, type Withdrawal } from "./store.js";
import { signerRequestId } from "./transitions.js";

export function createOperatorFail({
  pool,
  config,
  holds,
  move,
  recordFailRequest,
  ring,
}: WithdrawalStages) {
  const readEvidence = nonceEvidenceFromChains(config.chains);
  /** What the signer reports for the withdrawal's request (read on `client`, or the pool). */
  const signerOutcome = async (
    id: string,
    client: Pick<PoolClient, "query"> = pool,
  ): Promise<TxOutcome | undefined> =>
    (await getTxOutcomes(client, { requestIds: [signerRequestId(id)] }))[0];

  async function failByOperator(
    id: string,
    decision: { by: string; reason: string },
  ): Promise<Withdrawal> {
    if (!decision.by.trim() || !decision.reason.trim())
      throw new BaseError("An operator failure needs who (--by) and why (--reason)", {
        code: "WITHDRAWAL_OPERATOR_DECISION_INCOMPLETE",
      });
    const byOperator = (w: Withdrawal) =>
      w.status === "failed" && (w.failureReason ?? "").startsWith("OPERATOR_FAILED");
    const seen = await getWithdrawal(pool, id);
    if (!seen) throw new NotFoundError("withdrawal", id);
    if (byOperator(seen)) return seen;
    // Only needs_review: anything else can still be decided by the chain (or is being cancelled
    // for an operator already: a repeat, answered as it is, after recording the decision on the
    // withdrawal if the signer's half was decided alone, by `tx-requests fail`, leaving it
    // unrecorded).
    if (seen.status !== "needs_review") {
      if ((await signerOutcome(id))?.cancelRequestedAt) {
        const w = await withTransaction(pool, async (client) => {
          const locked = await getWithdrawal(client, id, { forUpdate: true });
          if (!locked) throw new NotFoundError("withdrawal", id);
          if (!locked.failRequested) return recordFailRequest(client, locked, decision);
          if (locked.status !== "broadcast")
            throw new WithdrawalStateError(id, locked.status, "fail");
          return locked;
        });
        await ring();
        return w;
      }
      throw new WithdrawalStateError(id, seen.status, "fail");
    }
    // The signer's record first: if the chain moved the request meanwhile (it mined after all),
    // this refuses and no hold is released. Already failed: decided alone (`tx-requests fail`), or
    // by its cancel's final block. All of it in the transaction holding the withdrawal's row lock,
    // taken before the signer's record changes and checked then: nothing moves the withdrawal
    // between the two (the outcome pass applying an outcome it read before the signer's change),
    // and a refusal (409, which frees the request's key: "nothing changed") changes nothing.
    const result = await withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w) throw new NotFoundError("withdrawal", id);
      if (byOperator(w)) return w;
      if (w.status !== "needs_review") throw new WithdrawalStateError(id, w.status, "fail");
      let cancel = false;
      /** The signer's request failed already (a repeat, or its cancel's final block decided). */
      let signerFailed: TxOutcome | undefined;
      try {
        // In this transaction (it reads the chain under the request's row lock): committed with
        // the withdrawal's change below, or not at all.
        const decided = await failTxRequestByOperatorIn(
          client,
          { requestId: signerRequestId(id), by: decision.by, reason: decision.reason },
          readEvidence,
        );
        cancel = decided.cancelling;
      } catch (error) {
        if (!(error instanceof TxRequestNotReviewableError && error.meta?.status === "failed"))
          throw error;
        signerFailed = await signerOutcome(id, client);
      }
      if (cancel)
        // The hold stands: the signer's cancel (or the payment it races) decides, and the
        // outcome pass applies it.
        return move(
          client,
          w,
          "broadcast",
          decision.by,
          { reason: decision.reason, by: "operator", cancelling: true },
          { failRequested: decision },
        );
      // A cancel that decided it was paid for by the hot wallet: booked as the outcome pass would.
      if (signerFailed) await holds.bookFee(client, w, signerFailed.fee ?? 0n, signerFailed.txHash);
      await holds.release(client, w);
      // Failed by the chain, not by an operator (its receipt found from needs_review: reverted, or
      // its nonce cancelled, at a final block) while the outcome pass lagged: recorded as the pass
      // would record it. Said to be the operator's, the custody team (API, audit, webhook) would be
      // told a payment was abandoned when the chain took its gas and reverted it.
      if (signerFailed && signerFailed.errorCode !== "OPERATOR_FAILED")
        return move(
          client,
          w,
          "failed",
          "signer",
          {
            error_code: signerFailed.errorCode,
            error: signerFailed.errorMessage,
            fail_requested_by: decision.by,
            fail_request_reason: decision.reason,
          },
          {
            ...(signerFailed.txHash ? { txHash: signerFailed.txHash } : {}),
            fee: signerFailed.fee ?? 0n,
            failureReason: signerFailed.errorCode ?? "failed",
          },
        );
      return move(
        client,
        w,
        "failed",
        decision.by,
        { reason: decision.reason, by: "operator" },
        { failureReason: `OPERATOR_FAILED: ${decision.reason}` },
      );
    });
    await ring();
    return result;
  }

  return { failByOperator };
}
