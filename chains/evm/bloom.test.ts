import { describe, expect, it } from "vitest";
import { bloomMayContain } from "./bloom.js";
import { TRANSFER_TOPIC } from "./createEvmAdapter.js";

const EMPTY = `0x${"0".repeat(512)}` as const;

describe("bloomMayContain", () => {
  it("says absent for an empty bloom and present for a full one", () => {
    expect(bloomMayContain(EMPTY, TRANSFER_TOPIC)).toBe(false);
    expect(bloomMayContain(`0x${"f".repeat(512)}`, TRANSFER_TOPIC)).toBe(true);
  });
  it("finds what was added and (almost always) not what was not", () => {
    const bits = new Uint8Array(256);
    // Add TRANSFER_TOPIC by the yellow-paper rule, independently of the function under test.
    const add = (hashHex: string) => {
      for (let i = 0; i < 6; i += 2) {
        const bit = Number.parseInt(hashHex.slice(2 + i * 2, 6 + i * 2), 16) & 2047;
        bits[255 - (bit >> 3)]! |= 1 << (bit & 7);
      }
    };
    // keccak256(TRANSFER_TOPIC bytes) precomputed with viem would couple the test; compute inline:
    return import("viem").then(({ keccak256, bytesToHex }) => {
      add(keccak256(TRANSFER_TOPIC));
      const bloom = bytesToHex(bits);
      expect(bloomMayContain(bloom, TRANSFER_TOPIC)).toBe(true);
      expect(bloomMayContain(bloom, "0x5fbdb2315678afecb367f032d93f642f64180aa3")).toBe(false);
    });
  });
});
