/**
 * What attestation needs of the signer, injected by its callers (the composition root builds the
 * role with the signer's `requestTransaction` and `getTxOutcomes`: ops/roles.ts, ops/por): the
 * ledger sits below the signer and never imports it. The types are the part of the signer's
 * request and outcome that attestation writes and reads.
 */
import type { Hex } from "viem";
import type { PoolClient } from "../../foundation/db.js";

/** One transaction asked of the signer (its `TxRequestInput`): idempotent on `id`. */
export type AttestationRequest = {
  id: string;
  chainId: number;
  /** The hot wallet that sends (the attester). */
  from: string;
  to: string;
  value: bigint;
  data: Hex;
  kind: string;
  refId: string;
};

/** A request's outcome as the signer reports it (its `TxOutcome`), the fields attestation reads. */
export type AttestationOutcome = {
  requestId: string;
  chainId: number;
  from: Hex;
  status:
    | "signing"
    | "broadcast"
    | "confirmed"
    | "finalized"
    | "receipt_unknown"
    | "needs_review"
    | "failed";
  txHash: Hex | null;
  receiptSuccess: boolean | null;
  /** Gas paid by the hot wallet, wei. */
  fee: bigint | null;
  /** Whether the mined attempt was the signer's cancel of this nonce. */
  cancelled: boolean;
  errorCode: string | null;
  /** The nonce it took; null: refused before one was taken (failureIsEvidenced reads these two). */
  nonce: bigint | null;
  /** When its block became final; null: not yet. */
  finalizedAt: Date | null;
  /** Times a mined attempt of this request left the canonical chain (a reorg). */
  reorgs: number;
};

export type AttestationSender = {
  /** Inside the caller's transaction (the client is in BEGIN): the request commits with it. */
  requestTransaction: (client: PoolClient, request: AttestationRequest) => Promise<unknown>;
  /** Outcomes of requests by id (unknown ids left out). */
  getTxOutcomes: (
    client: Pick<PoolClient, "query">,
    params: { requestIds: readonly string[] },
  ) => Promise<AttestationOutcome[]>;
};
