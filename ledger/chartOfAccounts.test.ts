import { describe, expect, it } from "vitest";
import { availableBalance, classifyAccount } from "./chartOfAccounts.js";

describe("classifyAccount", () => {
  it("knows the chart of accounts", () => {
    expect(classifyAccount("user:42")).toMatchObject({
      kind: "user",
      normal: "credit",
      debitsMustNotExceedCredits: true,
    });
    expect(classifyAccount("custody:deposits")?.kind).toBe("custody");
    expect(classifyAccount(`custody:hot:0x${"ab".repeat(20)}`)?.normal).toBe("debit");
    expect(classifyAccount(`custody:cold:0x${"cd".repeat(20)}`)?.kind).toBe("custody");
    expect(classifyAccount("fees:gas")?.kind).toBe("fees");
    expect(classifyAccount("suspense")?.kind).toBe("suspense");
    expect(classifyAccount("treasury")).toMatchObject({ kind: "treasury", normal: "credit" });
    expect(classifyAccount("receivable:reorg:42")).toMatchObject({
      kind: "receivable",
      normal: "debit",
      debitsMustNotExceedCredits: false,
    });
    expect(classifyAccount("expense:reorg_loss")).toMatchObject({
      kind: "expense",
      normal: "debit",
      debitsMustNotExceedCredits: false,
    });
  });

  it("rejects names outside the chart", () => {
    expect(classifyAccount("user:")).toBeUndefined();
    expect(classifyAccount("custody:hot:0xABC")).toBeUndefined();
    expect(classifyAccount(`custody:hot:0x${"AB".repeat(20)}`)).toBeUndefined();
    expect(classifyAccount("fees")).toBeUndefined();
    expect(classifyAccount("treasury:ops")).toBeUndefined();
    expect(classifyAccount("receivable:reorg:")).toBeUndefined();
    expect(classifyAccount("receivable:42")).toBeUndefined();
    expect(classifyAccount("expense:other")).toBeUndefined();
  });
});

describe("availableBalance", () => {
  const b = { debitsPending: 5n, debitsPosted: 10n, creditsPending: 7n, creditsPosted: 100n };
  it("subtracts pending debits from a credit-normal account", () => {
    expect(availableBalance("credit", b)).toBe(85n);
  });
  it("mirrors for a debit-normal account", () => {
    expect(availableBalance("debit", b)).toBe(-97n);
  });
});
