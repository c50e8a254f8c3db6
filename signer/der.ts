/**
 * ECDSA signatures as KMS returns them: ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }`. An INTEGER
 * may be shorter than 32 bytes (leading zeros dropped) or 33 bytes (a 0x00 sign byte before a high
 * bit); both are turned into plain bigints. Ethereum wants s in the lower half of the curve order.
 */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = SECP256K1_N >> 1n;

function readLength(der: Uint8Array, at: number): [length: number, next: number] {
  const first = der[at];
  if (first === undefined) throw new Error("DER: truncated length");
  if (first < 0x80) return [first, at + 1];
  // Signatures are short: only the one-byte long form (0x81 xx) is legal here.
  if (first === 0x81 && der[at + 1] !== undefined && der[at + 1]! >= 0x80)
    return [der[at + 1]!, at + 2];
  throw new Error("DER: unsupported length encoding");
}

function readInteger(der: Uint8Array, at: number): [value: bigint, next: number] {
  if (der[at] !== 0x02) throw new Error("DER: expected INTEGER");
  const [len, start] = readLength(der, at + 1);
  if (len === 0 || len > 33 || start + len > der.length) throw new Error("DER: bad INTEGER length");
  const bytes = der.subarray(start, start + len);
  if (bytes[0]! & 0x80) throw new Error("DER: negative INTEGER");
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return [value, start + len];
}

/** Parse a DER ECDSA signature into r and s (left-padding is implicit in the bigint). */
export function parseDerSignature(der: Uint8Array): { r: bigint; s: bigint } {
  if (der[0] !== 0x30) throw new Error("DER: expected SEQUENCE");
  const [seqLen, body] = readLength(der, 1);
  if (body + seqLen !== der.length) throw new Error("DER: SEQUENCE length does not match");
  const [r, afterR] = readInteger(der, body);
  const [s, afterS] = readInteger(der, afterR);
  if (afterS !== der.length) throw new Error("DER: trailing bytes");
  if (r <= 0n || r >= SECP256K1_N || s <= 0n || s >= SECP256K1_N) {
    throw new Error("DER: r or s out of range");
  }
  return { r, s };
}

/** EIP-2: s above n/2 is replaced by n - s (the same signature, the other y parity). */
export function normaliseS(s: bigint): { s: bigint; flipped: boolean } {
  return s > HALF_N ? { s: SECP256K1_N - s, flipped: true } : { s, flipped: false };
}

export function toHex32(value: bigint): `0x${string}` {
  return `0x${value.toString(16).padStart(64, "0")}`;
}
