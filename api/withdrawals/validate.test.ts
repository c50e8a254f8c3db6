import { describe, expect, it } from "vitest";
import { checkedAmount, checkedDestination } from "./validate.js";

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return "ok";
  } catch (e) {
    return `${(e as { code: string }).code} ${(e as { meta: { field: string } }).meta.field}`;
  }
};

describe("checkedDestination", () => {
  const good = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
  it("accepts a checksummed address and stores it lowercase", () => {
    expect(checkedDestination(good)).toBe(good.toLowerCase());
  });
  it("refuses lowercase, wrong-checksum, malformed and zero addresses, naming the field", () => {
    expect(codeOf(() => checkedDestination(good.toLowerCase()))).toBe(
      "ADDRESS_NOT_CHECKSUMMED body.to",
    );
    expect(codeOf(() => checkedDestination(good.replace("C5", "c5")))).toBe(
      "ADDRESS_NOT_CHECKSUMMED body.to",
    );
    expect(codeOf(() => checkedDestination("0x1234"))).toBe("INVALID_ADDRESS body.to");
    expect(codeOf(() => checkedDestination(`${good}00`))).toBe("INVALID_ADDRESS body.to");
    expect(codeOf(() => checkedDestination("0x0000000000000000000000000000000000000000"))).toBe(
      "INVALID_ADDRESS body.to",
    );
  });
});

describe("checkedAmount", () => {
  it("accepts positive integers up to uint256 max", () => {
    expect(checkedAmount("1")).toBe(1n);
    expect(checkedAmount(((1n << 256n) - 1n).toString())).toBe((1n << 256n) - 1n);
  });
  it("refuses zero, negatives, fractions, exponents and values above uint256", () => {
    for (const bad of ["0", "-1", "1.5", "1e18", "", " 1", (1n << 256n).toString()])
      expect(codeOf(() => checkedAmount(bad))).toBe("AMOUNT_INVALID body.amount");
  });
});
