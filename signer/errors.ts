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

/** The config's `hotWallets[].address` is not the address the wallet's KMS key signs for. */
export class HotWalletAddressMismatchError extends BaseError {
  override name = "HotWalletAddressMismatchError";
  constructor(keyId: string, configured: string, actual: string) {
    super(`KMS key ${keyId} signs for ${actual}, not the configured hot wallet ${configured}`, {
      code: "SIGNER_HOT_WALLET_ADDRESS_MISMATCH",
      meta: { key_id: keyId, configured, actual },
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

/**
 * A configured hot wallet key now has another address than when the signer first loaded it (its
 * alias moved to another key): refused, never served as the wallet (signer/hotWalletKeys.ts).
 */
export class KmsKeyMovedError extends BaseError {
  override name = "KmsKeyMovedError";
  constructor(keyId: string, chainId: number, pinned: string, now: string) {
    super(
      `KMS key ${keyId} is now the account ${now}, not the hot wallet ${pinned} it was on chain ${chainId}: its alias points at another key`,
      {
        code: "SIGNER_KMS_KEY_MOVED",
        meta: { key_id: keyId, chain_id: chainId, hot_wallet: pinned, address: now },
      },
    );
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

/**
 * An operator retried a `needs_review` request whose review reason a resend cannot fix: only a
 * request whose cancel was unsendable (CANCEL_UNSENDABLE) is sent back to the broadcaster. Its nonce
 * used at a final block by nothing we have a receipt for (NONCE_CONSUMED_NO_KNOWN_ATTEMPT) cannot
 * be mined again: retried, it came back to needs_review, with an alert, every round.
 */
export class TxRequestNotRetryableError extends BaseError {
  override name = "TxRequestNotRetryableError";
  constructor(id: string, reviewReason: string | null) {
    super(
      `Transaction request ${id} is needs_review (${reviewReason ?? "no reason recorded"}); retry applies only to CANCEL_UNSENDABLE`,
      {
        code: "SIGNER_REQUEST_NOT_RETRYABLE",
        details:
          reviewReason === "NONCE_CONSUMED_NO_KNOWN_ATTEMPT"
            ? "its nonce is used at a final block and no attempt of ours is found: a resend cannot mine; the signer keeps searching for its receipt, or fail it once the chain is checked (tx-requests fail)"
            : undefined,
        meta: { id, review_reason: reviewReason },
      },
    );
  }
}

/**
 * The chain could not be asked what used a request's nonce (no node answered, a node without the
 * history, a chain not configured), or whether a nonce is unused on every node (a node did not
 * answer, or answered from behind the best head): an operator's failure or fill waits, since
 * absence is never evidence.
 */
export class ChainEvidenceUnavailableError extends BaseError {
  override name = "ChainEvidenceUnavailableError";
  constructor(
    chainId: number,
    why: string,
    cause?: unknown,
    what = "what used the request's nonce",
  ) {
    super(`Cannot read from chain ${chainId} ${what}: ${why}`, {
      code: "SIGNER_CHAIN_CHECK_UNAVAILABLE",
      retryable: true,
      cause,
      meta: { chain_id: chainId },
    });
  }
}

/**
 * An operator tried to fail a request one of whose own transactions the chain has in a block:
 * refused (the money left, or its cancel mined); the signer records it once a node returns the receipt.
 */
export class TxRequestMinedOnChainError extends BaseError {
  override name = "TxRequestMinedOnChainError";
  constructor(id: string, txHash: string, blockNumber: bigint) {
    super(
      `Transaction request ${id} has its transaction ${txHash} in block ${blockNumber}; it is not failed (the signer records it once a node returns the receipt)`,
      {
        code: "SIGNER_REQUEST_MINED_ON_CHAIN",
        meta: { id, tx_hash: txHash, block_number: blockNumber.toString() },
      },
    );
  }
}

/**
 * An operator tried to fail a request whose nonce another transaction used in a block that is
 * not final yet: a reorg could still bring one of our attempts back; wait for finality.
 */
export class TxRequestNonceNotFinalError extends BaseError {
  override name = "TxRequestNonceNotFinalError";
  constructor(id: string, txHash: string, blockNumber: bigint) {
    super(
      `Transaction request ${id}: its nonce was used by ${txHash} in block ${blockNumber}, which is not final yet; retry once it is`,
      {
        code: "SIGNER_NONCE_NOT_FINAL",
        retryable: true,
        meta: { id, tx_hash: txHash, block_number: blockNumber.toString() },
      },
    );
  }
}

/**
 * A hot wallet's contract deploy (`contracts deploy`, `por deploy`) on a halted chain
 * (docs/chain-halts.md): nothing new leaves a hot wallet until an operator resumes the chain, so
 * neither a new deploy nor a stored one no node has taken yet is signed or sent. Nothing changed.
 */
export class ChainHaltedDeployError extends BaseError {
  override name = "ChainHaltedDeployError";
  constructor(chain: { key: string; chainId: number }, halt: { haltedAt: Date; reason: string }) {
    super(
      `chain ${chain.key} (${chain.chainId}) is halted since ${halt.haltedAt.toISOString()} (${halt.reason}): no deploy is signed or sent from its hot wallet until an operator resumes it (docs/chain-halts.md); nothing was signed or sent`,
      {
        code: "SIGNER_CHAIN_HALTED",
        meta: {
          chain: chain.key,
          chain_id: chain.chainId,
          halted_since: halt.haltedAt.toISOString(),
          reason: halt.reason,
        },
      },
    );
  }
}

/**
 * `tx-requests fill-nonce` on a halted chain (docs/chain-halts.md): nothing new leaves a hot wallet
 * until an operator resumes the chain. Nothing changed.
 */
export class ChainHaltedFillError extends BaseError {
  override name = "ChainHaltedFillError";
  constructor(chainId: number, halt: { haltedAt: Date; reason: string }) {
    super(
      `chain ${chainId} is halted since ${halt.haltedAt.toISOString()} (${halt.reason}): no nonce is filled until an operator resumes it (docs/chain-halts.md); nothing changed`,
      {
        code: "SIGNER_CHAIN_HALTED",
        meta: {
          chain_id: chainId,
          halted_since: halt.haltedAt.toISOString(),
          reason: halt.reason,
        },
      },
    );
  }
}

/**
 * `tx-requests fill-nonce`: a request of ours (or a stored CLI deploy) holds the nonce. Only its
 * own stored bytes may use it (a finalized request's payment is booked as made; a live one is
 * followed by the signer). Nothing changed.
 */
export class NonceHeldError extends BaseError {
  override name = "NonceHeldError";
  constructor(
    chainId: number,
    from: string,
    nonce: bigint,
    holder: { requestId: string; status: string } | { deploy: string; status: string },
  ) {
    super(
      "requestId" in holder
        ? `nonce ${nonce} of ${from} on chain ${chainId} is held by tx request ${holder.requestId} (${holder.status}): only its own stored bytes may use it; nothing changed`
        : `nonce ${nonce} of ${from} on chain ${chainId} is held by the stored deploy ${holder.deploy} (${holder.status}): the signer sends its stored bytes; nothing changed`,
      {
        code: "SIGNER_NONCE_HELD",
        meta: {
          chain_id: chainId,
          from,
          nonce: nonce.toString(),
          ...("requestId" in holder ? { request_id: holder.requestId } : { deploy: holder.deploy }),
          status: holder.status,
        },
      },
    );
  }
}

/**
 * `tx-requests fill-nonce` at or above the wallet's next nonce: custody has given out no nonce
 * above it, so nothing waits behind it (the signer gives it to the next request). Nothing changed.
 */
export class NonceNotAGapError extends BaseError {
  override name = "NonceNotAGapError";
  constructor(chainId: number, from: string, nonce: bigint, next: bigint) {
    super(
      `nonce ${nonce} of ${from} on chain ${chainId} is not below the wallet's next nonce ${next}: no nonce of ours waits behind it; nothing changed`,
      {
        code: "SIGNER_NONCE_NOT_A_GAP",
        meta: { chain_id: chainId, from, nonce: nonce.toString(), next_nonce: next.toString() },
      },
    );
  }
}

/**
 * `tx-requests fill-nonce`: a node at the head counts the nonce used, or holds a transaction of the
 * wallet at it in its pool (its pending count is past it). Nothing changed.
 */
export class NonceInUseError extends BaseError {
  override name = "NonceInUseError";
  constructor(
    chainId: number,
    from: string,
    nonce: bigint,
    node: { endpoint: string; latestCount: bigint; pendingCount: bigint },
  ) {
    const mined = node.latestCount > nonce;
    super(
      mined
        ? `nonce ${nonce} of ${from} on chain ${chainId} is used: ${node.endpoint} counts ${node.latestCount} mined transactions; nothing changed`
        : `nonce ${nonce} of ${from} on chain ${chainId} is taken by a transaction in ${node.endpoint}'s pool (pending count ${node.pendingCount}): wait for it to mine or drop; nothing changed`,
      {
        code: "SIGNER_NONCE_IN_USE",
        retryable: !mined,
        meta: {
          chain_id: chainId,
          from,
          nonce: nonce.toString(),
          endpoint: node.endpoint,
          latest_count: node.latestCount.toString(),
          pending_count: node.pendingCount.toString(),
        },
      },
    );
  }
}
