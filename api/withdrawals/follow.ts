/**
 * Following the signer's outcome (`getTxOutcomes`, never receipts or the custody tables) to
 * finality: confirmed posts the hold and books the gas; a reorg reverts the posting to a hold;
 * finalized is terminal, but for a deep reorg an operator accepted undoing its final block (the
 * signer's `finalUndoneAt`): the posting is reverted to a hold and it ends as its request ends
 * (posted again, or voided if it fails on the new branch); receipt_unknown and needs_review keep the hold; failed (before broadcast,
 * reverted in a final block, or by an operator) voids it. A `failed` withdrawal whose request the
 * signer follows again (a deep reorg an operator accepted undid the failure's final block:
 * `failureUndoneAt`) goes back to `broadcast` held again and ends as its request ends. Between full
 * scans (the safety net) only outcomes that changed since the last pass are read. Each pass first
 * pulls back the withdrawals of customers a reorg shortfall blocked that the signer has not signed
 * yet (blocked.ts).
 */
import type { PoolClient } from "../../foundation/db.js";
import { afterCommit, withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import { recordReorgShortfall, reorgShortfallCounter } from "../../ledger/index.js";
import {
  failureIsEvidenced,
  getTxOutcomes,
  paidTransfer,
  type TxOutcome,
} from "../../signer/index.js";
import { createBlockedPullBack } from "./blocked.js";
import type { WithdrawalStages } from "./context.js";
import { failedAgainElsewhere, type Move, minedAgainElsewhere, planOutcome } from "./outcome.js";
import {
  FOLLOWED_STATUSES,
  getWithdrawal,
  type Withdrawal,
  type WithdrawalStatus,
} from "./store.js";
import { signerRequestId } from "./transitions.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a pass reads of each followed withdrawal to plan its moves (the posted tx and fee too). */
type FollowedRow = {
  id: string;
  status: WithdrawalStatus;
  tx_hash: string | null;
  fee: string | null;
};
const FOLLOWED_COLUMNS = "id::text, status, tx_hash, fee::text";
/**
 * Read by the incremental pass too: one the signer follows again after its failure was undone, and
 * one finalized in a block a deep reorg undid (its request no longer final: the posting reverted).
 */
const READ_STATUSES = [...FOLLOWED_STATUSES, "failed", "finalized"];

const planFor = (
  w: { status: WithdrawalStatus; txHash: string | null; fee: bigint | null },
  o: TxOutcome,
) =>
  planOutcome(
    w.status,
    o.status,
    o.txHash !== null,
    minedAgainElsewhere(w, o),
    (o.failureUndoneAt ?? null) !== null,
    failedAgainElsewhere(w, o, (o.failureUndoneAt ?? null) !== null),
    (o.finalUndoneAt ?? null) !== null,
  );

export function createOutcomeFollower(stages: WithdrawalStages) {
  const { pool, log, holds, move, ring, common } = stages;
  const shortfalls = reorgShortfallCounter(common.metrics.registry);
  const { pullBackBlocked, lockUnsigned, pullBackLocked } = createBlockedPullBack(stages);
  /**
   * Undone failures refused a hold on a frozen balance already reported (by any worker): not
   * asked about again here. Keyed by withdrawal and the signer's failure_undone_at.
   */
  const unheld = new Set<string>();

  /**
   * Reports an undone failure a frozen balance refused to hold again: the counter and the error
   * log only if this is its first report by any worker (api migration 0025), so a restarted or
   * second worker does not fire WithdrawalFailureUndoneUnheld again for it.
   */
  async function reportUnheld(id: string, o: TxOutcome, err: BaseError) {
    const undoneAt = o.failureUndoneAt ?? null;
    const key = `${id}:${undoneAt?.toISOString()}`;
    if (undoneAt === null || unheld.has(key)) return;
    const { rowCount } = await pool.query(
      `INSERT INTO api.withdrawal_failure_undone_unheld (withdrawal_id, failure_undone_at, chain_id, tx_hash)
       VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [id, undoneAt, o.chainId, o.txHash],
    );
    unheld.add(key);
    if (rowCount !== 1) return;
    stages.metrics.failureUndoneUnheld.inc();
    log.error({
      msg: "withdrawal's failure undone by a deep reorg, but the customer's balance is frozen: not held again, not followed until it is unfrozen",
      alert: "withdrawal_failure_undone_unheld",
      withdrawal_id: id,
      chain_id: o.chainId,
      tx_hash: o.txHash,
      request_status: o.status,
      err,
    });
  }
  /** One planned move: its ledger step, then the status change (same transaction). */
  async function step(client: PoolClient, w: Withdrawal, m: Move, o: TxOutcome) {
    const txHash = o.txHash ?? undefined;
    switch (m.ledger) {
      case "post": {
        // A token that took a fee on the transfer has no fact of the whole amount: its parts are
        // booked against their own facts (holds.postFeeOnTransfer), so its mined payment is
        // followed like any other instead of staying held.
        const paid = paidTransfer(o, w);
        // Without the fact's reference reconciliation could not pair the post: retry next pass.
        if (!paid)
          throw new BaseError(
            `signer outcome of withdrawal ${w.id} has no tx or transfer position`,
            { code: "WITHDRAWAL_OUTCOME_INCOMPLETE", meta: { withdrawal_id: w.id } },
          );
        const { position, charged, tokenFees } = paid;
        const fee = o.fee ?? 0n;
        if (position)
          await holds.post(client, w, { chainId: w.chainId, txHash: paid.txHash, position }, fee);
        else if (charged) await holds.postFeeOnTransfer(client, w, paid.txHash, charged, fee);
        return move(
          client,
          w,
          m.to,
          "signer",
          {
            tx_hash: paid.txHash,
            block: o.blockNumber?.toString(),
            // The recipient got less than the customer paid: the audit says why.
            ...(charged
              ? { token_fee: tokenFees.toString(), received: charged.received.amount.toString() }
              : {}),
          },
          {
            txHash: paid.txHash,
            fee,
          },
        );
      }
      case "revert": {
        const epoch = await holds.revert(client, w, w.fee);
        return move(
          client,
          w,
          m.to,
          "signer",
          { tx_hash: w.txHash, reorgs: o.reorgs, hold_epoch: epoch },
          { reorged: true },
        );
      }
      case "hold_again": {
        // The customer's withdrawals the signer has not signed, locked before the ledger's rows
        // (a pull-back's order): if this hold blocks the customer they are pulled back in this
        // transaction, so none is signed once the block commits (left to the next pass, the
        // signer had a second or more to sign one).
        const unsigned = await lockUnsigned(client, w.customerId);
        const { epoch, shortfall } = await holds.holdAgain(client, w);
        const details = {
          withdrawal_id: w.id,
          undone_failure_reason: w.failureReason,
          undone_tx_hash: w.txHash,
          hold_epoch: epoch,
          shortfall: shortfall.toString(),
          failure_undone_at: o.failureUndoneAt?.toISOString() ?? null,
        };
        // The customer spent the refund: the rest is owed, and nothing more leaves (blocked.ts
        // pulls back what the signer has not signed yet).
        if (shortfall > 0n) {
          await recordReorgShortfall(client, {
            owner: w.customerId,
            chainId: w.chainId,
            details: { customer_id: w.customerId, chain_id: w.chainId, asset: w.asset, ...details },
            msg: "withdrawal's failure undone by a deep reorg after the customer spent the refund: shortfall booked to receivable, withdrawals blocked",
            counter: shortfalls,
            log,
          });
          for (const other of unsigned) await pullBackLocked(client, other);
        }
        afterCommit(client, () =>
          log.warn({
            msg: "withdrawal failed at a final block that a deep reorg undid: followed again, held again",
            ...details,
          }),
        );
        return move(client, w, m.to, "signer", details, {
          ...(txHash ? { txHash } : {}),
          failureUndone: true,
        });
      }
      case "unbook_fee": {
        // Undone and failed again before a pass looked (failedAgainElsewhere): the first
        // failure's gas is reversed; nothing is held (the next move fails it in this transaction).
        const epoch = await holds.unbookFailureFee(client, w);
        const details = {
          withdrawal_id: w.id,
          undone_failure_reason: w.failureReason,
          undone_tx_hash: w.txHash,
          hold_epoch: epoch,
          failure_undone_at: o.failureUndoneAt?.toISOString() ?? null,
        };
        afterCommit(client, () =>
          log.warn({
            msg: "withdrawal failed at a final block that a deep reorg undid, and failed again since: gas booked anew",
            ...details,
            tx_hash: o.txHash,
          }),
        );
        return move(client, w, m.to, "signer", details, { failureUndone: true });
      }
      case "void":
      case "book_fee": {
        // Released only on evidence (failureIsEvidenced); otherwise a signer bug: keep the hold.
        if (!failureIsEvidenced(o))
          throw new BaseError(
            `Signer reported withdrawal ${w.id} failed without a final block or an operator; the hold is kept`,
            {
              code: "WITHDRAWAL_RELEASE_REFUSED",
              meta: { withdrawal_id: w.id, error_code: o.errorCode, nonce: String(o.nonce) },
            },
          );
        const fee = o.fee ?? 0n;
        await holds.bookFee(client, w, fee, o.txHash);
        if (m.ledger === "void") await holds.release(client, w);
        // An operator's failure is audited as theirs, also when this pass applies it: decided on
        // the signer's request alone (`tx-requests fail`), or at its cancel's final block.
        const operator =
          o.errorCode === "OPERATOR_FAILED" ? (o.failedBy ?? w.failRequested?.by) : undefined;
        return move(
          client,
          w,
          m.to,
          operator ?? "signer",
          {
            error_code: o.errorCode,
            error: o.errorMessage,
            ...(operator ? { by: "operator", reason: o.errorMessage } : {}),
          },
          {
            ...(txHash ? { txHash } : {}),
            fee,
            // An operator's fail by cancel ends here, at the cancel's final block: with its reason.
            failureReason:
              o.errorCode === "OPERATOR_FAILED" && o.errorMessage
                ? `OPERATOR_FAILED: ${o.errorMessage}`
                : (o.errorCode ?? "failed"),
          },
        );
      }
      case "none":
        return move(
          client,
          w,
          m.to,
          "signer",
          {
            ...(txHash ? { tx_hash: txHash } : {}),
            ...(o.reviewReason ? { review_reason: o.reviewReason } : {}),
          },
          txHash ? { txHash } : {},
        );
    }
  }

  /**
   * Applies the request's outcome if the withdrawal is still where the pass saw it. The outcome is
   * read again under the withdrawal's row lock: the one the pass read may be a page (or a lock
   * wait) old, and a reorg or the signer's next step meanwhile would have it post a payment that
   * is no longer mined (a `confirmed` webhook, then a `reorged` one, for nothing).
   */
  async function applyOutcome(id: string, seen: WithdrawalStatus): Promise<boolean> {
    return withTransaction(pool, async (client) => {
      let w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w || w.status !== seen) return false;
      const o = (await getTxOutcomes(client, { requestIds: [signerRequestId(id)] }))[0];
      if (!o) return false;
      const moves = planFor(w, o);
      for (const m of moves) w = await step(client, w, m, o);
      return moves.length > 0;
    });
  }

  /** Applies each outcome that moves its withdrawal; returns how many moved. */
  async function applyOutcomes(
    rows: readonly FollowedRow[],
    outcomes: ReadonlyMap<string, TxOutcome>,
  ): Promise<number> {
    let changed = 0;
    for (const row of rows) {
      const { id, status } = row;
      const o = outcomes.get(signerRequestId(id));
      if (!o) continue;
      const posted = {
        status,
        txHash: row.tx_hash,
        fee: row.fee === null ? null : BigInt(row.fee),
      };
      const moves = planFor(posted, o);
      if (moves.length === 0) continue;
      try {
        if (await applyOutcome(id, status)) changed++;
      } catch (err) {
        // A frozen balance takes no withdrawal hold (LEDGER_ACCOUNT_FROZEN): one whose failure a
        // deep reorg undid stays failed and unfollowed while the chain may pay it. Reported once,
        // by the first worker to find it (alert WithdrawalFailureUndoneUnheld), not a log line
        // every full scan nor again after a restart.
        if (
          status === "failed" &&
          err instanceof BaseError &&
          err.code === "LEDGER_ACCOUNT_FROZEN"
        ) {
          try {
            await reportUnheld(id, o, err);
          } catch (reportErr) {
            log.error({
              msg: "reporting an unheld withdrawal failed",
              withdrawal_id: id,
              err: reportErr,
            });
          }
          continue;
        }
        log.error({ msg: "applying signer outcome failed", withdrawal_id: id, err });
      }
    }
    return changed;
  }

  const byRequest = (list: TxOutcome[]) => new Map(list.map((o) => [o.requestId, o]));

  /** Every followed withdrawal, a page at a time (keyset on id; partial index withdrawals_followed). */
  async function fullScan(): Promise<number> {
    let changed = 0;
    let after = "00000000-0000-0000-0000-000000000000";
    for (;;) {
      const { rows } = await pool.query<FollowedRow>(
        `SELECT ${FOLLOWED_COLUMNS} FROM api.withdrawals
          WHERE status = ANY($1::text[]) AND id > $2::uuid ORDER BY id LIMIT 500`,
        [FOLLOWED_STATUSES, after],
      );
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.id;
      const outcomes = await getTxOutcomes(pool, {
        requestIds: rows.map((r) => signerRequestId(r.id)),
      });
      changed += await applyOutcomes(rows, byRequest(outcomes));
      if (rows.length < 500) break;
    }
    // And the failed ones whose request the signer follows again (a handful, ever): what the
    // incremental passes missed (a worker down then, a burst) is found here.
    const undone = await getTxOutcomes(pool, { failureUndone: true, kind: "withdrawal" });
    const ids = undone.map((o) => o.refId).filter((id) => UUID.test(id));
    if (ids.length > 0) {
      const { rows } = await pool.query<FollowedRow>(
        `SELECT ${FOLLOWED_COLUMNS} FROM api.withdrawals WHERE id = ANY($1::uuid[]) AND status = 'failed'`,
        [ids],
      );
      changed += await applyOutcomes(rows, byRequest(undone));
    }
    // And the finalized ones whose final block a deep reorg undid (a handful, ever): the posting
    // goes back to a hold until the request ends again, also when no incremental pass saw it.
    const reopened = await getTxOutcomes(pool, { finalUndone: true, kind: "withdrawal" });
    const reopenedIds = reopened.map((o) => o.refId).filter((id) => UUID.test(id));
    if (reopenedIds.length > 0) {
      const { rows } = await pool.query<FollowedRow>(
        `SELECT ${FOLLOWED_COLUMNS} FROM api.withdrawals WHERE id = ANY($1::uuid[]) AND status = 'finalized'`,
        [reopenedIds],
      );
      changed += await applyOutcomes(rows, byRequest(reopened));
    }
    return changed;
  }

  // Between full scans (the safety net), only outcomes that changed since the last pass are read.
  const FULL_SCAN_EVERY_MS = 30_000;
  /** Changes commit a moment after their timestamp: re-read this far back (contract 4). */
  const OVERLAP_MS = 5_000;
  const PAGE = 1000;
  let since: Date | undefined;
  let lastFullScan = 0;

  async function syncOutcomes(): Promise<number> {
    // First, what a reorg shortfall blocked since the last pass and the signer has not signed yet
    // is pulled back (blocked.ts): the next signer tick may sign it.
    let changed = await pullBackBlocked();
    if (since === undefined || Date.now() - lastFullScan >= FULL_SCAN_EVERY_MS) {
      const { rows } = await pool.query<{ now: Date }>("SELECT now() AS now");
      lastFullScan = Date.now();
      changed += await fullScan();
      since = rows[0]!.now;
    } else {
      const changes = await getTxOutcomes(pool, {
        since: new Date(since.getTime() - OVERLAP_MS),
        kind: "withdrawal",
        limit: PAGE,
      });
      if (changes.length >= PAGE) {
        lastFullScan = 0; // a burst: let the next pass read everything
      }
      const ids = changes.map((o) => o.refId).filter((id) => UUID.test(id));
      if (ids.length > 0) {
        const { rows } = await pool.query<FollowedRow>(
          `SELECT ${FOLLOWED_COLUMNS} FROM api.withdrawals
            WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])`,
          [ids, READ_STATUSES],
        );
        changed += await applyOutcomes(rows, byRequest(changes));
      }
      for (const o of changes) if (o.changedAt > since) since = o.changedAt;
    }
    if (changed > 0) await ring();
    return changed;
  }

  return { syncOutcomes };
}
