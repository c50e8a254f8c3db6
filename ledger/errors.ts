import { BaseError } from "../foundation/errors.js";
import type { FailureCode } from "./types.js";

/** A transfer was refused; `code` is one of the ledger's failure codes (docs/errors.md). */
export class TransferFailedError extends BaseError {
  override name = "TransferFailedError";
  readonly transferId: string;
  constructor(transferId: string, code: FailureCode, detail?: string, field?: string) {
    super(`transfer ${transferId} failed: ${code}${field ? ` (field ${field})` : ""}`, {
      code,
      details: detail,
      meta: { transfer_id: transferId, ...(field ? { field } : {}) },
    });
    this.transferId = transferId;
  }
}

/**
 * Another transaction inserted one of this batch's ids (or placed a hold it resolves) between
 * our read and our write. Nothing was applied; retry the batch.
 */
export class TransferIdRaceError extends BaseError {
  override name = "TransferIdRaceError";
  constructor(ids: string[]) {
    super("a transfer id was written concurrently; retry", {
      code: "LEDGER_ID_RACE",
      retryable: true,
      meta: { transfer_ids: ids },
    });
  }
}

export class AccountNotFoundError extends BaseError {
  override name = "AccountNotFoundError";
  constructor(assetId: string, name: string) {
    super(`no account ${name} in asset ${assetId}`, {
      code: "LEDGER_ACCOUNT_NOT_FOUND",
      meta: { asset_id: assetId, name },
    });
  }
}

export class InvalidAccountError extends BaseError {
  override name = "InvalidAccountError";
  constructor(name: string, why: string) {
    super(`invalid account ${name}: ${why}`, {
      code: "LEDGER_INVALID_ACCOUNT",
      meta: { name },
    });
  }
}

/** A treasury booking refused: bad input, a fact that disagrees, or a conflicting earlier booking. */
export class TreasuryMoveError extends BaseError {
  override name = "TreasuryMoveError";
  constructor(what: string, why: string) {
    super(`${what} cannot be booked: ${why}`, {
      code: "TREASURY_MOVE_REFUSED",
      meta: { move: what },
    });
  }
}

/** `ledger withdrawal-blocks clear` refused: who (`--by`) or why (`--reason`) is empty; nothing cleared. */
export class WithdrawalBlockInputError extends BaseError {
  override name = "WithdrawalBlockInputError";
  constructor(customerId: string, field: "by" | "reason") {
    super(`withdrawal blocks of ${customerId} cannot be cleared: --${field} must not be empty`, {
      code: "LEDGER_WITHDRAWAL_BLOCK_INPUT",
      meta: { customer_id: customerId, field },
    });
  }
}

/**
 * `ledger unfreeze` refused, nothing changed: a field is wrong (`field` names it: `customer`,
 * `by`, `reason`, `asset`) or the customer has no account of that asset.
 */
export class UnfreezeInputError extends BaseError {
  override name = "UnfreezeInputError";
  constructor(customerId: string, field: string, detail: string) {
    super(`the account of ${customerId} cannot be unfrozen: ${detail}`, {
      code: "LEDGER_UNFREEZE_INPUT",
      meta: { customer_id: customerId, field },
    });
  }
}

/** `ledger parked-deposits retry` refused: who (`--by`) or why (`--reason`) is empty; nothing made due. */
export class ParkedRetryInputError extends BaseError {
  override name = "ParkedRetryInputError";
  constructor(chainId: number, field: "by" | "reason") {
    super(`parked deposits of chain ${chainId} cannot be retried: --${field} must not be empty`, {
      code: "LEDGER_PARKED_RETRY_INPUT",
      meta: { chain_id: chainId, field },
    });
  }
}

/**
 * `ledger receivables write-off` refused, nothing booked: `LEDGER_REORG_WRITEOFF_INPUT` (a field
 * empty or malformed, an unknown asset, or a reference already used for another amount: `field`
 * names it), `LEDGER_REORG_NOTHING_OWED` (nothing is posted on the receivable: repaid, written off,
 * or its reorg hold still pending), `LEDGER_REORG_WRITEOFF_EXCEEDS_OWED` (more than is owed).
 */
export class ReorgWriteOffError extends BaseError {
  override name = "ReorgWriteOffError";
  constructor(
    code:
      | "LEDGER_REORG_WRITEOFF_INPUT"
      | "LEDGER_REORG_NOTHING_OWED"
      | "LEDGER_REORG_WRITEOFF_EXCEEDS_OWED",
    customerId: string,
    detail: string,
    meta: Record<string, unknown> = {},
  ) {
    super(`the reorg receivable of ${customerId} cannot be written off: ${detail}`, {
      code,
      meta: { customer_id: customerId, ...meta },
    });
  }
}
