/**
 * Chain facts (`chain.transfers`) and posted ledger entries (`ledger.transfers`) as a
 * reconciliation run reads them: one column list, row type and mapper each, for the incremental
 * load and the full run's stream alike.
 */
import type { TransferKind } from "../types.js";
import type { ChainFact, FactKind, FactStatus, LedgerEntry } from "./types.js";

export type FactRow = {
  id: string;
  block_number: string;
  tx_hash: string;
  position: string;
  kind: FactKind;
  asset: string;
  from_address: string;
  to_address: string;
  amount: string;
  status: FactStatus;
};

export const FACT_COLUMNS =
  "id, block_number, tx_hash, position, kind, asset, from_address, to_address, amount, status";

export function toFact(chainId: number, r: FactRow): ChainFact {
  return {
    id: Number(r.id),
    blockNumber: Number(r.block_number),
    txHash: r.tx_hash,
    position: r.position,
    kind: r.kind,
    assetId: `${chainId}:${r.asset}`,
    from: r.from_address,
    to: r.to_address,
    amount: BigInt(r.amount),
    status: r.status,
  };
}

export type EntryRow = {
  seq: string;
  id: string;
  kind: TransferKind;
  asset_id: string;
  debit: string;
  credit: string;
  amount: string;
  tx_hash: string | null;
  position: string | null;
  reverses_id: string | null;
};

// A post carries the hold's accounts; its chain reference is its own or, failing that, the hold's.
export const ENTRY_SELECT = `
  SELECT t.seq, t.id, t.kind, t.asset_id, da.name AS debit, ca.name AS credit,
         t.posted_delta AS amount,
         COALESCE(t.tx_hash, p.tx_hash) AS tx_hash, COALESCE(t.position, p.position) AS position,
         t.reverses_id
  FROM ledger.transfers t
  JOIN ledger.assets s ON s.id = t.asset_id
  JOIN ledger.accounts da ON da.id = t.debit_account_id
  JOIN ledger.accounts ca ON ca.id = t.credit_account_id
  LEFT JOIN ledger.transfers p ON p.id = t.pending_id`;

export function toEntry(r: EntryRow): LedgerEntry {
  return {
    seq: Number(r.seq),
    id: r.id,
    kind: r.kind,
    assetId: r.asset_id,
    debit: r.debit,
    credit: r.credit,
    amount: BigInt(r.amount),
    txHash: r.tx_hash,
    position: r.position,
    reversesId: r.reverses_id,
  };
}
