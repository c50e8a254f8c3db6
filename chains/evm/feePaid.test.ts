import { describe, expect, it } from "vitest";
import { feePaid } from "./feePaid.js";

describe("feePaid", () => {
  it("adds an OP-stack receipt's l1Fee to the gas paid, whether hex or bigint", () => {
    expect(feePaid({ gasUsed: 21_000n, effectiveGasPrice: 2n })).toBe(42_000n);
    expect(feePaid({ gasUsed: 21_000n, effectiveGasPrice: 2n, l1Fee: "0x10" })).toBe(42_016n);
    expect(feePaid({ gasUsed: 21_000n, effectiveGasPrice: 2n, l1Fee: 5n })).toBe(42_005n);
    expect(feePaid({ gasUsed: 1n, effectiveGasPrice: 1n, l1Fee: null })).toBe(1n);
    expect(feePaid({ gasUsed: 1n, effectiveGasPrice: 1n, l1Fee: "0x" })).toBe(1n);
  });
});
