/**
 * Chain facts (`chain.facts`) and posted ledger entries (`ledger.posted_entries`) as a
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
  amount: bigint;
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
    amount: r.amount,
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
  amount: bigint;
  tx_hash: string | null;
  position: string | null;
  reverses_id: string | null;
};

// ledger.posted_entries (a published view): a post carries the hold's accounts, and its chain
// reference is its own or, failing that, the hold's. Callers filter on `e.`.
export const ENTRY_SELECT = `
  SELECT e.seq, e.id, e.kind, e.asset_id, e.debit, e.credit, e.amount, e.tx_hash, e.position,
         e.reverses_id
  FROM ledger.posted_entries e`;

export function toEntry(r: EntryRow): LedgerEntry {
  return {
    seq: Number(r.seq),
    id: r.id,
    kind: r.kind,
    assetId: r.asset_id,
    debit: r.debit,
    credit: r.credit,
    amount: r.amount,
    txHash: r.tx_hash,
    position: r.position,
    reversesId: r.reverses_id,
  };
}
