import { BaseError } from "../../foundation/errors.js";

/**
 * An attestation tick stopped because its chain's lock was lost (the lock's session ended or went
 * silent): another reconciler may be attesting the chain, so this tick stored and requested
 * nothing (the chain's next tick under the lock looks again).
 */
export class AttestLockLostError extends BaseError {
  override name = "AttestLockLostError";
  constructor(chainId: number) {
    super(`attestation of chain ${chainId} stopped: the chain's lock was lost`, {
      code: "ATTEST_LOCK_LOST",
      retryable: true,
      meta: { chain_id: chainId },
    });
  }
}
