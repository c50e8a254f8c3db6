/**
 * The customers' balances of one asset as reconciliation counts them: posted, less pending reorg
 * holds on them. Read by attestation (ledger/attest) for its liabilities.
 */
import type { PoolClient } from "../foundation/db.js";

/** Customer balances of one asset: posted, less pending reorg holds on them (recon's view). */
export async function loadCustomerBalances(
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
  const held = await client.query<{ name: string; amount: bigint }>(
    `SELECT a.name, sum(h.amount) AS amount
       FROM ledger.holds h
       JOIN ledger.transfers t ON t.id = h.transfer_id
       JOIN ledger.accounts a ON a.id = h.debit_account_id
      WHERE t.asset_id = $1 AND h.state = 'pending' AND t.kind = 'reorg_hold' AND a.kind = 'user'
      GROUP BY a.name`,
    [assetId],
  );
  for (const row of held.rows) {
    const id = row.name.slice("user:".length);
    balances.set(id, (balances.get(id) ?? 0n) - row.amount);
  }
  return balances;
}
