/**
 * The sweep side of the running sweepable balances (custody.sweepable_balances, migration 0103):
 * a booked sweep takes what it moved off its addresses, an unbooked one (reorged out) gives it
 * back, in the transaction that books or unbooks it. The credit side is kept by triggers on
 * ledger.deposit_credits.
 */
import type pg from "pg";

type Queryable = Pick<pg.ClientBase, "query">;

// In key order, like the credit triggers, so concurrent writers lock rows in one order.
const ADJUST = `
INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
SELECT i.chain_id, i.address, i.asset, $2::int * sum(i.swept)
  FROM custody.sweep_items i
 WHERE i.sweep_id = $1 AND i.swept > 0
 GROUP BY i.chain_id, i.address, i.asset
 ORDER BY i.chain_id, i.address, i.asset
ON CONFLICT (chain_id, address, asset) DO UPDATE
  SET balance = custody.sweepable_balances.balance + EXCLUDED.balance, updated_at = now()`;

/** A sweep was booked: what its items swept is no longer sweepable. Call after its items are written. */
export async function sweepBooked(client: Queryable, sweepId: string): Promise<void> {
  await client.query(ADJUST, [sweepId, -1]);
}

/** A booked sweep was reversed: what it swept is sweepable again. Call before its items are reset. */
export async function sweepUnbooked(client: Queryable, sweepId: string): Promise<void> {
  await client.query(ADJUST, [sweepId, 1]);
}
