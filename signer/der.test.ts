import { describe, expect, it } from "vitest";
import { normaliseS, parseDerSignature, SECP256K1_N, toHex32 } from "./der.js";

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ""), "hex"));

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
    expect(toHex32(sig.r)).toBe(`0x${"f1".repeat(32)}`);
    expect(toHex32(sig.s)).toBe(`0x0000${"7f".repeat(30)}`);
  });

  it("rejects malformed encodings", () => {
    const r = "11".repeat(32);
    // Each for its own reason (not merely "some DER error").
    const bad: [string, RegExp][] = [
      [`3144 0220${r} 0220${r}`, /expected SEQUENCE/],
      [`3045 0220${r} 0220${r}`, /SEQUENCE length does not match/],
      [`3044 0220${r} 0320${r}`, /expected INTEGER/],
      [`3044 0220${r} 0220${"81".repeat(32)}`, /negative INTEGER/],
      [`3046 0220${r} 0220${r} 0000`, /trailing bytes/],
      [`3046 0222${r}1111 0220${r}`, /bad INTEGER length/],
      [`3083 0220${r} 0220${r}`, /unsupported length encoding/],
    ];
    for (const [b, reason] of bad) expect(() => parseDerSignature(hex(b)), b).toThrow(reason);
  });

  it("rejects r or s that is zero or not below the curve order", () => {
    const n = SECP256K1_N.toString(16);
    for (const b of [
      `3026 022100${n} 0201 01`, // r = n
      `3026 0201 01 022100${n}`, // s = n
      "3006 020100 020101", // r = 0
      "3006 020101 020100", // s = 0
    ])
      expect(() => parseDerSignature(hex(b)), b).toThrow(/out of range/);
    // One below the order is a valid value.
    const below = (SECP256K1_N - 1n).toString(16);
    expect(parseDerSignature(hex(`3026 022100${below} 0201 01`))).toEqual({
      r: SECP256K1_N - 1n,
      s: 1n,
    });
  });
});

describe("normaliseS", () => {
  it("moves high s to n - s and leaves low s alone", () => {
    expect(normaliseS(SECP256K1_N - 5n)).toEqual({ s: 5n, flipped: true });
    expect(normaliseS(5n)).toEqual({ s: 5n, flipped: false });
    expect(normaliseS(SECP256K1_N >> 1n).flipped).toBe(false);
    expect(normaliseS((SECP256K1_N >> 1n) + 1n).flipped).toBe(true);
  });
});
