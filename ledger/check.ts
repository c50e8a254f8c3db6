/**
 * The ledger check (`custody-node ledger check`): proves, per asset, that debits equal credits
 * (posted and pending), that every account's stored balance equals the sum of its transfers, that
 * every account's pending balance equals its open holds, that no user account is negative, and that
 * every post, void or expiry resolves a hold, one at most, posting no more than it held. The ledger's
 * rules enforce all of this on write; the check finds what slipped past them (manual SQL, a bug, a
 * restore).
 */
import { formatAmount } from "../foundation/amounts.js";
import { type Pool, withTransaction } from "../foundation/db.js";

export type CheckProblem = {
  type:
    | "unbalanced_asset"
    | "account_balance_mismatch"
    | "holds_mismatch"
    | "negative_user_account"
    | "post_exceeds_hold"
    | "hold_resolved_twice"
    | "resolution_without_hold";
  assetId: string;
  account?: string;
  detail: string;
};

export type CheckReport = {
  ok: boolean;
  assets: {
    assetId: string;
    accounts: number;
    debitsPosted: string;
    creditsPosted: string;
    debitsPending: string;
    creditsPending: string;
  }[];
  problems: CheckProblem[];
  checkedAt: string;
};

const TOTALS = `
SELECT asset_id, count(*)::int AS accounts,
  sum(debits_posted) AS dpo, sum(credits_posted) AS cpo,
  sum(debits_pending) AS dp, sum(credits_pending) AS cp
FROM ledger.accounts GROUP BY asset_id ORDER BY asset_id`;

// Stored balances against the sums of transfers, both sides.
const BALANCES = `
WITH sides AS (
  SELECT debit_account_id AS account_id, posted_delta AS dpo, pending_delta AS dp, 0::numeric AS cpo, 0::numeric AS cp
  FROM ledger.transfers
  UNION ALL
  SELECT credit_account_id, 0, 0, posted_delta, pending_delta FROM ledger.transfers
), sums AS (
  SELECT account_id, sum(dpo) AS dpo, sum(dp) AS dp, sum(cpo) AS cpo, sum(cp) AS cp FROM sides GROUP BY account_id
)
SELECT a.asset_id, a.name,
  a.debits_posted, a.debits_pending, a.credits_posted, a.credits_pending,
  COALESCE(s.dpo, 0) AS sum_dpo, COALESCE(s.dp, 0) AS sum_dp,
  COALESCE(s.cpo, 0) AS sum_cpo, COALESCE(s.cp, 0) AS sum_cp
FROM ledger.accounts a FULL JOIN sums s ON s.account_id = a.id
WHERE a.id IS NULL
   OR a.debits_posted <> COALESCE(s.dpo, 0) OR a.debits_pending <> COALESCE(s.dp, 0)
   OR a.credits_posted <> COALESCE(s.cpo, 0) OR a.credits_pending <> COALESCE(s.cp, 0)`;

const HOLDS = `
WITH open AS (
  SELECT debit_account_id AS account_id, amount AS d, 0::numeric AS c FROM ledger.holds WHERE state = 'pending'
  UNION ALL
  SELECT credit_account_id, 0, amount FROM ledger.holds WHERE state = 'pending'
), sums AS (SELECT account_id, sum(d) AS d, sum(c) AS c FROM open GROUP BY account_id)
SELECT a.asset_id, a.name, a.debits_pending, a.credits_pending,
  COALESCE(s.d, 0) AS held_d, COALESCE(s.c, 0) AS held_c
FROM ledger.accounts a LEFT JOIN sums s ON s.account_id = a.id
WHERE a.debits_pending <> COALESCE(s.d, 0) OR a.credits_pending <> COALESCE(s.c, 0)`;

const NEGATIVE = `
SELECT asset_id, name, credits_posted - debits_posted - debits_pending AS available
FROM ledger.accounts
WHERE kind = 'user' AND credits_posted - debits_posted - debits_pending < 0`;

// Each hold with its resolutions, from the immutable transfers (the hold's amount is its pending
// transfer's). One pass over the table and one group per hold, as BALANCES reads it; accounts are
// joined for the groups reported only.
const RESOLUTIONS = `
WITH r AS (
  SELECT COALESCE(pending_id, id) AS hold_id, max(debit_account_id) AS debit_account_id,
    max(amount) FILTER (WHERE type = 'pending') AS held,
    max(amount) FILTER (WHERE type = 'post') AS posted,
    count(*) FILTER (WHERE type = 'pending')::int AS holds,
    count(*) FILTER (WHERE type <> 'pending')::int AS resolutions
  FROM ledger.transfers WHERE type <> 'single'
  GROUP BY 1
  HAVING count(*) FILTER (WHERE type = 'pending') = 0
    OR count(*) FILTER (WHERE type <> 'pending') > 1
    OR max(amount) FILTER (WHERE type = 'post') > max(amount) FILTER (WHERE type = 'pending')
)
SELECT r.hold_id::text, a.asset_id, a.name, r.held, r.posted, r.holds, r.resolutions
FROM r LEFT JOIN ledger.accounts a ON a.id = r.debit_account_id
ORDER BY r.hold_id`;

/**
 * Runs in one REPEATABLE READ transaction so every query sees the same snapshot while transfers
 * keep flowing.
 */
export async function checkLedger(pool: Pool): Promise<CheckReport> {
  const report = await withTransaction(
    pool,
    async (client) => {
      const problems: CheckProblem[] = [];
      const totals = await client.query<{
        asset_id: string;
        accounts: number;
        dpo: bigint;
        cpo: bigint;
        dp: bigint;
        cp: bigint;
      }>(TOTALS);
      for (const t of totals.rows) {
        if (t.dpo !== t.cpo || t.dp !== t.cp) {
          problems.push({
            type: "unbalanced_asset",
            assetId: t.asset_id,
            detail: `posted debits ${t.dpo} vs credits ${t.cpo}; pending debits ${t.dp} vs credits ${t.cp}`,
          });
        }
      }
      // A FULL JOIN: the account's side is NULL when transfers name an account that is missing.
      const balances = await client.query<{
        asset_id: string | null;
        name: string | null;
        debits_posted: bigint | null;
        debits_pending: bigint | null;
        credits_posted: bigint | null;
        credits_pending: bigint | null;
        sum_dpo: bigint;
        sum_dp: bigint;
        sum_cpo: bigint;
        sum_cp: bigint;
      }>(BALANCES);
      for (const b of balances.rows) {
        problems.push({
          type: "account_balance_mismatch",
          assetId: b.asset_id ?? "(no account)",
          account: b.name ?? "(transfers name a missing account)",
          detail: `stored posted ${b.debits_posted}/${b.credits_posted} pending ${b.debits_pending}/${b.credits_pending}; transfers posted ${b.sum_dpo}/${b.sum_cpo} pending ${b.sum_dp}/${b.sum_cp} (debits/credits)`,
        });
      }
      const holds = await client.query<{
        asset_id: string;
        name: string;
        debits_pending: bigint;
        credits_pending: bigint;
        held_d: bigint;
        held_c: bigint;
      }>(HOLDS);
      for (const h of holds.rows) {
        problems.push({
          type: "holds_mismatch",
          assetId: h.asset_id ?? "",
          account: h.name ?? "",
          detail: `pending ${h.debits_pending}/${h.credits_pending} but open holds ${h.held_d}/${h.held_c} (debits/credits)`,
        });
      }
      const negative = await client.query<{ asset_id: string; name: string; available: bigint }>(
        NEGATIVE,
      );
      for (const n of negative.rows) {
        problems.push({
          type: "negative_user_account",
          assetId: n.asset_id,
          account: n.name,
          detail: `available ${n.available}`,
        });
      }
      const resolutions = await client.query<{
        hold_id: string;
        asset_id: string | null;
        name: string | null;
        held: bigint | null;
        posted: bigint | null;
        holds: number;
        resolutions: number;
      }>(RESOLUTIONS);
      for (const r of resolutions.rows) {
        const where = { assetId: r.asset_id ?? "(no account)", account: r.name ?? "(missing)" };
        if (r.holds === 0) {
          problems.push({
            type: "resolution_without_hold",
            ...where,
            detail: `${r.resolutions} post, void or expire transfer(s) name ${r.hold_id}, which is no hold`,
          });
          continue;
        }
        if (r.resolutions > 1)
          problems.push({
            type: "hold_resolved_twice",
            ...where,
            detail: `hold ${r.hold_id} has ${r.resolutions} resolutions (post, void or expire)`,
          });
        if (r.held !== null && r.posted !== null && r.posted > r.held)
          problems.push({
            type: "post_exceeds_hold",
            ...where,
            detail: `hold ${r.hold_id} of ${r.held} posted ${r.posted}`,
          });
      }
      return { totals: totals.rows, problems };
    },
    { isolation: "repeatable read", readOnly: true },
  );
  return {
    ok: report.problems.length === 0,
    assets: report.totals.map((t) => ({
      assetId: t.asset_id,
      accounts: t.accounts,
      debitsPosted: formatAmount(t.dpo),
      creditsPosted: formatAmount(t.cpo),
      debitsPending: formatAmount(t.dp),
      creditsPending: formatAmount(t.cp),
    })),
    problems: report.problems,
    checkedAt: new Date().toISOString(),
  };
}
