/**
 * The shapes the matching core works on: chain facts (rows of `chain.transfers`) and the posted
 * effects of ledger transfers, both reduced to what reconciliation needs.
 */
import type { TransferKind } from "../types.js";

export type FactKind = "native" | "erc20" | "internal" | "fee";
export type FactStatus = "seen" | "confirmed" | "orphaned";
export type CustodyKind = "deposit" | "hot" | "cold";

/** One row of `chain.transfers`. Addresses lowercase; `asset` is `<chainId>:<token>`. */
export type ChainFact = {
  id: number;
  blockNumber: number;
  txHash: string;
  position: string;
  kind: FactKind;
  assetId: string;
  from: string;
  to: string;
  amount: bigint;
  status: FactStatus;
};

/**
 * A posted ledger movement: a single transfer or the post of a hold (pending holds and voids move
 * no posted balance, so the loader leaves them out). `amount` is the posted amount.
 */
export type LedgerEntry = {
  seq: number;
  id: string;
  kind: TransferKind;
  assetId: string;
  debit: string;
  credit: string;
  amount: bigint;
  /** The chain fact this transfer claims (same chain as the run), or null. */
  txHash: string | null;
  position: string | null;
  /** For compensations: the id of the transfer it reverses. */
  reversesId: string | null;
};

/**
 * A deposit credit whose fact a reorg removed, handled by a reorg hold (ledger/depositCrediting.ts):
 * `held` while the hold is pending, `final` once posted (at finality, or against its return). Not a
 * break: reports list them.
 */
export type ReorgHold = {
  creditId: string;
  owner: string;
  assetId: string;
  txHash: string;
  position: string;
  toAddress: string;
  amount: bigint;
  state: "held" | "final";
  /** Held from the customer's balance. */
  holdAmount: bigint;
  /** Booked to `receivable:reorg:<owner>` (the customer had spent it; withdrawals blocked). */
  shortfallAmount: bigint;
  orphanedBlock: number | null;
  updatedAt: Date;
  /**
   * `final` by the deposit's return (the same transaction's fact came back after all): the credit
   * of that fact and its position; its shortfall was paid out of it. Absent: not returned (and in
   * runs stored before returns were told apart).
   */
  returned?: { creditId: string; position: string };
};

export const BREAK_TYPES = [
  "missing_credit",
  "double_credit",
  "unmatched_withdrawal",
  "amount_mismatch",
  "fee_not_booked",
  "orphaned_credit",
  "unbooked_move",
  "unmatched_ledger_transfer",
  "unexplained_balance_difference",
  "solvency_shortfall",
  "unattributed_inflow",
] as const;
export type BreakType = (typeof BREAK_TYPES)[number];

/** A break: what is wrong, the items involved, the amounts on each side, what to do. */
export type Break = {
  type: BreakType;
  assetId: string;
  /** `txHash:position` of the fact concerned, or the balance scope (`hot:<address>`, `deposits`, `solvency`). */
  key: string;
  /** Which side lacks the counterpart, where that matters. */
  direction?: "chain_without_ledger" | "ledger_without_chain";
  facts: ChainFact[];
  entries: LedgerEntry[];
  chainAmount: bigint;
  ledgerAmount: bigint;
  /** ledgerAmount − chainAmount. */
  difference: bigint;
  action: string;
  /** Set once the run is stored (ledger/recon/breakStates.ts). */
  state?: "open" | "acknowledged" | "resolved";
};

/** Kinds of ledger transfer that are only valid with a chain fact behind them. */
export const CHAIN_BACKED_KINDS: ReadonlySet<TransferKind> = new Set([
  "deposit",
  "withdrawal",
  "sweep",
  "fee",
  "cold_move",
  "treasury",
]);
