/**
 * When a `failed` outcome of a transaction the signer sent may release or settle what its caller
 * holds for it (a withdrawal's hold, a sweep's addresses, a cold move, an attestation and its gas):
 * DESIGN "Missing data is never evidence". The rule is one for every caller, so it lives here, below
 * the signer: attestation (ledger/attest) applies it without importing the signer
 * (docs/architecture.md), and the signer exports it with its outcomes (signer/outcomes.ts). So does
 * followAction, the rule for a booking made when its transaction mined (a sweep's, a cold move's,
 * an attestation's gas).
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

/** The part of a signer outcome followAction reads (its statuses as signer/outcomes.ts names them). */
export type FollowedOutcome = FailureEvidence & { status: string; reorgs: number };

/** Outcomes of a request whose transaction is in no block (the signer is sending it again). */
const UNMINED: ReadonlySet<string> = new Set(["broadcast", "receipt_unknown"]);

/**
 * What to do with a booking made when the transaction mined, given its outcome now: the booked
 * inclusion left the chain when the reorg count grew past the booked one or the outcome is back
 * to an unmined status (the signer counts each exit, so either says it; both are read), or it
 * failed after all on evidence (failureIsEvidenced): a `failed` without it is a signer bug and
 * the booking stands.
 */
export function followAction(
  bookedGeneration: number,
  o: FollowedOutcome,
): "final" | "unbook" | undefined {
  if (
    o.reorgs > bookedGeneration ||
    UNMINED.has(o.status) ||
    (o.status === "failed" && failureIsEvidenced(o))
  )
    return "unbook";
  if (o.status === "finalized") return "final";
  return undefined;
}
