import { secp256k1 } from "@noble/curves/secp256k1.js";
import { numberToHex } from "viem";
import { describe, expect, it } from "vitest";
import { parseDerSignature, SECP256K1_N, toLowS } from "./der.js";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ""), "hex"));
const HALF_N = SECP256K1_N >> 1n;

describe("parseDerSignature", () => {
  it("reads 32-byte r and s", () => {
    const r = "11".repeat(32);
    const s = "22".repeat(32);
    expect(parseDerSignature(hex(`3044 0220${r} 0220${s}`))).toEqual({
      r: BigInt(`0x${r}`),
      s: BigInt(`0x${s}`),
    });
  });

  it("reads a 33-byte INTEGER with a sign byte and a short one without leading zeros", () => {
    const r = `00${"f1".repeat(32)}`;
    const s = "7f".repeat(30);
    const sig = parseDerSignature(hex(`3043 0221${r} 021e${s}`));
    expect(numberToHex(sig.r, { size: 32 })).toBe(`0x${"f1".repeat(32)}`);
    expect(numberToHex(sig.s, { size: 32 })).toBe(`0x0000${"7f".repeat(30)}`);
  });

  it("reads what a signer encodes; high s is kept, and only its low-s twin verifies for Ethereum", () => {
    // A fixed key and digest; lowS: false signs as KMS does (s in either half).
    const key = hex("01".repeat(32));
    const publicKey = secp256k1.getPublicKey(key);
    const digest = hex("ab".repeat(32));
    let high = 0;
    for (let i = 0; i < 16; i++) {
      const opts = {
        prehash: false,
        lowS: false,
        extraEntropy: hex("00".repeat(31) + i.toString(16).padStart(2, "0")),
      };
      const der = secp256k1.sign(digest, key, { ...opts, format: "der" });
      const compact = secp256k1.Signature.fromBytes(secp256k1.sign(digest, key, opts), "compact");
      const sig = parseDerSignature(der);
      expect(sig).toEqual({ r: compact.r, s: compact.s });
      const low = toLowS(sig);
      const lowBytes = new secp256k1.Signature(low.r, low.s).toBytes("compact");
      expect(secp256k1.verify(lowBytes, digest, publicKey, { prehash: false })).toBe(true);
      if (low.flipped) {
        high++;
        const highBytes = new secp256k1.Signature(sig.r, sig.s).toBytes("compact");
        expect(secp256k1.verify(highBytes, digest, publicKey, { prehash: false })).toBe(false);
      }
    }
    expect(high).toBeGreaterThan(0);
  });

  it("rejects malformed encodings with a clear error", () => {
    const r = "11".repeat(32);
    // Each for its own reason (noble's words after ours).
    const bad: [string, RegExp][] = [
      [`3144 0220${r} 0220${r}`, /wrong tlv/], // not a SEQUENCE
      [`3045 0220${r} 0220${r}`, /wrong value length/], // SEQUENCE length does not match
      [`3044 0220${r} 0320${r}`, /wrong tlv/], // not an INTEGER
      [`3044 0220${r} 0220${"81".repeat(32)}`, /negative/],
      [`3046 0220${r} 0220${r} 0000`, /left bytes/], // trailing bytes
      [`3046 0222${r}1111 0220${r}`, /integer too large/],
      [`3045 022100${r} 0220${r}`, /unnecessary leading zero/],
      [`3083 0220${r} 0220${r}`, /wrong value length/], // a long-form length that is not there
      ["", /wrong tlv/],
    ];
    for (const [b, reason] of bad) {
      expect(() => parseDerSignature(hex(b)), b).toThrow(/^malformed DER signature: /);
      expect(() => parseDerSignature(hex(b)), b).toThrow(reason);
    }
  });

  it("rejects r or s that is zero or not below the curve order", () => {
    const n = SECP256K1_N.toString(16);
    for (const b of [
      `3026 022100${n} 0201 01`, // r = n
      `3026 0201 01 022100${n}`, // s = n
      "3006 020100 020101", // r = 0
      "3006 020101 020100", // s = 0
    ])
      expect(() => parseDerSignature(hex(b)), b).toThrow(/malformed DER signature: .*out of range/);
    // One below the order is a valid value.
    const below = (SECP256K1_N - 1n).toString(16);
    expect(parseDerSignature(hex(`3026 022100${below} 0201 01`))).toEqual({
      r: SECP256K1_N - 1n,
      s: 1n,
    });
  });
});

describe("toLowS", () => {
  it("moves high s to n - s and leaves low s alone", () => {
    expect(toLowS({ r: 1n, s: SECP256K1_N - 5n })).toEqual({ r: 1n, s: 5n, flipped: true });
    expect(toLowS({ r: 1n, s: 5n })).toEqual({ r: 1n, s: 5n, flipped: false });
    expect(toLowS({ r: 1n, s: HALF_N }).flipped).toBe(false);
    expect(toLowS({ r: 1n, s: HALF_N + 1n })).toEqual({ r: 1n, s: HALF_N, flipped: true });
  });
});
