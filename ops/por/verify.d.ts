// Types for verify.js (plain JavaScript so the browser page loads the same file without a build).
export type ProofStep = { side: "left" | "right"; hash: string; sum: string };
export type LiabilitiesProof = {
  customerId: string;
  salt: string;
  balance: string;
  path: ProofStep[];
  asset?: string;
  block?: string;
  [key: string]: unknown;
};
export type AttestationFigures = {
  chainId?: number | string;
  contract?: string;
  asset?: string;
  block?: string;
  reserves: string | bigint;
  liabilities: string | bigint;
  liabilitiesRoot: string;
  /** The block holding the Attested event, and the chain's finalized block (sources that read the chain). */
  eventBlock?: string | null;
  finalizedBlock?: string;
  [key: string]: unknown;
};
export type VerifyCheck = { name: string; ok: boolean; detail: string };
export type VerifyResult = {
  ok: boolean;
  checks: VerifyCheck[];
  root: { hash: string; sum: string } | null;
};
export declare const ATTESTATION_FIELDS: string;
export declare class ProofFormatError extends Error {}
export declare function keccak256(bytes: Uint8Array): Uint8Array;
export declare function bytesToHex(bytes: Uint8Array): string;
export declare function saltedIdOf(customerId: string, salt: string): Uint8Array;
export declare function leafHash(saltedId: Uint8Array, balance: bigint): Uint8Array;
export declare function nodeHash(
  left: { hash: Uint8Array; sum: bigint },
  right: { hash: Uint8Array; sum: bigint },
): Uint8Array;
export declare function computeRoot(proof: unknown): { hash: string; sum: bigint };
export declare function verifyProof(proof: unknown, attestation: unknown): VerifyResult;
export declare function attestationQuery(
  shape: "ponder" | "graph",
  filters?: ("asset" | "block" | "chainId" | "contract")[],
): string;
export declare function fetchAttestation(
  url: string,
  proof: unknown,
  fetchImpl?: typeof fetch,
): Promise<Record<string, unknown>>;
