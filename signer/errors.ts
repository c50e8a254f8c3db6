/** The signer's errors; each code has a row in docs/errors.md. */
import { BaseError } from "../foundation/errors.js";

/** A transaction request that can never be valid (bad address, amount, data, kind). */
export class InvalidTxRequestError extends BaseError {
  override name = "InvalidTxRequestError";
  constructor(field: string, message: string) {
    super(`Invalid transaction request: ${field} ${message}`, {
      code: "SIGNER_INVALID_REQUEST",
      meta: { field },
    });
  }
}

/** The same request id was used before with different contents. */
export class TxRequestConflictError extends BaseError {
  override name = "TxRequestConflictError";
  constructor(id: string, fields: string[]) {
    super(`Transaction request ${id} already exists with different ${fields.join(", ")}`, {
      code: "SIGNER_REQUEST_CONFLICT",
      meta: { id, fields },
    });
  }
}

/** The KMS key cannot sign Ethereum transactions (wrong spec/usage) or its public key is bad. */
export class KmsKeyUnsuitableError extends BaseError {
  override name = "KmsKeyUnsuitableError";
  constructor(keyId: string, details: string) {
    super(`KMS key ${keyId} cannot be used as an Ethereum account`, {
      code: "SIGNER_KMS_KEY_UNSUITABLE",
      details,
      meta: { key_id: keyId },
    });
  }
}

/** KMS answered with something we cannot turn into a valid signature for our address. */
export class KmsSignatureError extends BaseError {
  override name = "KmsSignatureError";
  constructor(keyId: string, details: string, cause?: unknown) {
    super(`KMS key ${keyId} returned an unusable signature`, {
      code: "SIGNER_KMS_BAD_SIGNATURE",
      details,
      cause,
      meta: { key_id: keyId },
    });
  }
}

/** KMS kept throttling after every retry. */
export class KmsThrottledError extends BaseError {
  override name = "KmsThrottledError";
  constructor(keyId: string, attempts: number, cause?: unknown) {
    super(`KMS throttled signing with key ${keyId} ${attempts} times in a row`, {
      code: "SIGNER_KMS_THROTTLED",
      cause,
      retryable: true,
      meta: { key_id: keyId, attempts },
    });
  }
}

/** The broadcaster lost its Postgres lease connection: it must stop writing at once. */
export class LeaseLostError extends BaseError {
  override name = "LeaseLostError";
  constructor(lease: string, cause?: unknown) {
    super(`Lost the broadcaster lease ${lease}`, {
      code: "SIGNER_LEASE_LOST",
      cause,
      retryable: true,
      meta: { lease },
    });
  }
}

/** An operator command named a transaction request that does not exist. */
export class TxRequestNotFoundError extends BaseError {
  override name = "TxRequestNotFoundError";
  constructor(id: string) {
    super(`Transaction request ${id} does not exist`, {
      code: "SIGNER_REQUEST_NOT_FOUND",
      meta: { id },
    });
  }
}

/** An operator decision without who made it or why: refused before anything is read. */
export class OperatorDecisionIncompleteError extends BaseError {
  override name = "OperatorDecisionIncompleteError";
  constructor(missing: "by" | "reason") {
    super(
      missing === "by"
        ? "An operator decision needs who made it (--by)"
        : "An operator decision needs a reason (--reason)",
      { code: "SIGNER_OPERATOR_DECISION_INCOMPLETE", meta: { missing } },
    );
  }
}

/** An operator command does not apply to the request in its current status. */
export class TxRequestNotReviewableError extends BaseError {
  override name = "TxRequestNotReviewableError";
  constructor(id: string, status: string, allowed: readonly string[]) {
    super(`Transaction request ${id} is ${status}; this command applies to ${allowed.join(", ")}`, {
      code: "SIGNER_REQUEST_NOT_REVIEWABLE",
      meta: { id, status, allowed },
    });
  }
}
