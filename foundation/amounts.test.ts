import { describe, expect, it } from "vitest";
import { amountFromText, formatTokenAmount, parseAmount, parseTokenAmount } from "./amounts.js";

const eth = { symbol: "ETH", decimals: 18 };

describe("formatTokenAmount", () => {
  it("shows base units as token units with the symbol", () => {
    expect(formatTokenAmount("1500000000000000000", eth)).toBe("1.5 ETH");
    expect(formatTokenAmount(1500000000000000000n, eth)).toBe("1.5 ETH");
    expect(formatTokenAmount("1", eth)).toBe("0.000000000000000001 ETH");
    expect(formatTokenAmount("0", eth)).toBe("0 ETH");
    expect(formatTokenAmount("100000000000000000000", eth)).toBe("100 ETH");
    expect(formatTokenAmount("1234567", { symbol: "USDC", decimals: 6 })).toBe("1.234567 USDC");
    expect(formatTokenAmount("7", { symbol: "PTS", decimals: 0 })).toBe("7 PTS");
  });

  it("groups thousands and uses a real minus sign", () => {
    expect(formatTokenAmount("-2500000000000000000000", eth)).toBe("−2,500 ETH");
    expect(formatTokenAmount("1234567890120000", { symbol: "USDC", decimals: 6 })).toBe(
      "1,234,567,890.12 USDC",
    );
    expect(formatTokenAmount((1n << 256n) - 1n, eth)).toBe(
      "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457.584007913129639935 ETH",
    );
  });

  it("gives base units unchanged for an asset that is not listed", () => {
    expect(formatTokenAmount("42", undefined)).toBe("42");
    expect(formatTokenAmount(-42n, undefined)).toBe("-42");
  });

  it("refuses what is not an integer amount or sensible decimals", () => {
    expect(() => formatTokenAmount("1.5", eth)).toThrow(SyntaxError);
    expect(() => formatTokenAmount("1", { symbol: "X", decimals: -1 })).toThrow(/decimals/);
    expect(() => formatTokenAmount("1", { symbol: "X", decimals: 1.5 })).toThrow(/decimals/);
  });
});

describe("parseAmount and amountFromText", () => {
  it("parse decimal base units and nothing else", () => {
    expect(parseAmount("10")).toBe(10n);
    expect(() => parseAmount("-1")).toThrow(/amount must be/);
    expect(() => parseAmount("1e3", "value")).toThrow(/value must be/);
    expect(() => parseAmount((1n << 256n).toString())).toThrow(/exceeds uint256/);
    // The NUMERIC parser: integers of any size and sign exactly; anything else is a coded error.
    expect(amountFromText("-12")).toBe(-12n);
    expect(amountFromText((1n << 256n).toString())).toBe(1n << 256n);
    for (const bad of ["1.5", "0.0", "NaN", "Infinity", "", "1e3"])
      expect(() => amountFromText(bad), bad).toThrow(
        expect.objectContaining({ code: "DB_FRACTIONAL_NUMERIC" }),
      );
  });
});

describe("parseTokenAmount", () => {
  it("turns token units into base units, the converse of formatTokenAmount", () => {
    expect(parseTokenAmount("1.5", 18)).toBe(1500000000000000000n);
    expect(parseTokenAmount(" 100 ", 18)).toBe(100n * 10n ** 18n);
    expect(parseTokenAmount("0.000001", 6)).toBe(1n);
    expect(parseTokenAmount("2.50", 1)).toBe(25n);
    expect(parseTokenAmount("7", 0)).toBe(7n);
    expect(formatTokenAmount(parseTokenAmount("1234.5", 18), eth)).toBe("1,234.5 ETH");
  });

  it("refuses what a person may have mistyped, naming the field", () => {
    for (const bad of ["", "-1", "1e18", "1,000", "1.2.3", ".5", "01", "0x10", "1 ETH"])
      expect(() => parseTokenAmount(bad, 18, "fee"), bad).toThrow(/^fee must be/);
    expect(() => parseTokenAmount("0.0000001", 6)).toThrow("amount has more than 6 decimals");
    expect(() => parseTokenAmount("1".repeat(80), 0)).toThrow(/exceeds uint256/);
  });
});
