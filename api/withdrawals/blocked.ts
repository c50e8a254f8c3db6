/**
 * A customer whose withdrawals a reorg shortfall blocked (DESIGN "Money flows"; the ledger places the
 * block, ledger/withdrawalBlocks.ts) is not paid by a withdrawal already handed to the signer but not
 * signed yet: one waiting for the hot wallet to be funded, behind the intake window, or on a halted
 * chain would otherwise be signed and sent with the money the reorg took. Each pass of the api
 * worker pulls those back, each in one transaction holding the withdrawal's row lock: the signer's
 * request is withdrawn before a nonce is taken (signer withdrawTxRequest: refused once it is
 * signed), the hold is released and the withdrawal fails CUSTOMER_WITHDRAWALS_BLOCKED (audit,
 * `withdrawal.failed` webhook). The customer keeps the balance, blocked, until an operator settles
 * the receivable (docs/runbooks/ReorgHoldShortfall.md).
 *
 * One the signer already signed (or sent, or mined) cannot be stopped: its bytes may be in a node's
 * pool. It is left to the chain (hold standing, followed as any other) and reported once per
 * process with an error log (alert `blocked_customer_withdrawal_in_flight`) and
 * custody_api_blocked_withdrawals_total{outcome="in_flight"} (BlockedWithdrawalInFlight): it adds
 * to what the customer owes. Each one pulled back is counted as outcome="pulled_back".
 */
import { afterCommit, withTransaction } from "../../foundation/db.js";
import { isWithdrawalBlocked, listWithdrawalBlocks } from "../../ledger/index.js";
import { withdrawTxRequest } from "../../signer/index.js";
import type { WithdrawalStages } from "./context.js";
import { getWithdrawal } from "./store.js";
import { signerRequestId } from "./transitions.js";

/** The failure reason (and error code) a pulled-back withdrawal carries. */
export const BLOCKED_FAILURE = "CUSTOMER_WITHDRAWALS_BLOCKED";

/** Statuses in which a blocked customer's withdrawal may still pay out (sent, or about to be). */
const IN_FLIGHT = ["signing", "broadcast", "receipt_unknown", "needs_review"];

export function createBlockedPullBack({ pool, log, metrics, holds, move }: WithdrawalStages) {
  /** Withdrawals reported as past stopping, so each is reported once by this process. */
  const reported = new Set<string>();
  // Exported at 0 from the start: the alert's increase() sees the first one.
  for (const outcome of ["pulled_back", "in_flight"])
    metrics.blockedWithdrawals.inc({ outcome }, 0);

  /** Pull back one withdrawal if it is still unsigned; returns whether it was. */
  async function pullBack(id: string): Promise<boolean> {
    return withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (w?.status !== "signing") return false;
      // Read again under the row lock: an operator may have cleared it meanwhile.
      if (!(await isWithdrawalBlocked(client, w.customerId))) return false;
      const reason =
        "the customer's withdrawals were blocked (a reorg removed a deposit they had already spent) before the signer signed it";
      const taken = await withdrawTxRequest(client, {
        requestId: signerRequestId(id),
        by: "api:withdrawal-blocks",
        reason,
      });
      if (!taken.withdrawn) {
        report(w.id, w.customerId, taken.status ?? "unknown");
        return false;
      }
      await holds.release(client, w);
      await move(
        client,
        w,
        "failed",
        "policy",
        { reason, signer_request: signerRequestId(id), error_code: BLOCKED_FAILURE },
        { failureReason: BLOCKED_FAILURE },
      );
      afterCommit(client, () => {
        metrics.blockedWithdrawals.inc({ outcome: "pulled_back" });
        log.warn({
          msg: "blocked customer's withdrawal pulled back before signing: hold released",
          withdrawal_id: id,
          customer_id: w.customerId,
          amount: w.amount.toString(),
        });
      });
      return true;
    });
  }

  function report(id: string, customerId: string, status: string) {
    if (reported.has(id)) return;
    reported.add(id);
    metrics.blockedWithdrawals.inc({ outcome: "in_flight" });
    log.error({
      msg: "blocked customer's withdrawal was already signed when the block was placed: it cannot be stopped and may pay out",
      alert: "blocked_customer_withdrawal_in_flight",
      withdrawal_id: id,
      customer_id: customerId,
      signer_status: status,
    });
  }

  /**
   * One pass: every blocked customer's withdrawal the signer has not signed is pulled back; the
   * others in flight are reported. Returns how many were pulled back.
   */
  async function pullBackBlocked(): Promise<number> {
    const customers = [...new Set((await listWithdrawalBlocks(pool)).map((b) => b.customerId))];
    if (customers.length === 0) return 0;
    const { rows } = await pool.query<{ id: string; status: string; customer_id: string }>(
      `SELECT id::text, status, customer_id FROM api.withdrawals
        WHERE customer_id = ANY($1::text[]) AND status = ANY($2::text[])`,
      [customers, IN_FLIGHT],
    );
    let pulled = 0;
    for (const r of rows) {
      if (r.status !== "signing") {
        report(r.id, r.customer_id, r.status);
        continue;
      }
      try {
        if (await pullBack(r.id)) pulled++;
      } catch (err) {
        log.error({
          msg: "pulling back a blocked customer's withdrawal failed",
          withdrawal_id: r.id,
          err,
        });
      }
    }
    return pulled;
  }

  return { pullBackBlocked };
}
