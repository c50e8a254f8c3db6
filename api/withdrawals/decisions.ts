/**
 * Decisions on a withdrawal before the signer has it: approve / reject (M-of-N distinct approvers,
 * never the requester) and cancel (the requester or an admin). Each is one transaction holding the
 * withdrawal's row lock; reject and cancel release the hold.
 */

import { appendAudit } from "../../foundation/audit.js";
import type { PoolClient } from "../../foundation/db.js";
import { withTransaction } from "../../foundation/db.js";
import { isWithdrawalBlocked } from "../../ledger/index.js";
import { type ApiKey, normalizeOwner } from "../apiKeys.js";
import {
  ApprovalError,
  NotFoundError,
  PolicyViolationError,
  WithdrawalStateError,
} from "../errors.js";
import type { WithdrawalStages } from "./context.js";
import { canMove, getWithdrawal, type Withdrawal } from "./store.js";

/** Who decided on the withdrawal so far, each owner normalised (in the caller's transaction). */
async function approversOf(
  client: PoolClient,
  id: string,
): Promise<{ approver: string; decision: string }[]> {
  const { rows } = await client.query<{ approver: string; decision: string }>(
    "SELECT approver, decision FROM api.withdrawal_approvals WHERE withdrawal_id = $1",
    [id],
  );
  return rows.map((r) => ({ approver: normalizeOwner(r.approver), decision: r.decision }));
}

export function createDecisions({ pool, holds, move, handToSigner, ring }: WithdrawalStages) {
  async function decide(
    client: PoolClient,
    caller: ApiKey,
    id: string,
    decision: "approve" | "reject",
    reason: string | undefined,
  ): Promise<Withdrawal> {
    const w = await getWithdrawal(client, id, { forUpdate: true });
    if (!w) throw new NotFoundError("withdrawal", id);
    if (w.status !== "pending_approval") throw new WithdrawalStateError(id, w.status, decision);
    // Owners are compared normalised (apiKeys.ts): rows written before owners were normalised
    // keep the spelling of their day, and "Anna" must not approve what "anna" requested.
    if (caller.owner === normalizeOwner(w.requestedBy))
      throw new ApprovalError(
        "APPROVER_IS_REQUESTER",
        "the requester of a withdrawal cannot approve or reject it",
        { withdrawal_id: id, approver: caller.owner },
      );
    const earlier = await approversOf(client, id);
    const inserted = earlier.some((a) => a.approver === caller.owner)
      ? { rowCount: 0 }
      : await client.query(
          `INSERT INTO api.withdrawal_approvals (withdrawal_id, approver, api_key_id, decision, reason)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
          [id, caller.owner, caller.id, decision, reason ?? null],
        );
    if (inserted.rowCount !== 1)
      throw new ApprovalError(
        "ALREADY_DECIDED",
        `${caller.owner} already decided on this withdrawal`,
        {
          withdrawal_id: id,
          approver: caller.owner,
        },
      );
    await appendAudit(client, {
      actor: caller.owner,
      action: decision === "approve" ? "withdrawal.approved_by" : "withdrawal.rejected_by",
      entityType: "withdrawal",
      entityId: id,
      details: { api_key_id: caller.id, ...(reason ? { reason } : {}) },
    });
    return w;
  }

  async function approve(caller: ApiKey, id: string, reason?: string) {
    const result = await withTransaction(pool, async (client) => {
      let w = await decide(client, caller, id, "approve", reason);
      // A reorg that removed a deposit this customer had spent blocks their withdrawals: one that
      // was waiting for approvals then may be paying with that deposit. It keeps its hold and can
      // be rejected or cancelled; approving it waits until the block is cleared.
      if (await isWithdrawalBlocked(client, w.customerId))
        throw new PolicyViolationError(
          "CUSTOMER_WITHDRAWALS_BLOCKED",
          "params.id",
          "withdrawals of this customer are blocked until an operator clears it (a reorg removed a deposit they had already spent): it cannot be approved now",
          { withdrawal_id: id },
        );
      const approvals = new Set(
        (await approversOf(client, id))
          .filter((a) => a.decision === "approve")
          .map((a) => a.approver),
      ).size;
      if (approvals >= w.requiredApprovals) {
        w = await move(client, w, "approved", caller.owner, { approvals });
        w = await handToSigner(client, w);
      }
      return w;
    });
    await ring();
    return result;
  }

  async function reject(caller: ApiKey, id: string, reason?: string) {
    const result = await withTransaction(pool, async (client) => {
      const w = await decide(client, caller, id, "reject", reason);
      await holds.release(client, w);
      return move(client, w, "rejected", caller.owner, reason ? { reason } : {}, {
        failureReason: reason ?? "rejected",
      });
    });
    await ring();
    return result;
  }

  async function cancel(caller: ApiKey, id: string, reason?: string) {
    const result = await withTransaction(pool, async (client) => {
      const w = await getWithdrawal(client, id, { forUpdate: true });
      if (!w) throw new NotFoundError("withdrawal", id);
      if (normalizeOwner(w.requestedBy) !== caller.owner && !caller.scopes.includes("admin"))
        throw new ApprovalError(
          "NOT_REQUESTER",
          "only the requester (or an admin) can cancel a withdrawal",
          { withdrawal_id: id },
        );
      if (!canMove(w.status, "cancelled")) throw new WithdrawalStateError(id, w.status, "cancel");
      await holds.release(client, w);
      return move(client, w, "cancelled", caller.owner, reason ? { reason } : {}, {
        failureReason: reason ?? "cancelled",
      });
    });
    await ring();
    return result;
  }

  return { approve, reject, cancel };
}
