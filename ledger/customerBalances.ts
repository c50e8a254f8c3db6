/**
 * The customers' balances of one asset, as the ledger holds them now: posted balances, and the
 * reorg holds on them with the journal positions that placed and resolved them. Reconciliation
 * (ledger/recon/customerLiabilities.ts) winds these back to what one of its runs saw, for
 * attestation's liabilities (ledger/attest).
 */
import type { PoolClient } from "../foundation/db.js";

/** Each customer's posted balance of the asset now (credits − debits), by customer id. */
export async function loadPostedCustomerBalances(
  client: Pick<PoolClient, "query">,
  assetId: string,
): Promise<Map<string, bigint>> {
  const r = await client.query<{ name: string; balance: bigint }>(
    `SELECT name, credits_posted - debits_posted AS balance
       FROM ledger.accounts WHERE asset_id = $1 AND kind = 'user' ORDER BY name`,
    [assetId],
  );
  const balances = new Map<string, bigint>();
  for (const row of r.rows) balances.set(row.name.slice("user:".length), row.balance);
  return balances;
}

/** A reorg hold on a customer: the journal seq that placed it and the one that resolved it. */
export type CustomerReorgHold = {
  customerId: string;
  amount: bigint;
  holdSeq: number;
  /** The post, void or expiry; null while the hold is pending. */
  resolvedSeq: number | null;
};

/**
 * The reorg holds on customers of the asset that are pending now or were resolved by a journal
 * entry above `resolvedAfterSeq` (few: each one is a reorg of a credited deposit).
 */
export async function listCustomerReorgHolds(
  client: Pick<PoolClient, "query">,
  assetId: string,
  resolvedAfterSeq: number,
): Promise<CustomerReorgHold[]> {
  const r = await client.query<{
    name: string;
    amount: bigint;
    hold_seq: string;
    resolved_seq: string | null;
  }>(
    `SELECT a.name, h.amount, t.seq::text AS hold_seq, NULL AS resolved_seq
       FROM ledger.holds h
       JOIN ledger.transfers t ON t.id = h.transfer_id
       JOIN ledger.accounts a ON a.id = h.debit_account_id
      WHERE t.asset_id = $1 AND h.state = 'pending' AND t.kind = 'reorg_hold' AND a.kind = 'user'
     UNION ALL
     SELECT a.name, h.amount, t.seq::text, r.seq::text
       FROM ledger.transfers r
       JOIN ledger.holds h ON h.transfer_id = r.pending_id
       JOIN ledger.transfers t ON t.id = h.transfer_id
       JOIN ledger.accounts a ON a.id = h.debit_account_id
      WHERE r.seq > $2 AND r.pending_id IS NOT NULL AND r.asset_id = $1
        AND t.kind = 'reorg_hold' AND a.kind = 'user'`,
    [assetId, resolvedAfterSeq],
  );
  return r.rows.map((x) => ({
    customerId: x.name.slice("user:".length),
    amount: x.amount,
    holdSeq: Number(x.hold_seq),
    resolvedSeq: x.resolved_seq === null ? null : Number(x.resolved_seq),
  }));
}
