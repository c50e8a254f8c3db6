/**
 * An operator fails a withdrawal in `needs_review` and releases its hold (audited, with a reason):
 * the signer's request is failed first (its own audited record, refused if the chain moved it
 * meanwhile, or if the chain shows one of its own transactions used its nonce: the money left and
 * only its receipt is missing), then the withdrawal. Repeating it after a crash finishes the job.
 */
import { withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import {
  failTxRequestByOperator,
  nonceEvidenceFromChains,
  TxRequestNotReviewableError,
} from "../../signer/index.js";
import { NotFoundError, WithdrawalStateError } from "../errors.js";
import type { WithdrawalStages } from "./context.js";
import { getWithdrawal, type Withdrawal } from "./store.js";
import { signerRequestId } from "./transitions.js";

export function createOperatorFail({ pool, config, holds, move, ring }: WithdrawalStages) {
  const readEvidence = nonceEvidenceFromChains(config.chains);
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
    // Only needs_review: anything else can still be decided by the chain.
    if (seen.status !== "needs_review") throw new WithdrawalStateError(id, seen.status, "fail");
    // The signer's record first: if the chain moved the request meanwhile (it mined after all),
    // this refuses and no hold is released. Already failed: a repeat after a crash.
    try {
      await failTxRequestByOperator(
        pool,
        { requestId: signerRequestId(id), by: decision.by, reason: decision.reason },
        readEvidence,
      );
    } catch (error) {
      if (!(error instanceof TxRequestNotReviewableError && error.meta?.status === "failed"))
        throw error;
    }
    const result = await withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w) throw new NotFoundError("withdrawal", id);
      // The outcome pass may have applied the signer's `failed` in between: done already.
      if (w.status === "failed") return w;
      if (w.status !== "needs_review") throw new WithdrawalStateError(id, w.status, "fail");
      await holds.release(client, w);
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
