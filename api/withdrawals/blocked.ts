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
 * A block this worker places itself (a failure a deep reorg undid, held again short: follow.ts) pulls
 * back the customer's unsigned withdrawals in the transaction that places it (`lockUnsigned`, then
 * `pullBackLocked`): left to the next pass, the signer had that pass's interval (a second, or the
 * rest of a long pass) to sign one of them.
 *
 * One the signer already signed (or sent, or mined) cannot be stopped: its bytes may be in a node's
 * pool. It is left to the chain (hold standing, followed as any other) and reported once, whichever
 * api worker finds it first and however often they restart (api.blocked_withdrawals_in_flight, api
 * migration 0024), with an error log (alert `blocked_customer_withdrawal_in_flight`) and
 * custody_api_blocked_withdrawals_total{outcome="in_flight"} (BlockedWithdrawalInFlight): it adds
 * to what the customer owes. Each one pulled back is counted as outcome="pulled_back".
 */
import { afterCommit, type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import { isWithdrawalBlocked, listWithdrawalBlocks } from "../../ledger/index.js";
import { withdrawTxRequest } from "../../signer/index.js";
import type { WithdrawalStages } from "./context.js";
import { getWithdrawal, type Withdrawal } from "./store.js";
import { signerRequestId } from "./transitions.js";

/** The failure reason (and error code) a pulled-back withdrawal carries. */
export const BLOCKED_FAILURE = "CUSTOMER_WITHDRAWALS_BLOCKED";

/** Statuses in which a blocked customer's withdrawal may still pay out (sent, or about to be). */
const IN_FLIGHT = ["signing", "broadcast", "receipt_unknown", "needs_review"];

export function createBlockedPullBack({ pool, log, metrics, holds, move }: WithdrawalStages) {
  /** Withdrawals reported as past stopping (by any worker): not asked about again here. */
  const reported = new Set<string>();
  // Exported at 0 from the start: the alert's increase() sees the first one.
  for (const outcome of ["pulled_back", "in_flight"])
    metrics.blockedWithdrawals.inc({ outcome }, 0);

  /**
   * Pull back `w` (its row locked in the caller's transaction) if it is still `signing`, its
   * customer blocked and the signer's request unsigned; one already signed is reported. Returns
   * whether it was pulled back.
   */
  async function pullBackLocked(client: PoolClient, w: Withdrawal): Promise<boolean> {
    if (w.status !== "signing") return false;
    // Read again under the row lock: an operator may have cleared it meanwhile.
    if (!(await isWithdrawalBlocked(client, w.customerId))) return false;
    const id = w.id;
    const reason =
      "the customer's withdrawals were blocked (a reorg removed a deposit they had already spent) before the signer signed it";
    const taken = await withdrawTxRequest(client, {
      requestId: signerRequestId(id),
      by: "api:withdrawal-blocks",
      reason,
    });
    if (!taken.withdrawn) {
      afterCommit(client, await report(client, w.id, w.customerId, taken.status ?? "unknown"));
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
  }

  /** Pull back one withdrawal if it is still unsigned, in its own transaction. */
  async function pullBack(id: string): Promise<boolean> {
    return withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      return w ? pullBackLocked(client, w) : false;
    });
  }

  /**
   * The customer's withdrawals the signer may still sign (`signing`), their rows locked in id
   * order in the caller's transaction. Taken before the ledger's rows, the order every pull-back
   * takes them in; the caller pulls them back (`pullBackLocked`) once it has blocked the customer.
   */
  async function lockUnsigned(client: PoolClient, customerId: string): Promise<Withdrawal[]> {
    const { rows } = await client.query<{ id: string }>(
      `SELECT id::text FROM api.withdrawals
        WHERE customer_id = $1 AND status = 'signing' ORDER BY id FOR UPDATE`,
      [customerId],
    );
    const locked: Withdrawal[] = [];
    for (const r of rows) {
      const w = await getWithdrawal(client, r.id);
      if (w) locked.push(w);
    }
    return locked;
  }

  /**
   * Records a withdrawal found past stopping; returns what to tell once that commits: the counter
   * and the error log only if this was the first report of it by any worker (api migration 0024),
   * so a restarted or second worker does not fire BlockedWithdrawalInFlight again for it.
   */
  async function report(
    db: Pool | PoolClient,
    id: string,
    customerId: string,
    status: string,
  ): Promise<() => void> {
    if (reported.has(id)) return () => {};
    const { rowCount } = await db.query(
      `INSERT INTO api.blocked_withdrawals_in_flight (withdrawal_id, customer_id, signer_status)
       VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      [id, customerId, status],
    );
    return () => {
      reported.add(id);
      if (rowCount !== 1) return;
      metrics.blockedWithdrawals.inc({ outcome: "in_flight" });
      log.error({
        msg: "blocked customer's withdrawal was already signed when the block was placed: it cannot be stopped and may pay out",
        alert: "blocked_customer_withdrawal_in_flight",
        withdrawal_id: id,
        customer_id: customerId,
        signer_status: status,
      });
    };
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
        (await report(pool, r.id, r.customer_id, r.status))();
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

  return { pullBackBlocked, lockUnsigned, pullBackLocked };
}
