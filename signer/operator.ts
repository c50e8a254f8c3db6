/**
 * Operator decisions on transaction requests the signer will not decide alone (DESIGN: "only an
 * operator fails it"). Each is one guarded UPDATE (it changes nothing if the broadcaster moved the
 * request meanwhile) plus an audit row in custody.tx_request_events with who and why, in one
 * transaction, and rings the outcome doorbell through outcome_seq.
 *
 * - fail: a `receipt_unknown` or `needs_review` request is failed (OPERATOR_FAILED). Before
 *   failing, the chain is asked what used the request's nonce (nonceEvidence.ts, read from blocks,
 *   not receipts, one node's answer): refused when it was one of the request's own transactions
 *   (its receipt is only withheld: failing would release the hold of money that left) or another
 *   transaction in a block not final yet (not at or below the indexer's published finalized
 *   block, shown by that same node), and when the nodes cannot tell. Used by another transaction in a final
 *   block (or never signed): `failed` now, and the caller may release its hold. Unused at the
 *   head: one of its signed sends may still be in some node's pool, so failing is a cancel. The
 *   request goes back to `broadcast` (cancel_requested_at, migration 0107; `signed` if no node ever
 *   took it, so a halted chain holds its cancel: BACK_TO_BROADCASTER), its sends are never
 *   sent again, the broadcaster places cancels on the nonce, and it fails at a cancel's final
 *   block; the caller keeps its hold until then. If one of its sends mines instead, the chain
 *   decides (it is followed to confirmed, with an alert). The evidence is kept in the audit row.
 *   A `failed` request whose failure rests on no evidence (failureIsEvidenced: no final block, no
 *   operator; a signer bug, its caller keeps its hold) is decided the same way, after the same
 *   chain check: its own cancel (placed while it sat `failed`: nonces.ts) using the nonce at a
 *   final block is evidence too, as nothing was paid. A `failed` request with evidence is refused.
 * - retry: a `needs_review` request whose cancel was unsendable (CANCEL_UNSENDABLE) goes back to
 *   `broadcast` (or `signed`, as a fail does), with a fresh budget of cancel attempts (after
 *   fixing the cause: funds, gas, node).
 *   Any other review reason is refused: a nonce used at a final block by nothing we have a
 *   receipt for (NONCE_CONSUMED_NO_KNOWN_ATTEMPT) cannot be mined by a resend (the request came
 *   straight back to needs_review, alerting again), and the signer keeps searching for its receipt
 *   from needs_review and frees it itself if the nonce is ever unused again.
 * - fill a nonce: a nonce below the wallet's next that nothing of ours holds and no node has used
 *   (the key used outside custody and that transaction dropped: `nonce_gap`) holds every later
 *   withdrawal of the wallet for ever. An operator fills it with a 0-value transfer to the wallet
 *   itself, as a cancel is built (broadcaster/cancel.ts): a request of kind `nonce_fill` is stored
 *   `pending` with that nonce, audited, and the broadcaster signs it at that nonce (fills.ts);
 *   from then on it is followed like any request (bumped, confirmed, finalized). Refused on a
 *   halted chain, for a nonce a request or stored deploy of ours holds (only its own bytes may use
 *   it), at or above the wallet's next nonce (nothing waits behind it), and unless every
 *   configured node answers from the best head that the nonce is unused, mined or pending.
 */
import { randomUUID } from "node:crypto";
import type { Hex } from "viem";
import type { Pool, PoolClient } from "../foundation/db.js";
import { withTransaction } from "../foundation/db.js";
import { openHalt, readFinalized, readHalts } from "../indexers/index.js";
import { failureIsEvidenced } from "../ledger/index.js";
import { BACK_TO_BROADCASTER } from "./broadcaster/attempts.js";
import { deployNextNonce } from "./broadcaster/gaps.js";
import {
  ChainHaltedFillError,
  InvalidTxRequestError,
  NonceHeldError,
  NonceNotAGapError,
  OperatorDecisionIncompleteError,
  TxRequestMinedOnChainError,
  TxRequestNonceNotFinalError,
  TxRequestNotFoundError,
  TxRequestNotRetryableError,
  TxRequestNotReviewableError,
} from "./errors.js";
import type { NonceEvidence, NonceEvidenceReader, NonceUnusedReader } from "./nonceEvidence.js";
import { storedNextNonce, TX_REQUESTS_CHANNEL } from "./requests.js";

export type OperatorDecision = { requestId: string; by: string; reason: string };

/** What a decision did: the request's status before and after; `cancelling` for a fail by cancel. */
export type OperatorDecisionResult = { from: string; to: string; cancelling: boolean };

const FAILABLE = ["receipt_unknown", "needs_review"] as const;
/** What failTxRequestByOperator decides, `failed` only without evidence (checked under the lock). */
const FAILABLE_OR_UNEVIDENCED = [...FAILABLE, "failed"];
/** Where a request an operator failed by cancel is until the chain decides. */
const CANCELLING = ["signed", "broadcast", "mined"];

/** The change a decision makes once the row is locked (and, for a fail, the chain was read). */
type Change = {
  /** An UPDATE of the request without its WHERE ($1 id, $2 allowed statuses, then `params`). */
  update: string;
  params?: unknown[];
  /** Kept in the audit row with the review reason. */
  details?: Record<string, unknown>;
  cancelling?: boolean;
};

async function decide(
  client: PoolClient,
  d: OperatorDecision,
  allowed: readonly string[],
  event: string,
  change: (row: RequestRow) => Promise<Change>,
  /** A repeat of a decision already made (after a crash): its result, nothing changed. */
  repeat?: (row: RequestRow) => OperatorDecisionResult | undefined,
): Promise<OperatorDecisionResult> {
  if (!d.by.trim()) throw new OperatorDecisionIncompleteError("by");
  if (!d.reason.trim()) throw new OperatorDecisionIncompleteError("reason");
  const { rows } = await client.query<RequestRow>(
    `SELECT status, review_reason, chain_id::text, from_address, nonce::text,
            cancel_requested_at IS NOT NULL AS cancel_requested, finalized_at, error_code
       FROM custody.tx_requests WHERE id = $1 FOR UPDATE`,
    [d.requestId],
  );
  const row = rows[0];
  if (!row) throw new TxRequestNotFoundError(d.requestId);
  const repeated = repeat?.(row);
  if (repeated) return repeated;
  if (!allowed.includes(row.status))
    throw new TxRequestNotReviewableError(d.requestId, row.status, allowed);
  // Under the row lock: the broadcaster cannot move the request while the chain is read.
  const c = await change(row);
  const upd = await client.query(
    `${c.update} WHERE id = $1 AND status = ANY($2::text[]) RETURNING status`,
    [d.requestId, allowed, ...(c.params ?? [])],
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
      JSON.stringify({ review_reason: row.review_reason, ...c.details }),
    ],
  );
  return { from: row.status, to, cancelling: c.cancelling ?? false };
}

type RequestRow = {
  status: string;
  review_reason: string | null;
  chain_id: string;
  from_address: Hex;
  nonce: string | null;
  cancel_requested: boolean;
  finalized_at: Date | null;
  error_code: string | null;
};

/**
 * What the chain shows for the request's nonce, as the audit row keeps it (`used: false`: no
 * transaction used it at the head), or the refusal: one of the request's own transactions used
 * it, or another one did in a block not final yet.
 */
async function chainCheck(
  client: PoolClient,
  requestId: string,
  row: RequestRow,
  readEvidence: NonceEvidenceReader,
): Promise<Record<string, unknown> & { used?: boolean }> {
  if (row.nonce === null) return { chain_check: "no nonce: never signed" };
  const nonce = BigInt(row.nonce);
  const chainId = Number(row.chain_id);
  const evidence: NonceEvidence = await readEvidence({
    chainId,
    from: row.from_address,
    nonce,
    // Final means at or below our chain's final block, as the indexer published it.
    final: await readFinalized(client, chainId),
  });
  if (evidence.kind === "unused")
    return {
      used: false,
      chain_check: {
        nonce: nonce.toString(),
        used: false,
        head: evidence.head.toString(),
        mined_count: evidence.latestCount.toString(),
      },
    };
  // Any transaction we signed (hashes are stored lowercase), not only this request's, except the
  // request's own cancel: it paid nothing, and at a final block it is the failure's evidence.
  const { rows: own } = await client.query<{ request_id: string; purpose: string }>(
    "SELECT request_id, purpose FROM custody.tx_attempts WHERE tx_hash = $1",
    [evidence.txHash],
  );
  const ownCancel =
    own.length > 0 && own.every((a) => a.request_id === requestId && a.purpose === "cancel");
  if (own.length > 0 && !ownCancel)
    throw new TxRequestMinedOnChainError(requestId, evidence.txHash, evidence.blockNumber);
  if (!evidence.final)
    throw new TxRequestNonceNotFinalError(requestId, evidence.txHash, evidence.blockNumber);
  return {
    chain_check: {
      nonce: nonce.toString(),
      used: true,
      used_by: evidence.txHash,
      ...(ownCancel ? { used_by_own_cancel: true } : {}),
      block_number: evidence.blockNumber.toString(),
      block_hash: evidence.blockHash,
    },
  };
}

// The nonce is spent (by another transaction in a final block) or was never taken: failed now.
const FAIL_NOW = `UPDATE custody.tx_requests
    SET status = 'failed', error_code = 'OPERATOR_FAILED', error_message = left($3, 500),
        outcome_seq = outcome_seq + 1, updated_at = now()`;

// The nonce is unused: one of the request's sends may still mine. Back to the broadcaster
// (BACK_TO_BROADCASTER), stamped; the broadcaster cancels the nonce and the tracker fails the
// request at the cancel's final block. A second decision (after the request went through
// receipt_unknown again) keeps the first's.
const FAIL_BY_CANCEL = `UPDATE custody.tx_requests
    SET status = ${BACK_TO_BROADCASTER}, review_reason = NULL,
        cancel_requested_at = COALESCE(cancel_requested_at, now()),
        cancel_reason = COALESCE(cancel_reason, left($3, 500)),
        outcome_seq = outcome_seq + 1, updated_at = now()`;

// A `failed` row going back to `broadcast` keeps neither the signer's error nor an inclusion it
// recorded (its nonce is unused: that block left the chain; counted as the tracker counts a reorg).
const FAILED_BY_CANCEL = `${FAIL_BY_CANCEL},
        error_code = NULL, error_message = NULL, block_number = NULL, block_hash = NULL,
        receipt_success = NULL, gas_used = NULL, effective_gas_price = NULL, fee = NULL,
        transfer_position = NULL, transfer_log_index = NULL, fee_on_transfer = NULL,
        transfer_moved_nothing = false, reorg_count = reorg_count + (block_number IS NOT NULL)::int`;

/**
 * Fail a `receipt_unknown` / `needs_review` request, or a `failed` one without evidence
 * (failureIsEvidenced), audited, once the chain shows that none of its own payments used its
 * nonce (see the header). When nothing used the nonce, the failure
 * is a cancel: `{ to: "broadcast", cancelling: true }`, and the request fails at the cancel's
 * final block. Repeating it on a request already cancelling answers the same and changes nothing.
 */
export async function failTxRequestByOperator(
  pool: Pool,
  d: OperatorDecision,
  readEvidence: NonceEvidenceReader,
): Promise<OperatorDecisionResult> {
  return withTransaction(pool, (client) => failTxRequestByOperatorIn(client, d, readEvidence));
}

/**
 * failTxRequestByOperator in the caller's open transaction, committed (or rolled back) with the
 * caller's own change: a withdrawal's fail decides under the withdrawal's row lock on the one
 * connection it holds (api/withdrawals/operatorFail.ts). Waiting for a second connection of the
 * pool there would deadlock a pool whose connections all wait so, one per operator failing.
 */
export async function failTxRequestByOperatorIn(
  client: PoolClient,
  d: OperatorDecision,
  readEvidence: NonceEvidenceReader,
): Promise<OperatorDecisionResult> {
  return decide(
    client,
    d,
    FAILABLE_OR_UNEVIDENCED,
    "operator_failed",
    async (row) => {
      const failed = row.status === "failed";
      if (
        failed &&
        failureIsEvidenced({
          nonce: row.nonce === null ? null : BigInt(row.nonce),
          finalizedAt: row.finalized_at,
          errorCode: row.error_code,
        })
      )
        // Status `failed` in meta: withdrawals fail (api/withdrawals/operatorFail.ts) reads it as
        // decided already.
        throw new TxRequestNotReviewableError(d.requestId, row.status, [
          ...FAILABLE,
          "failed without evidence",
        ]);
      const { used, ...checked } = await chainCheck(client, d.requestId, row, readEvidence);
      // What the signer had said, kept in the audit row the operator's failure replaces it with.
      const details = failed ? { ...checked, signer_error_code: row.error_code } : checked;
      if (used !== false) return { update: FAIL_NOW, params: [d.reason], details };
      // Its stored sends are never sent again (resync, stall and bump send only live attempts);
      // a live cancel (a second decision) stays live.
      await client.query(
        `UPDATE custody.tx_attempts SET status = 'replaced'
            WHERE request_id = $1 AND purpose = 'send' AND status IN ('signed', 'broadcast')`,
        [d.requestId],
      );
      return {
        update: failed ? FAILED_BY_CANCEL : FAIL_BY_CANCEL,
        params: [d.reason],
        details: { ...details, cancelling: true },
        cancelling: true,
      };
    },
    // Still cancelling (its cancel may be mined, not final yet): a repeat.
    (row) =>
      row.cancel_requested && CANCELLING.includes(row.status)
        ? { from: row.status, to: row.status, cancelling: true }
        : undefined,
  );
}

/** The review reasons a resend can fix: the cause (funds, gas, a node) was outside the chain. */
const RETRYABLE_REVIEWS: ReadonlySet<string> = new Set(["CANCEL_UNSENDABLE"]);

/**
 * Send a `needs_review` request whose cancel was unsendable back to the broadcaster
 * (BACK_TO_BROADCASTER: `broadcast`, or `signed` if no node ever took it) with a fresh
 * cancel budget (audited); refused for any other review reason (see the header).
 */
export async function retryTxRequestByOperator(
  pool: Pool,
  d: OperatorDecision,
): Promise<OperatorDecisionResult> {
  return withTransaction(pool, (client) =>
    decide(client, d, ["needs_review"], "operator_retry", async (row) => {
      if (row.review_reason === null || !RETRYABLE_REVIEWS.has(row.review_reason))
        throw new TxRequestNotRetryableError(d.requestId, row.review_reason);
      return {
        update: `UPDATE custody.tx_requests
            SET status = ${BACK_TO_BROADCASTER}, review_reason = NULL,
                outcome_seq = outcome_seq + 1, updated_at = now()`,
      };
    }),
  );
}

/** What both listings show of a request: which it is, the wallet and nonce it holds, its status. */
export type TxRequestItem = {
  requestId: string;
  kind: string;
  refId: string;
  chainId: number;
  from: string;
  nonce: bigint | null;
  status: string;
};

export type ReviewItem = TxRequestItem & {
  reviewReason: string | null;
  since: Date;
};

/**
 * A request a halted chain holds: its status is `pending` (unsigned, no nonce) or `signed` (no node
 * has taken any attempt of it).
 */
export type HeldItem = TxRequestItem & {
  requestedAt: Date;
  haltedSince: Date;
};

type TxRequestItemRow = {
  id: string;
  kind: string;
  ref_id: string;
  chain_id: string;
  from_address: string;
  nonce: string | null;
  status: string;
};

/** The columns both listings select (`nonce::text`), as a TxRequestItem. */
function txRequestItem(r: TxRequestItemRow): TxRequestItem {
  return {
    requestId: r.id,
    kind: r.kind,
    refId: r.ref_id,
    chainId: Number(r.chain_id),
    from: r.from_address,
    nonce: r.nonce === null ? null : BigInt(r.nonce), // int8 text, not NUMERIC
    status: r.status,
  };
}

/**
 * Requests a halted chain holds (broadcaster/halt.ts): `pending` or `signed` on a chain with an
 * open halt. No decision is owed on them: they go out by themselves after the resume.
 */
export async function listHeldTxRequests(pool: Pool): Promise<HeldItem[]> {
  const halts = await readHalts(pool);
  if (halts.length === 0) return [];
  const since = new Map(halts.map((h) => [h.chainId, h.haltedAt]));
  const { rows } = await pool.query(
    `SELECT id, kind, ref_id, chain_id, from_address, nonce::text, status, created_at
       FROM custody.tx_requests WHERE chain_id = ANY($1::bigint[]) AND status IN ('pending', 'signed')
      ORDER BY chain_id, from_address, nonce NULLS LAST, created_at`,
    [[...since.keys()]],
  );
  return rows.map((r) => ({
    ...txRequestItem(r),
    requestedAt: r.created_at,
    haltedSince: since.get(Number(r.chain_id))!,
  }));
}

/** Requests waiting for a human or for data: `receipt_unknown` and `needs_review`. */
export async function listTxRequestsForReview(pool: Pool): Promise<ReviewItem[]> {
  const { rows } = await pool.query(
    `SELECT id, kind, ref_id, chain_id, from_address, nonce::text, status, review_reason, outcome_changed_at
       FROM custody.tx_requests WHERE status IN ('receipt_unknown', 'needs_review')
      ORDER BY outcome_changed_at`,
  );
  return rows.map((r) => ({
    ...txRequestItem(r),
    reviewReason: r.review_reason,
    since: r.outcome_changed_at,
  }));
}

/** The request kind of an operator's nonce fill (a 0-value transfer of the wallet to itself). */
export const NONCE_FILL_KIND = "nonce_fill";

export type NonceFill = {
  chainId: number;
  /** The hot wallet. */
  from: string;
  nonce: bigint;
  by: string;
  reason: string;
};

/** The fill's request (`repeated`: a live fill of that nonce was there already, nothing changed). */
export type NonceFillResult = { requestId: string; nonce: bigint; repeated: boolean };

/**
 * Fill a nonce of a hot wallet that nothing holds (see the header), audited: a `nonce_fill`
 * request at that nonce, which the broadcaster signs and follows. Refused (nothing changed) on a
 * halted chain, for a nonce a request or stored deploy of ours holds, for one at or above the
 * wallet's next nonce, and unless every configured node shows it unused at the best head
 * (`checkUnused`). A repeat while the first fill is live answers its request.
 */
export async function fillNonceByOperator(
  pool: Pool,
  f: NonceFill,
  checkUnused: NonceUnusedReader,
): Promise<NonceFillResult> {
  if (!f.by.trim()) throw new OperatorDecisionIncompleteError("by");
  if (!f.reason.trim()) throw new OperatorDecisionIncompleteError("reason");
  if (!/^0x[0-9a-fA-F]{40}$/.test(f.from))
    throw new InvalidTxRequestError("from", "must be a 0x-prefixed 20-byte hex address");
  if (f.nonce < 0n) throw new InvalidTxRequestError("nonce", "must be a non-negative integer");
  const from = f.from.toLowerCase() as Hex;
  return withTransaction(pool, async (client) => {
    // One fill decision per wallet at a time; a request taking the nonce meanwhile is refused by
    // the unique (chain, wallet, nonce) index.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
      `nonce_fill:${f.chainId}:${from}`,
    ]);
    const halt = await openHalt(client, f.chainId);
    if (halt) throw new ChainHaltedFillError(f.chainId, halt);
    const { rows: held } = await client.query<{ id: string; kind: string; status: string }>(
      `SELECT id, kind, status FROM custody.tx_requests
        WHERE chain_id = $1 AND from_address = $2 AND nonce = $3`,
      [f.chainId, from, f.nonce.toString()],
    );
    const request = held[0];
    if (request?.kind === NONCE_FILL_KIND && request.status !== "failed")
      return { requestId: request.id, nonce: f.nonce, repeated: true };
    if (request)
      throw new NonceHeldError(f.chainId, from, f.nonce, {
        requestId: request.id,
        status: request.status,
      });
    const { rows: deploys } = await client.query<{ name: string; status: string }>(
      `SELECT name, status FROM custody.hot_wallet_deploys
        WHERE chain_id = $1 AND from_address = $2 AND nonce = $3`,
      [f.chainId, from, f.nonce.toString()],
    );
    if (deploys[0])
      throw new NonceHeldError(f.chainId, from, f.nonce, {
        deploy: deploys[0].name,
        status: deploys[0].status,
      });
    // As the broadcaster's resync counts it (bigints: no Math.max).
    let next = await storedNextNonce(client, f.chainId, from);
    const deployed = await deployNextNonce(client, f.chainId, from);
    if (deployed > next) next = deployed;
    if (f.nonce >= next) throw new NonceNotAGapError(f.chainId, from, f.nonce, next);
    const nodes = await checkUnused({ chainId: f.chainId, from, nonce: f.nonce });
    const requestId = `${NONCE_FILL_KIND}:${f.chainId}:${from}:${f.nonce}:${randomUUID()}`;
    await client.query(
      `INSERT INTO custody.tx_requests (id, chain_id, from_address, to_address, value, data, kind, ref_id, nonce)
       VALUES ($1, $2, $3, $3, 0, '0x', $4, $5, $6)`,
      [
        requestId,
        f.chainId,
        from,
        NONCE_FILL_KIND,
        `${f.chainId}:${from}:${f.nonce}`,
        f.nonce.toString(),
      ],
    );
    await client.query(
      `INSERT INTO custody.tx_request_events (request_id, from_status, to_status, event, actor, reason, details)
       VALUES ($1, NULL, 'pending', 'operator_nonce_fill', $2, $3, $4)`,
      [
        requestId,
        `operator:${f.by.trim()}`,
        f.reason.trim(),
        JSON.stringify({
          nonce: f.nonce.toString(),
          next_nonce: next.toString(),
          chain_check: nodes.map((n) => ({
            endpoint: n.endpoint,
            head: n.head.toString(),
            mined_count: n.latestCount.toString(),
            pending_count: n.pendingCount.toString(),
          })),
        }),
      ],
    );
    await client.query("SELECT pg_notify($1, $2)", [TX_REQUESTS_CHANNEL, `${f.chainId}:${from}`]);
    return { requestId, nonce: f.nonce, repeated: false };
  });
}
