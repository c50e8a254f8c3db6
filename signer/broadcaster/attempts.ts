/**
 * Stored attempts and requests: the rows the stages read and the few writes they share. Every
 * signed transaction is stored before it is sent and only stored bytes are ever sent (KMS
 * signatures are not deterministic: re-signing makes another transaction).
 */
import type { Hex } from "viem";
import type { Fees } from "../fees.js";
import type { Lease } from "../lease.js";
import type { NodeErrorClass } from "../nodeErrors.js";
import type { TxRequestStatus } from "../requests.js";
import type { BroadcasterContext } from "./context.js";

export type AttemptStatus = "signed" | "broadcast" | "mined" | "replaced" | "rejected";

export type Attempt = {
  id: string;
  requestId: string;
  nonce: bigint;
  purpose: "send" | "cancel";
  txHash: Hex;
  raw: Hex;
  status: AttemptStatus;
  gasLimit: bigint;
  fees: Fees;
  sentAt: number | null;
  createdAt: number;
  lastErrorClass: NodeErrorClass | null;
};

export type WatchedRequest = {
  id: string;
  kind: string;
  refId: string;
  status: TxRequestStatus;
  nonce: bigint;
  to: Hex;
  value: bigint;
  data: Hex;
  txHash: Hex | null;
  blockNumber: bigint | null;
  blockHash: Hex | null;
  receiptSuccess: boolean | null;
  /** A token transfer() that mined with status 1 and moved nothing (migration 0117). */
  transferMovedNothing: boolean;
  finalized: boolean;
  receiptMissingSince: number | null;
  reviewReason: string | null;
  /** An operator failed it while its nonce was unused: only cancels may use that nonce now. */
  cancelRequested: boolean;
  /**
   * It had failed at a final block a deep reorg accepted at the chain's resume took away
   * (undone.ts, migration 0119): its caller released its hold, so only cancels may use its nonce.
   */
  failureUndone: boolean;
  createdAt: number;
};

/**
 * Only cancels may use its nonce, never its payment again: an operator failed it while its nonce
 * was unused, or its caller released its hold on a failure a deep reorg undid (undone.ts).
 */
export function cancelsOnly(req: Pick<WatchedRequest, "cancelRequested" | "failureUndone">) {
  return req.cancelRequested || req.failureUndone;
}

/** The event of a node taking bytes of a request in receipt_unknown or review (send.ts). */
export const NODE_TOOK = "node_took";

/**
 * SQL: no node ever took any bytes of the request whose id is the SQL expression `id`, as its
 * audit trail shows (it left `signed` for receipt_unknown or review, never left a status only a
 * node's taking gives: `broadcast`, `mined`, `confirmed`, and no node took any there: NODE_TOOK).
 * No trail (rows older than the events): false, taken.
 */
export const neverTaken = (id: string) => `EXISTS (SELECT 1 FROM custody.tx_request_events e
                    WHERE e.request_id = ${id} AND e.from_status = 'signed')
       AND NOT EXISTS (SELECT 1 FROM custody.tx_request_events e
                        WHERE e.request_id = ${id}
                          AND (e.from_status IN ('broadcast', 'mined', 'confirmed')
                               OR e.event = '${NODE_TOOK}'))`;

/**
 * The status a request goes back to the broadcaster in (an operator's fail by cancel or retry,
 * operator.ts; a nonce the chain gave back after receipt_unknown or needs_review, track.ts), as an
 * SQL expression of the request id `$1`: `signed` when no node ever took any of its bytes
 * (neverTaken), else `broadcast`. `signed` says "no node has taken it" to every stage: on a halted
 * chain its stored bytes and its cancels are held until the resume (halt.ts, cancel.ts); as
 * `broadcast` they would go out while the halt is open (new bytes, gas, the nonce). A node taking
 * an attempt makes it `broadcast` (send.ts).
 */
export const BACK_TO_BROADCASTER = `CASE WHEN ${neverTaken("$1")} THEN 'signed' ELSE 'broadcast' END`;

// id and nonce are int8 (pg gives int8 as a string: `::text` says so); the gas and fee columns
// are NUMERIC(78,0), which the connection parses to bigint; the epoch times are float8 (ms).
export const ATTEMPT_COLUMNS = `id::text, request_id, nonce::text, purpose, tx_hash, raw_tx, status, gas_limit,
  max_fee_per_gas, max_priority_fee_per_gas, gas_price,
  (extract(epoch from broadcast_at) * 1000)::float8 AS sent_at, (extract(epoch from created_at) * 1000)::float8 AS created_at,
  last_error_class`;

/** A row of ATTEMPT_COLUMNS. */
export type AttemptRow = {
  id: string;
  request_id: string;
  nonce: string;
  purpose: Attempt["purpose"];
  tx_hash: Hex;
  raw_tx: Hex;
  status: AttemptStatus;
  gas_limit: bigint;
  max_fee_per_gas: bigint | null;
  max_priority_fee_per_gas: bigint | null;
  gas_price: bigint | null;
  sent_at: number | null;
  created_at: number;
  last_error_class: NodeErrorClass | null;
};

export function attemptFromRow(r: AttemptRow): Attempt {
  return {
    id: r.id,
    requestId: r.request_id,
    nonce: BigInt(r.nonce), // int8 text, not NUMERIC
    purpose: r.purpose,
    txHash: r.tx_hash,
    raw: r.raw_tx,
    status: r.status,
    gasLimit: r.gas_limit,
    fees:
      r.gas_price !== null
        ? { type: "legacy", gasPrice: r.gas_price }
        : {
            type: "eip1559",
            maxFeePerGas: r.max_fee_per_gas!,
            maxPriorityFeePerGas: r.max_priority_fee_per_gas!,
          },
    sentAt: r.sent_at,
    createdAt: r.created_at,
    lastErrorClass: r.last_error_class,
  };
}

export type NewAttempt = {
  requestId: string;
  nonce: bigint;
  purpose: "send" | "cancel";
  hash: Hex;
  raw: Hex;
  gasLimit: bigint;
  fees: Fees;
};

/** Store one signed attempt (status `signed`); returns it as stored. */
export async function storeAttempt(
  ctx: BroadcasterContext,
  lease: Lease,
  a: NewAttempt,
): Promise<Attempt> {
  const { rows } = await lease.query<AttemptRow>(
    `INSERT INTO custody.tx_attempts (request_id, chain_id, from_address, nonce, purpose, tx_hash, raw_tx,
       gas_limit, max_fee_per_gas, max_priority_fee_per_gas, gas_price)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     RETURNING ${ATTEMPT_COLUMNS}`,
    [
      a.requestId,
      ctx.chain.chainId,
      ctx.from,
      a.nonce.toString(),
      a.purpose,
      a.hash,
      a.raw,
      a.gasLimit.toString(),
      a.fees.type === "eip1559" ? a.fees.maxFeePerGas.toString() : null,
      a.fees.type === "eip1559" ? a.fees.maxPriorityFeePerGas.toString() : null,
      a.fees.type === "legacy" ? a.fees.gasPrice.toString() : null,
    ],
  );
  return attemptFromRow(rows[0]!);
}

/** Attempts that may still be included (stored or handed to a node), from `minNonce` up. */
export async function liveAttempts(ctx: BroadcasterContext, minNonce = 0n): Promise<Attempt[]> {
  const { rows } = await ctx.pool.query<AttemptRow>(
    `SELECT ${ATTEMPT_COLUMNS} FROM custody.tx_attempts
     WHERE chain_id = $1 AND from_address = $2 AND status IN ('signed', 'broadcast') AND nonce >= $3
     ORDER BY nonce, id`,
    [ctx.chain.chainId, ctx.from, minNonce.toString()],
  );
  return rows.map(attemptFromRow);
}

/** Every attempt of these requests, rejected ones included, newest first. */
export async function attemptsOf(
  ctx: BroadcasterContext,
  requestIds: readonly string[],
): Promise<Map<string, Attempt[]>> {
  const byRequest = new Map<string, Attempt[]>();
  if (requestIds.length === 0) return byRequest;
  const { rows } = await ctx.pool.query<AttemptRow>(
    `SELECT ${ATTEMPT_COLUMNS} FROM custody.tx_attempts
     WHERE request_id = ANY($1) ORDER BY id DESC`,
    [requestIds],
  );
  for (const row of rows) {
    const a = attemptFromRow(row);
    const list = byRequest.get(a.requestId);
    if (list) list.push(a);
    else byRequest.set(a.requestId, [a]);
  }
  return byRequest;
}

/** The newest live attempt per nonce (the one paying the most), in nonce order. */
export function newestPerNonce(attempts: readonly Attempt[]): Attempt[] {
  const byNonce = new Map<bigint, Attempt>();
  for (const a of attempts) {
    const seen = byNonce.get(a.nonce);
    // Attempt ids are bigserial (int8), kept as pg's text: compare them as numbers.
    if (!seen || BigInt(a.id) > BigInt(seen.id)) byNonce.set(a.nonce, a);
  }
  return [...byNonce.values()].sort((x, y) => (x.nonce < y.nonce ? -1 : 1));
}

// nonce and block_number are int8 (strings from pg); value is NUMERIC(78,0) (a bigint); times float8 ms.
export const WATCHED_COLUMNS = `id, kind, ref_id, status, nonce, to_address, value, data, tx_hash,
  block_number::text, block_hash, receipt_success, transfer_moved_nothing,
  finalized_at IS NOT NULL AS finalized,
  (extract(epoch from receipt_missing_since) * 1000)::float8 AS missing_since, review_reason,
  cancel_requested_at IS NOT NULL AS cancel_requested, failure_undone_at IS NOT NULL AS failure_undone,
  (extract(epoch from created_at) * 1000)::float8 AS created_at`;

/**
 * Requests with a nonce that are not final: in flight, mined, confirmed but not yet final,
 * without a receipt, or waiting for review. Ordered by nonce.
 */
export async function watchedRequests(
  ctx: Pick<BroadcasterContext, "pool" | "chain" | "from">,
): Promise<WatchedRequest[]> {
  const { rows } = await ctx.pool.query<WatchedRow>(
    `SELECT ${WATCHED_COLUMNS} FROM custody.tx_requests
      WHERE chain_id = $1 AND from_address = $2
        AND status IN ('signed', 'broadcast', 'mined', 'receipt_unknown', 'needs_review')
     UNION ALL
     SELECT ${WATCHED_COLUMNS} FROM custody.tx_requests
      WHERE chain_id = $1 AND from_address = $2
        AND status = 'confirmed' AND finalized_at IS NULL AND nonce IS NOT NULL
     ORDER BY nonce`,
    [ctx.chain.chainId, ctx.from],
  );
  return rows.map(watchedFromRow);
}

/** A row of WATCHED_COLUMNS. */
export type WatchedRow = {
  id: string;
  kind: string;
  ref_id: string;
  status: TxRequestStatus;
  nonce: string;
  to_address: Hex;
  value: bigint;
  data: Hex;
  tx_hash: Hex | null;
  block_number: string | null;
  block_hash: Hex | null;
  receipt_success: boolean | null;
  transfer_moved_nothing: boolean;
  finalized: boolean;
  missing_since: number | null;
  review_reason: string | null;
  cancel_requested: boolean;
  failure_undone: boolean;
  created_at: number;
};

export function watchedFromRow(r: WatchedRow): WatchedRequest {
  return {
    id: r.id,
    kind: r.kind,
    refId: r.ref_id,
    status: r.status,
    nonce: BigInt(r.nonce), // int8 text, not NUMERIC
    to: r.to_address,
    value: r.value,
    data: r.data,
    txHash: r.tx_hash,
    blockNumber: r.block_number === null ? null : BigInt(r.block_number), // int8 text
    blockHash: r.block_hash,
    receiptSuccess: r.receipt_success,
    transferMovedNothing: r.transfer_moved_nothing,
    finalized: r.finalized,
    receiptMissingSince: r.missing_since,
    reviewReason: r.review_reason,
    cancelRequested: r.cancel_requested,
    failureUndone: r.failure_undone,
    createdAt: r.created_at,
  };
}

/** Append to the request's history (custody.tx_request_events). */
export async function recordEvent(
  lease: Lease,
  e: {
    requestId: string;
    from: string | null;
    to: string;
    event: string;
    reason?: string | undefined;
    details?: Record<string, unknown>;
    actor?: string;
  },
): Promise<void> {
  await lease.query(
    `INSERT INTO custody.tx_request_events (request_id, from_status, to_status, event, actor, reason, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      e.requestId,
      e.from,
      e.to,
      e.event,
      e.actor ?? "signer",
      e.reason ?? null,
      JSON.stringify(e.details ?? {}),
    ],
  );
}
