import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import { EMPTY_TRANSACTIONS_ROOT, transactionsLeftOut } from "./blockBody.js";

const ROOT: Hex = `0x${"ab".repeat(32)}`;

describe("transactionsLeftOut", () => {
  it("is true only for no transactions under a header that holds some", () => {
    expect(transactionsLeftOut({ transactions: [], transactionsRoot: ROOT })).toBe(true);
    expect(transactionsLeftOut({ transactions: [{}], transactionsRoot: ROOT })).toBe(false);
    expect(
      transactionsLeftOut({ transactions: [], transactionsRoot: EMPTY_TRANSACTIONS_ROOT }),
    ).toBe(false);
    expect(
      transactionsLeftOut({
        transactions: [],
        transactionsRoot: `0x${EMPTY_TRANSACTIONS_ROOT.slice(2).toUpperCase()}`,
      }),
    ).toBe(false);
  });

  it("takes an answer without transactionsRoot as it is (it cannot tell)", () => {
    expect(transactionsLeftOut({ transactions: [] })).toBe(false);
  });
});
