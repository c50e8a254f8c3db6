/**
 * A `ledger.accounts` row as the ledger reads it: one column list, one row type and one mapper,
 * for the locked batch read (`runBatch`) and the account queries alike.
 */
import type { AccountState } from "./applyBatch.js";
import { availableBalance } from "./chartOfAccounts.js";
import type { Account } from "./types.js";

/**
 * Unqualified columns, for `SELECT ${ACCOUNT_COLUMNS} FROM ledger.accounts`. The balances are
 * NUMERIC and arrive as bigints (foundation/db.ts' PG_TYPES); the id is int8, which pg gives as
 * a string, so it is read as text and converted here.
 */
export const ACCOUNT_COLUMNS = `id::text, asset_id, name, kind, normal, debits_must_not_exceed_credits,
  credits_must_not_exceed_debits, frozen, debits_pending, debits_posted, credits_pending,
  credits_posted`;

export type AccountRow = {
  id: string;
  asset_id: string;
  name: string;
  kind: Account["kind"];
  normal: Account["normal"];
  debits_must_not_exceed_credits: boolean;
  credits_must_not_exceed_debits: boolean;
  frozen: boolean;
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
};

/** What the batch's rules need of an account. */
export function toAccountState(r: AccountRow): AccountState {
  return {
    id: BigInt(r.id),
    assetId: r.asset_id,
    name: r.name,
    debitsMustNotExceedCredits: r.debits_must_not_exceed_credits,
    creditsMustNotExceedDebits: r.credits_must_not_exceed_debits,
    frozen: r.frozen,
    debitsPending: r.debits_pending,
    debitsPosted: r.debits_posted,
    creditsPending: r.credits_pending,
    creditsPosted: r.credits_posted,
  };
}

/** The account as the ledger's API returns it: with its class and its available balance. */
export function toAccount(r: AccountRow): Account {
  const s = toAccountState(r);
  const b = {
    debitsPending: s.debitsPending,
    debitsPosted: s.debitsPosted,
    creditsPending: s.creditsPending,
    creditsPosted: s.creditsPosted,
  };
  return {
    id: s.id,
    assetId: s.assetId,
    name: s.name,
    kind: r.kind,
    normal: r.normal,
    debitsMustNotExceedCredits: s.debitsMustNotExceedCredits,
    creditsMustNotExceedDebits: s.creditsMustNotExceedDebits,
    frozen: s.frozen,
    ...b,
    available: availableBalance(r.normal, b),
  };
}
