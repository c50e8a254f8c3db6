import { describe, expect, it } from "vitest";
import { feeFieldMissing, feePaid } from "./feePaid.js";

describe("feePaid", () => {
  it("adds an OP-stack receipt's l1Fee to the gas paid, whether hex or bigint", () => {
    expect(feePaid({ gasUsed: 21_000n, effectiveGasPrice: 2n })).toBe(42_000n);
    expect(feePaid({ gasUsed: 21_000n, effectiveGasPrice: 2n, l1Fee: "0x10" })).toBe(42_016n);
    expect(feePaid({ gasUsed: 21_000n, effectiveGasPrice: 2n, l1Fee: 5n })).toBe(42_005n);
    expect(feePaid({ gasUsed: 1n, effectiveGasPrice: 1n, l1Fee: null })).toBe(1n);
    expect(feePaid({ gasUsed: 1n, effectiveGasPrice: 1n, l1Fee: "0x" })).toBe(1n);
  });

  it("names the field a receipt lacks for its fee: effectiveGasPrice anywhere, l1Fee on an OP-stack chain but for a deposit", () => {
    const op = { l1DataFee: "op-stack" } as const;
    expect(feeFieldMissing({ l1Fee: "0x1" }, op)).toBe("effectiveGasPrice");
    expect(feeFieldMissing({ effectiveGasPrice: null }, {})).toBe("effectiveGasPrice");
    expect(feeFieldMissing({ effectiveGasPrice: "0x1" }, {})).toBeNull();
    expect(feeFieldMissing({ effectiveGasPrice: "0x1" }, { l1DataFee: "none" })).toBeNull();
    expect(feeFieldMissing({ effectiveGasPrice: "0x1", type: "0x2" }, op)).toBe("l1Fee");
    // viem's OP formatter: l1Fee null when the node sent none.
    expect(feeFieldMissing({ effectiveGasPrice: 1n, l1Fee: null, type: "eip1559" }, op)).toBe(
      "l1Fee",
    );
    expect(feeFieldMissing({ effectiveGasPrice: "0x1", l1Fee: "0x0" }, op)).toBeNull();
    expect(feeFieldMissing({ effectiveGasPrice: "0x0", type: "0x7e" }, op)).toBeNull();
    expect(feeFieldMissing({ effectiveGasPrice: 0n, l1Fee: null, type: "deposit" }, op)).toBeNull();
  });
});
