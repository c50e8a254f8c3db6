/**
 * A `ledger.transfers` row as the ledger's queries read it, and its mapper. The amounts are
 * NUMERIC and arrive as bigints (foundation/db.ts' PG_TYPES); seq and the account ids are int8,
 * which pg gives as strings, so they are read as text and converted here.
 */
import type { ChainRef, Transfer, TransferKind, TransferType } from "./types.js";

export const TRANSFER_SELECT = `SELECT seq::text, id::text, asset_id, debit_account_id::text, credit_account_id::text,
  amount, type, pending_id::text, posted_delta, pending_delta, kind, chain_id::text, tx_hash,
  position, reverses_id::text, timeout_at, memo, created_at FROM ledger.transfers`;

export type TransferRecordRow = {
  seq: string;
  id: string;
  asset_id: string;
  debit_account_id: string;
  credit_account_id: string;
  amount: bigint;
  type: TransferType;
  pending_id: string | null;
  posted_delta: bigint;
  pending_delta: bigint;
  kind: TransferKind;
  chain_id: string | null;
  tx_hash: string | null;
  position: string | null;
  reverses_id: string | null;
  timeout_at: Date | null;
  memo: string | null;
  created_at: Date;
};

/** The chain reference of a transfer row: all three columns, or none. */
export function chainRefOf(r: {
  chain_id: string | null;
  tx_hash: string | null;
  position: string | null;
}): ChainRef | null {
  return r.chain_id !== null && r.tx_hash !== null && r.position !== null
    ? { chainId: Number(r.chain_id), txHash: r.tx_hash, position: r.position }
    : null;
}

export function toTransfer(r: TransferRecordRow): Transfer {
  return {
    seq: BigInt(r.seq),
    id: r.id,
    assetId: r.asset_id,
    debitAccountId: BigInt(r.debit_account_id),
    creditAccountId: BigInt(r.credit_account_id),
    amount: r.amount,
    type: r.type,
    pendingId: r.pending_id,
    postedDelta: r.posted_delta,
    pendingDelta: r.pending_delta,
    kind: r.kind,
    chainRef: chainRefOf(r),
    reversesId: r.reverses_id,
    timeoutAt: r.timeout_at,
    memo: r.memo,
    createdAt: r.created_at,
  };
}
