/** Withdrawal rows (api.withdrawals, api.withdrawal_approvals) and their JSON shape. */
import { getAddress } from "viem";
import type { Pool, PoolClient } from "../../foundation/db.js";
import type { ApiKey } from "../apiKeys.js";
import { CALLERS_KEY, callersKeyParams } from "../idempotency.js";

export const WITHDRAWAL_STATUSES = [
  "requested",
  "pending_approval",
  "approved",
  "signing",
  "broadcast",
  "confirmed",
  "finalized",
  "receipt_unknown",
  "needs_review",
  "rejected",
  "cancelled",
  "failed",
] as const;
export type WithdrawalStatus = (typeof WITHDRAWAL_STATUSES)[number];

/**
 * Statuses that follow the signer's outcome: the hold stays (pending, or posted while `confirmed`)
 * until the chain says final or an operator fails the withdrawal.
 */
export const FOLLOWED_STATUSES = [
  "signing",
  "broadcast",
  "confirmed",
  "receipt_unknown",
  "needs_review",
] as const satisfies readonly WithdrawalStatus[];

/** Allowed transitions; anything else is a bug or a race lost, and is refused. */
export const TRANSITIONS: Record<WithdrawalStatus, readonly WithdrawalStatus[]> = {
  requested: ["pending_approval", "approved"],
  pending_approval: ["approved", "rejected", "cancelled"],
  approved: ["signing"],
  // `failed` straight from signing: refused before anything was sent.
  signing: ["broadcast", "failed"],
  broadcast: ["confirmed", "finalized", "receipt_unknown", "needs_review", "failed"],
  // Back to `broadcast` only by a reorg (the posting is reverted to a hold).
  confirmed: ["finalized", "broadcast"],
  receipt_unknown: ["broadcast", "confirmed", "finalized", "needs_review", "failed"],
  // `failed` from here is the operator's decision (audited, with a reason).
  needs_review: ["broadcast", "confirmed", "finalized", "receipt_unknown", "failed"],
  // Back to `broadcast` only when a deep reorg an operator accepted undid its final block and the
  // signer follows its request again (the posting is reverted to a hold, outcome.ts planOutcome).
  finalized: ["broadcast"],
  rejected: [],
  cancelled: [],
  // Back to `broadcast` only when the signer follows its request again: a deep reorg an operator
  // accepted undid the final block at which it failed (held again, outcome.ts planOutcome).
  failed: ["broadcast"],
};

export function canMove(from: WithdrawalStatus, to: WithdrawalStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export type Withdrawal = {
  id: string;
  customerId: string;
  chainId: number;
  asset: string;
  to: string;
  amount: bigint;
  status: WithdrawalStatus;
  requiredApprovals: number;
  requestedBy: string;
  apiKeyId: string;
  idempotencyKey: string;
  fromAddress: string | null;
  txHash: string | null;
  fee: bigint | null;
  failureReason: string | null;
  /**
   * An operator failed it while its nonce was unused: the signer is cancelling the nonce, and the
   * withdrawal fails once the cancel is final (or is paid, if its own send mines first). Kept after.
   */
  failRequested: { at: Date; by: string; reason: string } | null;
  /** How many times a reorg took a confirmed withdrawal back to broadcast (the hold's epoch). */
  reorgCount: number;
  createdAt: Date;
  updatedAt: Date;
};

export type WithdrawalRow = {
  id: string;
  customer_id: string;
  chain_id: string;
  asset: string;
  to_address: string;
  amount: bigint;
  status: WithdrawalStatus;
  required_approvals: number;
  requested_by: string;
  api_key_id: string;
  idempotency_key: string;
  from_address: string | null;
  tx_hash: string | null;
  fee: bigint | null;
  failure_reason: string | null;
  fail_requested_at: Date | null;
  fail_requested_by: string | null;
  fail_request_reason: string | null;
  reorg_count: number;
  created_at: Date;
  updated_at: Date;
};

export function fromRow(r: WithdrawalRow): Withdrawal {
  return {
    id: r.id,
    customerId: r.customer_id,
    chainId: Number(r.chain_id),
    asset: r.asset,
    to: r.to_address,
    amount: r.amount,
    status: r.status,
    requiredApprovals: r.required_approvals,
    requestedBy: r.requested_by,
    apiKeyId: r.api_key_id,
    idempotencyKey: r.idempotency_key,
    fromAddress: r.from_address,
    txHash: r.tx_hash,
    fee: r.fee,
    failureReason: r.failure_reason,
    failRequested:
      r.fail_requested_at === null
        ? null
        : {
            at: r.fail_requested_at,
            by: r.fail_requested_by ?? "",
            reason: r.fail_request_reason ?? "",
          },
    reorgCount: r.reorg_count,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The columns of a `WithdrawalRow`, for SELECT and RETURNING. */
export const WITHDRAWAL_COLUMNS = `id::text, customer_id, chain_id::text, asset, to_address,
  amount, status, required_approvals, requested_by, api_key_id, idempotency_key, from_address,
  tx_hash, fee, failure_reason, fail_requested_at, fail_requested_by, fail_request_reason,
  reorg_count, created_at, updated_at`;

const SELECT = `SELECT ${WITHDRAWAL_COLUMNS} FROM api.withdrawals`;

export async function getWithdrawal(
  db: Pool | PoolClient,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<Withdrawal | undefined> {
  const { rows } = await db.query<WithdrawalRow>(
    `${SELECT} WHERE id = $1${options.forUpdate ? " FOR UPDATE" : ""}`,
    [id],
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/**
 * The withdrawal created under this Idempotency-Key by the caller's principal (any of its API
 * keys), or by the caller's API key itself (a row of a revision before principals).
 */
export async function findByIdempotencyKey(
  db: Pool | PoolClient,
  caller: Pick<ApiKey, "id" | "owner">,
  key: string,
): Promise<Withdrawal | undefined> {
  const { rows } = await db.query<WithdrawalRow>(
    `${SELECT} WHERE ${CALLERS_KEY}`,
    callersKeyParams(caller, key),
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

export async function listWithdrawals(
  db: Pool | PoolClient,
  filter: {
    customerId?: string;
    status?: string;
    after?: string;
    /** Newest first (`after` going back); default oldest first. */
    newestFirst?: boolean;
    limit: number;
  },
): Promise<Withdrawal[]> {
  // Cursor: the last id of the previous page (in the list's order, ties broken by id). One of two
  // fixed texts, nothing from input.
  const page = filter.newestFirst
    ? `AND ($4::uuid IS NULL OR (created_at, id) <
            (SELECT created_at, id FROM api.withdrawals WHERE id = $4))
       ORDER BY created_at DESC, id DESC`
    : `AND ($4::uuid IS NULL OR (created_at, id) >
            (SELECT created_at, id FROM api.withdrawals WHERE id = $4))
       ORDER BY created_at, id`;
  const { rows } = await db.query<WithdrawalRow>(
    `${SELECT} WHERE ($1::text IS NULL OR customer_id = $1) AND ($2::text IS NULL OR status = $2)
       ${page} LIMIT $3`,
    [filter.customerId ?? null, filter.status ?? null, filter.limit, filter.after ?? null],
  );
  return rows.map(fromRow);
}

export type Approval = {
  approver: string;
  decision: "approve" | "reject";
  reason: string | null;
  at: Date;
};

export async function approvalsOf(db: Pool | PoolClient, id: string): Promise<Approval[]> {
  const { rows } = await db.query<{
    approver: string;
    decision: "approve" | "reject";
    reason: string | null;
    at: Date;
  }>(
    `SELECT approver, decision, reason, at FROM api.withdrawal_approvals
      WHERE withdrawal_id = $1 ORDER BY at, approver`,
    [id],
  );
  return rows;
}

/** `failRequested` as the API and webhooks carry it (the time as ISO 8601), or null. */
export function failRequestedOut(w: Withdrawal): { at: string; by: string; reason: string } | null {
  const f = w.failRequested;
  return f && { at: f.at.toISOString(), by: f.by, reason: f.reason };
}

export function withdrawalOut(w: Withdrawal, approvals: Approval[] = []) {
  return {
    id: w.id,
    customerId: w.customerId,
    chainId: w.chainId,
    assetId: `${w.chainId}:${w.asset}`,
    asset: getAddress(w.asset),
    to: getAddress(w.to),
    amount: w.amount.toString(),
    status: w.status,
    requiredApprovals: w.requiredApprovals,
    approvals: approvals.map((a) => ({
      approver: a.approver,
      decision: a.decision,
      reason: a.reason,
      at: a.at.toISOString(),
    })),
    requestedBy: w.requestedBy,
    from: w.fromAddress ? getAddress(w.fromAddress) : null,
    txHash: w.txHash,
    fee: w.fee?.toString() ?? null,
    failureReason: w.failureReason,
    failRequested: failRequestedOut(w),
    createdAt: w.createdAt.toISOString(),
    updatedAt: w.updatedAt.toISOString(),
  };
}
