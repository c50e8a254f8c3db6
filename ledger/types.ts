/** The ledger's public types: assets, accounts, transfers and their results. */

/** `<chainId>:<token lowercase>`; native value uses the zero address. */
export type AssetId = string;

export type Asset = {
  id: AssetId;
  chainId: number;
  token: `0x${string}`;
  symbol: string;
  decimals: number;
};

export const TRANSFER_KINDS = [
  "deposit",
  "withdrawal",
  "sweep",
  "fee",
  "compensation",
  "cold_move",
  "manual",
  "reorg_hold",
  "inflow_credit",
  "treasury",
  "reorg_writeoff",
] as const;
export type TransferKind = (typeof TRANSFER_KINDS)[number];

/** An account is named per asset (docs/contracts.md): `user:<id>`, `custody:deposits`, … */
export type AccountRef = { assetId: AssetId; name: string };

export type AccountFlags = {
  debitsMustNotExceedCredits: boolean;
  creditsMustNotExceedDebits: boolean;
};

export type Account = AccountRef &
  AccountFlags & {
    id: bigint;
    kind: "user" | "custody" | "fees" | "suspense" | "receivable" | "treasury" | "expense";
    normal: "credit" | "debit";
    frozen: boolean;
  } & Balance;

export type Balance = {
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
  /**
   * What the owner may spend: for a credit-normal account credits posted − debits posted − debits
   * pending; for a debit-normal one debits posted − credits posted − credits pending.
   */
  available: bigint;
};

export type ChainRef = { chainId: number; txHash: string; position: string };

type Common = {
  /** Caller-chosen UUID; use `transferId(name)` for deterministic ones. */
  id: string;
  /** The next transfer in the same call belongs to the same linked chain: all succeed or all fail. */
  linked?: boolean;
  chainRef?: ChainRef;
  memo?: string;
};

/** A transfer that posts at once (`type` omitted or "single") or places a hold ("pending"). */
export type NewTransfer = Common & {
  type?: "single" | "pending";
  assetId: AssetId;
  /** Account names in the asset. Missing accounts are created with the chart's flags. */
  debit: string;
  credit: string;
  amount: bigint;
  kind: TransferKind;
  /** Pending only: the hold expires (is voided by the expiry sweep) after this many seconds (at most 2^31 − 1). */
  timeoutSeconds?: number;
  /** This transfer compensates that one (e.g. a deposit credit orphaned by a deep reorg). */
  reverses?: string;
  /**
   * Pending only: the hold of money already paid out, placed again because a reorg reversed its
   * posting (in the same transaction, so the owner's available balance does not move). No new
   * spend, so a frozen debit account takes it: refused, the ledger would show paid what the chain
   * no longer holds while the same signed bytes are sent again whatever the freeze. Not stored.
   */
  heldAgain?: boolean;
};

/** Resolve a hold: post (all, or `amount` and release the rest) or void it. */
export type ResolveTransfer = Common & {
  type: "post" | "void";
  pendingId: string;
  /** Post only; default the hold's full amount. */
  amount?: bigint;
};

export type TransferInput = NewTransfer | ResolveTransfer;

/** Stable failure codes (docs/errors.md). */
export const FAILURE_CODES = [
  "LEDGER_INVALID_TRANSFER",
  "LEDGER_UNKNOWN_ASSET",
  "LEDGER_INSUFFICIENT_BALANCE",
  "LEDGER_EXCEEDS_DEBITS",
  "LEDGER_ACCOUNT_FROZEN",
  "LEDGER_PENDING_NOT_FOUND",
  "LEDGER_PENDING_ALREADY_POSTED",
  "LEDGER_PENDING_ALREADY_VOIDED",
  "LEDGER_PENDING_EXPIRED",
  "LEDGER_EXCEEDS_PENDING_AMOUNT",
  "LEDGER_LINKED_EVENT_FAILED",
  "LEDGER_TRANSFER_EXISTS_MISMATCH",
] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

/**
 * Failures that depend on ledger state: stored, so a retry of the id fails the same way and the
 * id can never succeed later.
 */
export const STICKY_FAILURES: ReadonlySet<FailureCode> = new Set([
  "LEDGER_INSUFFICIENT_BALANCE",
  "LEDGER_EXCEEDS_DEBITS",
  "LEDGER_ACCOUNT_FROZEN",
  "LEDGER_PENDING_ALREADY_POSTED",
  "LEDGER_PENDING_ALREADY_VOIDED",
  "LEDGER_PENDING_EXPIRED",
  "LEDGER_EXCEEDS_PENDING_AMOUNT",
]);

export type TransferResult =
  | { id: string; status: "created" }
  /** The id exists with the same fields: the retry changed nothing. */
  | { id: string; status: "exists" }
  | {
      id: string;
      status: "failed";
      code: FailureCode;
      /** For LEDGER_TRANSFER_EXISTS_MISMATCH: the first field that differs. */
      field?: string;
      detail?: string;
    };

export type TransferType = "single" | "pending" | "post" | "void" | "expire";

/** A stored transfer. */
export type Transfer = {
  seq: bigint;
  id: string;
  assetId: AssetId;
  debitAccountId: bigint;
  creditAccountId: bigint;
  amount: bigint;
  type: TransferType;
  pendingId: string | null;
  postedDelta: bigint;
  pendingDelta: bigint;
  kind: TransferKind;
  chainRef: ChainRef | null;
  reversesId: string | null;
  timeoutAt: Date | null;
  memo: string | null;
  createdAt: Date;
};
