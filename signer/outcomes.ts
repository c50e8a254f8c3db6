/**
 * What happened to requested transactions, recorded once by the signer's tracker and read by
 * callers (withdrawals, sweeps, cold moves) instead of fetching receipts themselves or naming the
 * custody tables. A status can go back: a reorg takes `confirmed` to `broadcast` (see `reorgs`).
 *
 *   signing          not yet taken by a node (no nonce yet, signed and stored but unsent, or
 *                    refused for its fees: underpriced, being bumped)
 *   broadcast        sent; not mined, or mined without the confirmation rule met yet (a reverted or
 *                    cancelled attempt, or a token transfer() that moved nothing, stays here until
 *                    its block is final). A request an operator failed while its nonce was unused
 *                    is here too (`cancelRequestedAt`) until its cancel's block is final (then
 *                    `failed`, OPERATOR_FAILED) or its payment mined; in `signing` while no node
 *                    has taken any of its bytes (signer/operator.ts)
 *   confirmed        mined and successful, the chain's confirmation rule met; still watched
 *   finalized        confirmed and its block final under the chain's finality rule: terminal,
 *                    but for a deep reorg an operator accepted at the chain's resume undoing that
 *                    block: back to `broadcast` (`finalUndoneAt`, broadcaster/undone.ts), its stored
 *                    bytes sent again, and followed to final (or failed) again
 *   receipt_unknown  its nonce is used on chain but no receipt of any attempt was found yet
 *   needs_review     a human must look (nonce consumed at a final block with none of our attempts
 *                    found, or the nonce cannot be used); still watched; only an operator fails it
 *   failed           terminal: refused before a nonce was taken, reverted or cancelled in a final
 *                    block (or a token transfer() that moved nothing: TRANSFER_MOVED_NOTHING), or
 *                    failed by an operator (audited). `errorCode` says which. Only a deep reorg
 *                    an operator accepted at the chain's resume can take one decided at a final
 *                    block back to `broadcast` (broadcaster/undone.ts: cancels only; its payment
 *                    found mined instead is followed as paid, `failed_request_paid`)
 */
import { type Hex, zeroAddress } from "viem";
import type { PoolClient } from "../foundation/db.js";
import { type FeeOnTransfer, feeOnTransferFromRow } from "./transferPosition.js";

export type TxOutcomeStatus =
  | "signing"
  | "broadcast"
  | "confirmed"
  | "finalized"
  | "receipt_unknown"
  | "needs_review"
  | "failed";

export type TxOutcome = {
  requestId: string;
  kind: string;
  refId: string;
  chainId: number;
  from: Hex;
  to: Hex;
  value: bigint;
  status: TxOutcomeStatus;
  nonce: bigint | null;
  /** The attempt that mined; before that, the latest one signed. */
  txHash: Hex | null;
  blockNumber: bigint | null;
  blockHash: Hex | null;
  /** Receipt status of the mined attempt (false: reverted; the fee is paid either way). */
  receiptSuccess: boolean | null;
  gasUsed: bigint | null;
  effectiveGasPrice: bigint | null;
  /** What the mined attempt cost the hot wallet, wei (chains/evm/feePaid.ts: gasUsed × effectiveGasPrice, plus on OP-stack chains the receipt's L1 data fee and the operator fee read from the chain). */
  fee: bigint | null;
  /** The value transfer's fact position: `tx` (native) or `transfer:<n>` (ERC-20), else null. */
  transferPosition: string | null;
  /** Block-wide log index of that ERC-20 Transfer log (null for native). */
  transferLogIndex: number | null;
  /**
   * A token that took a fee on the transfer (then `transferPosition` is null: no fact carries the
   * whole amount): the recipient's Transfer and the token's fee Transfers out of the wallet.
   * Absent or null: none.
   */
  feeOnTransfer?: FeeOnTransfer | null;
  /** Whether the mined attempt was the signer's cancel (0-value self-transfer) of this nonce. */
  cancelled: boolean;
  errorCode: string | null;
  errorMessage: string | null;
  /** Why a human is needed (needs_review). */
  reviewReason: string | null;
  /** When an operator failed it while its nonce was unused: its nonce is being cancelled. */
  cancelRequestedAt: Date | null;
  /**
   * Failed by an operator (`errorCode` OPERATOR_FAILED): who, as they named themselves (`--by`),
   * from the decision's audit row. Null otherwise (and for a row failed so without one).
   */
  failedBy?: string | null;
  /**
   * When a deep reorg an operator accepted took away the final block at which it had failed
   * (broadcaster/undone.ts): followed again since, whatever its status now. Absent or null: never.
   */
  failureUndoneAt?: Date | null;
  /**
   * When a deep reorg an operator accepted took away the final block in which it was confirmed and
   * finalized (broadcaster/undone.ts): followed again since (its stored bytes sent again), whatever
   * its status now. Absent or null: never.
   */
  finalUndoneAt?: Date | null;
  /** Times a mined attempt of this request left the canonical chain. */
  reorgs: number;
  /** When `status` (as defined here) last changed. */
  changedAt: Date;
  finalizedAt: Date | null;
};

/** A mined payment's value transfer as its caller books it (paidTransfer). */
export type PaidTransfer = {
  txHash: Hex;
  /** The fact of the whole amount (`tx` for native, else the signer's `transfer:<n>`), or null… */
  position: string | null;
  /** …when a token took a fee on the transfer: the recipient's Transfer and the fee Transfers. */
  charged: FeeOnTransfer | null;
  /** The sum of those fees (0 without them). */
  tokenFees: bigint;
};

/**
 * What a mined payment of `amount` of `asset` moved, for booking its post (a withdrawal's, a cold
 * move's): the fact carrying the whole amount, or the parts of a token that took a fee on it (each
 * booked against its own fact). Null while it cannot be booked yet: no transaction, neither a
 * position nor the parts (a signer that has not read them yet), or fees as large as the amount.
 */
export function paidTransfer(
  o: Pick<TxOutcome, "txHash" | "transferPosition" | "feeOnTransfer">,
  payment: { asset: string; amount: bigint },
): PaidTransfer | null {
  const position = o.transferPosition ?? (payment.asset === zeroAddress ? "tx" : null);
  const charged = position === null ? (o.feeOnTransfer ?? null) : null;
  const tokenFees = charged?.fees.reduce((sum, f) => sum + f.amount, 0n) ?? 0n;
  if (!o.txHash || (!position && !charged) || tokenFees >= payment.amount) return null;
  return { txHash: o.txHash, position, charged, tokenFees };
}

export type GetTxOutcomesParameters =
  | { requestIds: readonly string[]; since?: undefined }
  | {
      /**
       * Outcomes that changed at or after this time, oldest change first. Changes commit a moment
       * after their timestamp: poll with an overlap (e.g. since = last seen changedAt − 5 s) and
       * dedupe on (requestId, status, changedAt).
       */
      since: Date;
      requestIds?: undefined;
      /** Only requests of this kind (`withdrawal`, `sweep`, …). */
      kind?: string;
      limit?: number;
    }
  | {
      /**
       * Every request whose failure at a final block a deep reorg undid (`failureUndoneAt`), of
       * this kind: a handful (partial index tx_requests_failure_undone), for a caller's full
       * scan to find what it released on that failure.
       */
      failureUndone: true;
      kind: string;
      requestIds?: undefined;
      since?: undefined;
    }
  | {
      /**
       * Every request finalized in a block a deep reorg undid (`finalUndoneAt`), of this kind: a
       * handful (partial index tx_requests_final_undone), for a caller's full scan to find what
       * it booked final on that block.
       */
      finalUndone: true;
      kind: string;
      requestIds?: undefined;
      since?: undefined;
    };

export type GetTxOutcomesReturnType = TxOutcome[];

/** The internal request status as callers see it (SQL function from signer/migrations/0101). */
export const OUTCOME_STATUS_SQL = "custody.tx_outcome_status(r.status, r.finalized_at)";

/**
 * The operator of an OPERATOR_FAILED request: the decision that failed it at once (to `failed`),
 * else the first that failed it by cancel (whose reason the request keeps, operator.ts).
 */
const FAILED_BY_SQL = `CASE WHEN r.error_code = 'OPERATOR_FAILED' THEN
  (SELECT substr(e.actor, length('operator:') + 1) FROM custody.tx_request_events e
    WHERE e.request_id = r.id AND e.event = 'operator_failed' AND e.actor LIKE 'operator:%'
    ORDER BY e.to_status = 'failed' DESC, e.id LIMIT 1) END`;

// value, gas_used, effective_gas_price and fee are NUMERIC(78,0): bigints from the connection.
// nonce and block_number are int8, which pg gives as text (said here with ::text).
const COLUMNS = `r.id, r.kind, r.ref_id, r.chain_id, r.from_address, r.to_address, r.value,
  ${OUTCOME_STATUS_SQL} AS outcome, r.nonce::text, r.tx_hash, r.block_number::text, r.block_hash,
  r.receipt_success, r.gas_used, r.effective_gas_price, r.fee,
  r.transfer_position, r.transfer_log_index, r.fee_on_transfer, r.error_code, r.error_message, r.review_reason,
  r.reorg_count, r.outcome_changed_at, r.finalized_at, r.cancel_requested_at, r.failure_undone_at,
  r.final_undone_at,
  EXISTS (SELECT 1 FROM custody.tx_attempts a
           WHERE a.request_id = r.id AND a.purpose = 'cancel' AND a.status = 'mined') AS cancelled,
  ${FAILED_BY_SQL} AS failed_by`;

type OutcomeRow = {
  id: string;
  kind: string;
  ref_id: string;
  /** int8: text from pg. */
  chain_id: string;
  from_address: Hex;
  to_address: Hex;
  value: bigint;
  outcome: TxOutcomeStatus;
  nonce: string | null;
  tx_hash: Hex | null;
  block_number: string | null;
  block_hash: Hex | null;
  receipt_success: boolean | null;
  gas_used: bigint | null;
  effective_gas_price: bigint | null;
  fee: bigint | null;
  transfer_position: string | null;
  transfer_log_index: number | null;
  fee_on_transfer: Parameters<typeof feeOnTransferFromRow>[0];
  error_code: string | null;
  error_message: string | null;
  review_reason: string | null;
  reorg_count: number;
  outcome_changed_at: Date;
  finalized_at: Date | null;
  cancel_requested_at: Date | null;
  failure_undone_at: Date | null;
  final_undone_at: Date | null;
  cancelled: boolean;
  failed_by: string | null;
};

/** An int8 column as a bigint (int8, unlike NUMERIC, arrives as text). */
const int8 = (v: string | null): bigint | null => (v === null ? null : BigInt(v));

function fromRow(r: OutcomeRow): TxOutcome {
  return {
    requestId: r.id,
    kind: r.kind,
    refId: r.ref_id,
    chainId: Number(r.chain_id),
    from: r.from_address,
    to: r.to_address,
    value: r.value,
    status: r.outcome,
    nonce: int8(r.nonce),
    txHash: r.tx_hash,
    blockNumber: int8(r.block_number),
    blockHash: r.block_hash,
    receiptSuccess: r.receipt_success,
    gasUsed: r.gas_used,
    effectiveGasPrice: r.effective_gas_price,
    fee: r.fee,
    transferPosition: r.transfer_position,
    transferLogIndex: r.transfer_log_index,
    feeOnTransfer: feeOnTransferFromRow(r.fee_on_transfer),
    cancelled: r.cancelled,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    reviewReason: r.review_reason,
    cancelRequestedAt: r.cancel_requested_at,
    failedBy: r.failed_by,
    failureUndoneAt: r.failure_undone_at,
    finalUndoneAt: r.final_undone_at,
    reorgs: r.reorg_count,
    changedAt: r.outcome_changed_at,
    finalizedAt: r.finalized_at,
  };
}

// The rule lives in the ledger, below the signer, so that attestation applies it too.
export { failureIsEvidenced } from "../ledger/index.js";

/**
 * Outcomes of requests by id (unknown ids are left out), or of every request whose outcome
 * changed since a time. Reads only: safe on any pool or inside the caller's transaction.
 */
export async function getTxOutcomes(
  client: Pick<PoolClient, "query">,
  params: GetTxOutcomesParameters,
): Promise<GetTxOutcomesReturnType> {
  if (params.requestIds !== undefined) {
    if (params.requestIds.length === 0) return [];
    const { rows } = await client.query<OutcomeRow>(
      `SELECT ${COLUMNS} FROM custody.tx_requests r WHERE r.id = ANY($1::text[]) ORDER BY r.id`,
      [params.requestIds],
    );
    return rows.map(fromRow);
  }
  if ("failureUndone" in params) {
    const { rows } = await client.query<OutcomeRow>(
      `SELECT ${COLUMNS} FROM custody.tx_requests r
        WHERE r.failure_undone_at IS NOT NULL AND r.kind = $1 ORDER BY r.id`,
      [params.kind],
    );
    return rows.map(fromRow);
  }
  if ("finalUndone" in params) {
    const { rows } = await client.query<OutcomeRow>(
      `SELECT ${COLUMNS} FROM custody.tx_requests r
        WHERE r.final_undone_at IS NOT NULL AND r.kind = $1 ORDER BY r.id`,
      [params.kind],
    );
    return rows.map(fromRow);
  }
  const { rows } = await client.query<OutcomeRow>(
    `SELECT ${COLUMNS} FROM custody.tx_requests r
      WHERE r.outcome_changed_at >= $1 AND ($2::text IS NULL OR r.kind = $2)
      ORDER BY r.outcome_changed_at, r.id LIMIT $3`,
    [params.since, params.kind ?? null, params.limit ?? 1000],
  );
  return rows.map(fromRow);
}
