/**
 * Operator decisions on transaction requests the signer will not decide alone (DESIGN: "only an
 * operator fails it"). Each is one guarded UPDATE (it changes nothing if the broadcaster moved the
 * request meanwhile) plus an audit row in custody.tx_request_events with who and why, in one
 * transaction, and rings the outcome doorbell through outcome_seq.
 *
 * - fail: a `receipt_unknown` or `needs_review` request becomes `failed` (OPERATOR_FAILED). The
 *   caller (withdrawals) may then release its hold. If the nonce was never used on chain, the
 *   broadcaster cancels it so later nonces are not stuck. Before failing, the chain is asked what
 *   used the request's nonce (nonceEvidence.ts, read from blocks, not receipts): refused when it
 *   was one of the request's own transactions (its receipt is only withheld: failing would release
 *   the hold of money that left) or another transaction in a block not final yet, and when the
 *   nodes cannot tell. The evidence is kept in the audit row.
 * - retry: a `needs_review` request whose cancel was unsendable (CANCEL_UNSENDABLE) goes back to
 *   `broadcast`, with a fresh budget of cancel attempts (after fixing the cause: funds, gas, node).
 */
import type { Hex } from "viem";
import type { Pool, PoolClient } from "../foundation/db.js";
import { withTransaction } from "../foundation/db.js";
import {
  OperatorDecisionIncompleteError,
  TxRequestMinedOnChainError,
  TxRequestNonceNotFinalError,
  TxRequestNotFoundError,
  TxRequestNotReviewableError,
} from "./errors.js";
import type { NonceEvidence, NonceEvidenceReader } from "./nonceEvidence.js";

export type OperatorDecision = { requestId: string; by: string; reason: string };

const FAILABLE = ["receipt_unknown", "needs_review"] as const;

async function decide(
  client: PoolClient,
  d: OperatorDecision,
  allowed: readonly string[],
  update: string,
  event: string,
  params: unknown[] = [],
  check?: (row: RequestRow) => Promise<Record<string, unknown>>,
): Promise<{ from: string; to: string }> {
  if (!d.by.trim()) throw new OperatorDecisionIncompleteError("by");
  if (!d.reason.trim()) throw new OperatorDecisionIncompleteError("reason");
  const { rows } = await client.query<RequestRow>(
    `SELECT status, review_reason, chain_id::text, from_address, nonce::text
       FROM custody.tx_requests WHERE id = $1 FOR UPDATE`,
    [d.requestId],
  );
  const row = rows[0];
  if (!row) throw new TxRequestNotFoundError(d.requestId);
  if (!allowed.includes(row.status))
    throw new TxRequestNotReviewableError(d.requestId, row.status, allowed);
  // Under the row lock: the broadcaster cannot move the request while the chain is read.
  const evidence = check ? await check(row) : {};
  const upd = await client.query(
    `${update} WHERE id = $1 AND status = ANY($2::text[]) RETURNING status`,
    [d.requestId, allowed, ...params],
  );
  const to = upd.rows[0].status as string;
  await client.query(
    `INSERT INTO custody.tx_request_events (request_id, from_status, to_status, event, actor, reason, details)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      d.requestId,
      row.status,
      to,
      event,
      `operator:${d.by}`,
      d.reason,
      JSON.stringify({ review_reason: row.review_reason, ...evidence }),
    ],
  );
  return { from: row.status, to };
}

type RequestRow = {
  status: string;
  review_reason: string | null;
  chain_id: string;
  from_address: Hex;
  nonce: string | null;
};

/**
 * What the chain shows for the request's nonce, as the audit row keeps it, or the refusal: one of
 * the request's own transactions used it, or another one did in a block not final yet.
 */
async function chainCheck(
  client: PoolClient,
  requestId: string,
  row: RequestRow,
  readEvidence: NonceEvidenceReader,
): Promise<Record<string, unknown>> {
  if (row.nonce === null) return { chain_check: "no nonce: never signed" };
  const nonce = BigInt(row.nonce);
  const evidence: NonceEvidence = await readEvidence({
    chainId: Number(row.chain_id),
    from: row.from_address,
    nonce,
  });
  if (evidence.kind === "unused")
    return {
      chain_check: {
        nonce: nonce.toString(),
        used: false,
        head: evidence.head.toString(),
        mined_count: evidence.latestCount.toString(),
      },
    };
  // Any transaction we signed (hashes are stored lowercase), not only this request's.
  const { rows: own } = await client.query<{ request_id: string }>(
    "SELECT request_id FROM custody.tx_attempts WHERE tx_hash = $1",
    [evidence.txHash],
  );
  if (own.length > 0)
    throw new TxRequestMinedOnChainError(requestId, evidence.txHash, evidence.blockNumber);
  if (!evidence.final)
    throw new TxRequestNonceNotFinalError(requestId, evidence.txHash, evidence.blockNumber);
  return {
    chain_check: {
      nonce: nonce.toString(),
      used: true,
      used_by: evidence.txHash,
      block_number: evidence.blockNumber.toString(),
      block_hash: evidence.blockHash,
    },
  };
}

/**
 * Fail a `receipt_unknown` / `needs_review` request (audited), once the chain shows that none of
 * its own transactions used its nonce (see the header).
 */
export async function failTxRequestByOperator(
  pool: Pool,
  d: OperatorDecision,
  readEvidence: NonceEvidenceReader,
) {
  return withTransaction(pool, (client) =>
    decide(
      client,
      d,
      FAILABLE,
      `UPDATE custody.tx_requests
          SET status = 'failed', error_code = 'OPERATOR_FAILED', error_message = left($3, 500),
              outcome_seq = outcome_seq + 1, updated_at = now()`,
      "operator_failed",
      [d.reason],
      (row) => chainCheck(client, d.requestId, row, readEvidence),
    ),
  );
}

/** Send a `needs_review` request back to `broadcast` with a fresh cancel budget (audited). */
export async function retryTxRequestByOperator(pool: Pool, d: OperatorDecision) {
  return withTransaction(pool, (client) =>
    decide(
      client,
      d,
      ["needs_review"],
      `UPDATE custody.tx_requests
          SET status = 'broadcast', review_reason = NULL, outcome_seq = outcome_seq + 1,
              updated_at = now()`,
      "operator_retry",
    ),
  );
}

export type ReviewItem = {
  requestId: string;
  kind: string;
  refId: string;
  chainId: number;
  from: string;
  nonce: bigint | null;
  status: string;
  reviewReason: string | null;
  since: Date;
};

/** Requests waiting for a human or for data: `receipt_unknown` and `needs_review`. */
export async function listTxRequestsForReview(pool: Pool): Promise<ReviewItem[]> {
  const { rows } = await pool.query(
    `SELECT id, kind, ref_id, chain_id, from_address, nonce::text, status, review_reason, outcome_changed_at
       FROM custody.tx_requests WHERE status IN ('receipt_unknown', 'needs_review')
      ORDER BY outcome_changed_at`,
  );
  return rows.map((r) => ({
    requestId: r.id,
    kind: r.kind,
    refId: r.ref_id,
    chainId: Number(r.chain_id),
    from: r.from_address,
    nonce: r.nonce === null ? null : BigInt(r.nonce), // int8 text, not NUMERIC
    status: r.status,
    reviewReason: r.review_reason,
    since: r.outcome_changed_at,
  }));
}
