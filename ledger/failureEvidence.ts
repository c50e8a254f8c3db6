/**
 * When a `failed` outcome of a transaction the signer sent may release or settle what its caller
 * holds for it (a withdrawal's hold, a sweep's addresses, a cold move, an attestation and its gas):
 * DESIGN "Missing data is never evidence". The rule is one for every caller, so it lives here, below
 * the signer: attestation (ledger/attest) applies it without importing the signer
 * (docs/architecture.md), and the signer exports it with its outcomes (signer/outcomes.ts).
 */

/** The part of a signer outcome (signer/outcomes.ts `TxOutcome`) the rule reads. */
export type FailureEvidence = {
  /** The nonce the request took; null: refused before one was taken. */
  nonce: bigint | null;
  /** When its block became final under the chain's finality rule; null: not final. */
  finalizedAt: Date | null;
  errorCode: string | null;
};

/**
 * Whether a `failed` outcome rests on evidence that releases what it held: refused before a nonce
 * was taken, decided by a final block, or failed by an operator. A `failed` without any of these
 * is a signer bug, and whoever follows the request keeps its hold.
 */
export function failureIsEvidenced(o: FailureEvidence): boolean {
  return o.nonce === null || o.finalizedAt !== null || o.errorCode === "OPERATOR_FAILED";
}
