import type { AccountFlags } from "./types.js";

export type AccountClass = AccountFlags & {
  kind: "user" | "custody" | "fees" | "suspense" | "receivable" | "treasury" | "expense";
  normal: "credit" | "debit";
};

const ADDRESS = "0x[0-9a-f]{40}";
const NAMES: [RegExp, AccountClass][] = [
  // Customer liabilities: credit-normal and never negative.
  [
    /^user:[^\s:][^\s]{0,127}$/,
    {
      kind: "user",
      normal: "credit",
      debitsMustNotExceedCredits: true,
      creditsMustNotExceedDebits: false,
    },
  ],
  // Custody assets: debit-normal. No limit: chain events may be booked in any order (a sweep can
  // be confirmed before the deposits it moves are), and reconciliation is what proves them.
  [
    new RegExp(`^(custody:deposits|custody:hot:${ADDRESS}|custody:cold:${ADDRESS})$`),
    {
      kind: "custody",
      normal: "debit",
      debitsMustNotExceedCredits: false,
      creditsMustNotExceedDebits: false,
    },
  ],
  [
    /^fees:gas$/,
    {
      kind: "fees",
      normal: "debit",
      debitsMustNotExceedCredits: false,
      creditsMustNotExceedDebits: false,
    },
  ],
  // What a customer owes after a reorg removed a deposit they had already withdrawn (DESIGN "Money
  // flows"): an asset of the custody, debit-normal; should be zero, each one is an alert.
  [
    /^receivable:reorg:[^\s:][^\s]{0,127}$/,
    {
      kind: "receivable",
      normal: "debit",
      debitsMustNotExceedCredits: false,
      creditsMustNotExceedDebits: false,
    },
  ],
  // What the custody lost when the treasury wrote off a reorg receivable it will not recover
  // (ledger/reorgWriteOff.ts): an expense, debit-normal, no limit; each booking is audited.
  [
    /^expense:reorg_loss$/,
    {
      kind: "expense",
      normal: "debit",
      debitsMustNotExceedCredits: false,
      creditsMustNotExceedDebits: false,
    },
  ],
  // The operator's own money in custody (hot-wallet funding minus defunding): equity,
  // credit-normal, no limit (ledger/treasury.ts books it against a chain fact each time).
  [
    /^treasury$/,
    {
      kind: "treasury",
      normal: "credit",
      debitsMustNotExceedCredits: false,
      creditsMustNotExceedDebits: false,
    },
  ],
  [
    /^suspense$/,
    {
      kind: "suspense",
      normal: "debit",
      debitsMustNotExceedCredits: false,
      creditsMustNotExceedDebits: false,
    },
  ],
];

/** The class of an account name per the chart of accounts, or undefined for an unknown name. */
export function classifyAccount(name: string): AccountClass | undefined {
  for (const [pattern, cls] of NAMES) if (pattern.test(name)) return cls;
  return undefined;
}

/** Credit-normal: credits − debits − pending debits; debit-normal: the mirror image. */
export function availableBalance(
  normal: "credit" | "debit",
  b: { debitsPending: bigint; debitsPosted: bigint; creditsPending: bigint; creditsPosted: bigint },
): bigint {
  return normal === "credit"
    ? b.creditsPosted - b.debitsPosted - b.debitsPending
    : b.debitsPosted - b.creditsPosted - b.creditsPending;
}
