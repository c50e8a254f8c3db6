import { describe, expect, it } from "vitest";
import { type AccountRow, toAccount, toAccountState } from "./accountRow.js";

const row: AccountRow = {
  id: "7",
  asset_id: "31337:0x0000000000000000000000000000000000000000",
  name: "user:42",
  kind: "user",
  normal: "credit",
  debits_must_not_exceed_credits: true,
  credits_must_not_exceed_debits: false,
  frozen: false,
  debits_pending: 5n,
  debits_posted: 10n,
  credits_pending: 1n,
  credits_posted: 100000000000000000000000000000n,
};

describe("the ledger.accounts row", () => {
  it("maps to the batch's account state (bigints, no class)", () => {
    expect(toAccountState(row)).toStrictEqual({
      id: 7n,
      assetId: row.asset_id,
      name: "user:42",
      debitsMustNotExceedCredits: true,
      creditsMustNotExceedDebits: false,
      frozen: false,
      debitsPending: 5n,
      debitsPosted: 10n,
      creditsPending: 1n,
      creditsPosted: 100000000000000000000000000000n,
    });
  });

  it("maps to the API's account: the state plus its class and available balance", () => {
    const a = toAccount(row);
    expect(a).toMatchObject({ ...toAccountState(row), kind: "user", normal: "credit" });
    expect(a.available).toBe(100000000000000000000000000000n - 10n - 5n);
    expect(toAccount({ ...row, normal: "debit", kind: "custody" }).available).toBe(
      10n - 100000000000000000000000000000n - 1n,
    );
  });
});
