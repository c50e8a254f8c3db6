/**
 * ECDSA signatures as KMS returns them: ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }`, read by
 * @noble/curves (strict DER: minimal lengths and integers, no trailing bytes, r and s in 1..n-1).
 * What noble 2 leaves to us: an error that says the bytes were KMS's signature, and EIP-2's rule
 * that Ethereum takes s only from the lower half of the curve order (noble 2 checks it with
 * `hasHighS()` but no longer flips it; 1.x had `normalizeS()`).
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";

const Fn = secp256k1.Point.Fn;
export const SECP256K1_N = Fn.ORDER;

/** Parse a DER ECDSA signature into r and s as KMS produced them (s may be high). */
export function parseDerSignature(der: Uint8Array): { r: bigint; s: bigint } {
  try {
    const { r, s } = secp256k1.Signature.fromBytes(der, "der");
    return { r, s };
  } catch (error) {
    throw new Error(`malformed DER signature: ${(error as Error).message}`, { cause: error });
  }
}

/** EIP-2: s above n/2 is replaced by n - s (the same signature, the other y parity). */
export function toLowS({ r, s }: { r: bigint; s: bigint }): {
  r: bigint;
  s: bigint;
  flipped: boolean;
} {
  const flipped = new secp256k1.Signature(r, s).hasHighS();
  return { r, s: flipped ? Fn.neg(s) : s, flipped };
}
