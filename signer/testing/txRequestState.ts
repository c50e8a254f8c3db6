/**
 * A state fixture for tests of what reads the signer's outcomes (the API's withdrawals, the
 * console): it sets a request row by UPDATE to a state the broadcaster's tracker would record
 * (status, tx hash, fee, block, finality, reorgs, review reason, nonce, error), e.g. puts it
 * into needs_review, with no signer running. Acceptable there because those tests are of the
 * reader: the API reads these columns only through `getTxOutcomes`, and the tracker's own way into
 * each state on anvil is tested in signer/ and ops/e2e. Not for tests of the signer itself.
 */
import type { Pool } from "../../foundation/db.js";
import { UNDO_FAILURE, UNDO_FINAL } from "../broadcaster/undone.js";

export type TxRequestState = {
  status: string;
  txHash?: string | null;
  fee?: bigint | null;
  /** Mined in this block (block hash = tx hash, receipt success); null: not mined. */
  block?: number | null;
  finalized?: boolean;
  reorgs?: number;
  reviewReason?: string;
  nonce?: number;
  errorCode?: string;
  errorMessage?: string;
};

/** Sets every column of `state` (absent ones to null / 0 / not final) on request `requestId`. */
export async function setTxRequestState(
  pool: Pool,
  requestId: string,
  state: TxRequestState,
): Promise<void> {
  const { rowCount } = await pool.query(
    `UPDATE custody.tx_requests
        SET status = $2, tx_hash = $3, fee = $4, block_number = $5,
            block_hash = CASE WHEN $5::bigint IS NULL THEN NULL ELSE $3 END,
            transfer_position = CASE WHEN $5::bigint IS NULL THEN NULL ELSE 'tx' END,
            receipt_success = CASE WHEN $5::bigint IS NULL THEN NULL ELSE true END,
            finalized_at = CASE WHEN $6 THEN now() END, reorg_count = $7, review_reason = $8,
            nonce = $9, error_code = $10, error_message = $11, updated_at = now()
      WHERE id = $1`,
    [
      requestId,
      state.status,
      state.txHash ?? null,
      state.fee?.toString() ?? null,
      state.block ?? null,
      state.finalized ?? false,
      state.reorgs ?? 0,
      state.reviewReason ?? null,
      state.nonce ?? null,
      state.errorCode ?? null,
      state.errorMessage ?? null,
    ],
  );
  if (rowCount !== 1) throw new Error(`setTxRequestState: no request ${requestId}`);
}

/**
 * Moves a `failed` request as signer/broadcaster/undone.ts moves it when an accepted deep reorg
 * took the final block it failed at: back to `broadcast`, followed again (`failure_undone_at`).
 */
export async function setTxRequestFailureUndone(pool: Pool, requestId: string): Promise<void> {
  const { rowCount } = await pool.query(`${UNDO_FAILURE} WHERE id = $1 AND status = 'failed'`, [
    requestId,
  ]);
  if (rowCount !== 1) throw new Error(`setTxRequestFailureUndone: no failed request ${requestId}`);
}

/**
 * Moves a finalized request as signer/broadcaster/undone.ts moves it when an accepted deep reorg
 * took the final block it was confirmed in: back to `broadcast`, followed again (`final_undone_at`).
 */
export async function setTxRequestFinalUndone(pool: Pool, requestId: string): Promise<void> {
  const { rowCount } = await pool.query(
    `${UNDO_FINAL} WHERE id = $1 AND status = 'confirmed' AND finalized_at IS NOT NULL`,
    [requestId],
  );
  if (rowCount !== 1) throw new Error(`setTxRequestFinalUndone: no finalized request ${requestId}`);
}
