/**
 * The one way a withdrawal changes status: the row, its audit entry and its webhook event, in the
 * caller's transaction (which holds the row lock), the log line and the metric once it commits; and
 * the hand-over to the signer (approved -> signing), whose request is inserted in the same
 * transaction.
 */
import { encodeFunctionData, erc20Abi, zeroAddress } from "viem";
import { appendAudit } from "../../foundation/audit.js";
import { afterCommit, type PoolClient } from "../../foundation/db.js";
import { requestTransaction } from "../../signer/index.js";
import { WithdrawalStateError } from "../errors.js";
import { type EventType, emitRepeatableEvent } from "../webhooks/events.js";
import type { MoveFields, Transitions, WithdrawalsContext } from "./context.js";
import { withdrawalTransferIds } from "./holds.js";
import {
  canMove,
  failRequestedOut,
  fromRow,
  WITHDRAWAL_COLUMNS,
  type Withdrawal,
  type WithdrawalRow,
  type WithdrawalStatus,
} from "./store.js";

/** The signer request id of a withdrawal (docs/contracts.md). */
export const signerRequestId = (withdrawalId: string) => `withdrawal:${withdrawalId}`;
/** The hold placed at intake (epoch 0; a reorg places the next epoch's: see holds.ts). */
export const holdId = (withdrawalId: string) => withdrawalTransferIds(withdrawalId, 0).hold;

const EVENT_OF: Partial<Record<WithdrawalStatus, EventType>> = {
  approved: "withdrawal.approved",
  broadcast: "withdrawal.broadcast",
  confirmed: "withdrawal.confirmed",
  finalized: "withdrawal.finalized",
  receipt_unknown: "withdrawal.receipt_unknown",
  needs_review: "withdrawal.needs_review",
  failed: "withdrawal.failed",
  rejected: "withdrawal.rejected",
  cancelled: "withdrawal.cancelled",
};

export function createTransitions({ config, log, metrics }: WithdrawalsContext): Transitions {
  /** The withdrawal's webhook event of `type`, as it is now (`next`). */
  async function emit(
    client: PoolClient,
    next: Withdrawal,
    type: EventType,
    extra: Record<string, unknown> = {},
  ) {
    await emitRepeatableEvent(client, config, {
      type,
      name: `withdrawal:${next.id}:${type.slice("withdrawal.".length)}`,
      data: {
        withdrawal_id: next.id,
        customer_id: next.customerId,
        chain_id: next.chainId,
        asset: next.asset,
        to: next.to,
        amount: next.amount.toString(),
        status: next.status,
        tx_hash: next.txHash,
        ...(next.failureReason ? { failure_reason: next.failureReason } : {}),
        ...(next.failRequested ? { fail_requested: failRequestedOut(next) } : {}),
        ...extra,
      },
    });
  }

  async function move(
    client: PoolClient,
    w: Withdrawal,
    to: WithdrawalStatus,
    actor: string,
    details: Record<string, unknown> = {},
    fields: MoveFields = {},
  ): Promise<Withdrawal> {
    if (!canMove(w.status, to)) throw new WithdrawalStateError(w.id, w.status, `move to ${to}`);
    // A reorg starts the next hold epoch; the gas booked with the reverted posting is reversed too.
    // unmined_since: from the send (or a reorg's re-send) for as long as the withdrawal stays out
    // and not mined, however often it moves between broadcast and receipt_unknown (the SET
    // expressions read the row as it was before this update).
    const { rows } = await client.query<WithdrawalRow>(
      `UPDATE api.withdrawals
          SET status = $2, updated_at = now(),
              unmined_since = CASE
                WHEN $2 NOT IN ('broadcast', 'receipt_unknown') THEN NULL
                WHEN status IN ('broadcast', 'receipt_unknown') THEN COALESCE(unmined_since, updated_at)
                ELSE now() END,
              tx_hash = COALESCE($3, tx_hash),
              fee = CASE WHEN $6 OR $9 THEN NULL ELSE COALESCE($4, fee) END,
              failure_reason = CASE WHEN $9 THEN NULL ELSE COALESCE($5, failure_reason) END,
              reorg_count = reorg_count + CASE WHEN $6 OR $9 THEN 1 ELSE 0 END,
              fail_requested_at = CASE WHEN fail_requested_at IS NULL AND $7::text IS NOT NULL
                                       THEN now() ELSE fail_requested_at END,
              fail_requested_by = COALESCE(fail_requested_by, $7),
              fail_request_reason = COALESCE(fail_request_reason, $8)
        WHERE id = $1
        RETURNING ${WITHDRAWAL_COLUMNS}`,
      [
        w.id,
        to,
        fields.txHash ?? null,
        fields.fee?.toString() ?? null,
        fields.failureReason ?? null,
        fields.reorged ?? false,
        fields.failRequested?.by ?? null,
        fields.failRequested?.reason ?? null,
        fields.failureUndone ?? false,
      ],
    );
    const next = fromRow(rows[0]!);
    const action = fields.reorged
      ? "withdrawal.reorged"
      : fields.failureUndone
        ? "withdrawal.failure_undone"
        : `withdrawal.${to}`;
    await appendAudit(client, {
      actor,
      action,
      entityType: "withdrawal",
      entityId: w.id,
      details: { from_status: w.status, to_status: to, ...details },
    });
    // An operator's failure that has to cancel the nonce first keeps the withdrawal in `broadcast`:
    // its own type, so a receiver can tell it from a re-send (docs: webhook events).
    // A failure undone has its own type too: a receiver told `failed` (and that refunded the
    // customer) must hear that it is not, before the withdrawal ends again.
    const type: EventType | undefined = fields.reorged
      ? "withdrawal.reorged"
      : fields.failureUndone
        ? "withdrawal.failure_undone"
        : fields.failRequested
          ? "withdrawal.fail_requested"
          : EVENT_OF[to];
    if (type)
      await emit(client, next, type, {
        ...(fields.reorged ? { reorgs: next.reorgCount } : {}),
        ...(fields.failureUndone
          ? { undone_failure_reason: w.failureReason, hold_epoch: next.reorgCount }
          : {}),
        ...(typeof details.review_reason === "string"
          ? { review_reason: details.review_reason }
          : {}),
      });
    // Told once committed: a later step of this transaction failing (an outcome pass's next move)
    // or a retried attempt (serialization failure) would count moves that never happened.
    afterCommit(client, () => {
      log.info({ msg: "withdrawal status", withdrawal_id: w.id, from: w.status, to, actor });
      metrics.withdrawals.inc({ status: to });
    });
    return next;
  }

  /**
   * An operator's failure by cancel, recorded on a withdrawal the outcome pass already moved on
   * (to `broadcast`, or past it) after the signer's request was decided alone (`tx-requests
   * fail`; `withdrawals fail` decides both in one transaction): the same
   * `failRequested`, audit entry and event as the move would have carried, without a status
   * change (updated_at stays: it dates the status). Once: a recorded request is kept as it is.
   */
  async function recordFailRequest(
    client: PoolClient,
    w: Withdrawal,
    decision: { by: string; reason: string },
  ): Promise<Withdrawal> {
    if (w.failRequested) return w;
    const { rows } = await client.query<WithdrawalRow>(
      `UPDATE api.withdrawals
          SET fail_requested_at = COALESCE(fail_requested_at, now()),
              fail_requested_by = COALESCE(fail_requested_by, $2),
              fail_request_reason = COALESCE(fail_request_reason, $3)
        WHERE id = $1
        RETURNING ${WITHDRAWAL_COLUMNS}`,
      [w.id, decision.by, decision.reason],
    );
    const next = fromRow(rows[0]!);
    await appendAudit(client, {
      actor: decision.by,
      action: "withdrawal.fail_requested",
      entityType: "withdrawal",
      entityId: w.id,
      details: { status: w.status, reason: decision.reason, by: "operator", cancelling: true },
    });
    await emit(client, next, "withdrawal.fail_requested");
    afterCommit(client, () =>
      log.info({ msg: "withdrawal fail requested", withdrawal_id: w.id, status: w.status }),
    );
    return next;
  }

  /** approved → signing: one signer request, inserted in this transaction. */
  async function handToSigner(client: PoolClient, w: Withdrawal): Promise<Withdrawal> {
    const native = w.asset === zeroAddress;
    await requestTransaction(client, {
      id: signerRequestId(w.id),
      chainId: w.chainId,
      from: w.fromAddress!,
      to: native ? w.to : w.asset,
      value: native ? w.amount : 0n,
      data: native
        ? "0x"
        : encodeFunctionData({
            abi: erc20Abi,
            functionName: "transfer",
            args: [w.to as `0x${string}`, w.amount],
          }),
      kind: "withdrawal",
      refId: w.id,
    });
    return move(client, w, "signing", "system", { signer_request: signerRequestId(w.id) });
  }

  return { move, recordFailRequest, handToSigner };
}
