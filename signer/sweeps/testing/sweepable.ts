/**
 * The running sweepable balances (custody.sweepable_balances) recomputed from history: standing
 * deposit credits and operator-credited inflows to each forwarder minus what booked sweeps moved
 * out of it. Tests compare the two
 * after credits, sweeps, failures and reorgs: any drift is a bug in the triggers or in booking.
 */
import type pg from "pg";

const DRIFT = `
WITH history AS (
  SELECT chain_id, address, asset, sum(amount) AS balance FROM (
    SELECT c.chain_id, c.to_address AS address, c.asset, c.amount
      FROM ledger.deposit_credits c
      JOIN chain.deposit_forwarders d ON d.chain_id = c.chain_id AND d.address = c.to_address
     WHERE c.state = 'credited'
    UNION ALL
    SELECT n.chain_id, n.address, n.asset, n.amount
      FROM ledger.credited_inflows n
      JOIN chain.deposit_forwarders d ON d.chain_id = n.chain_id AND d.address = n.address
    UNION ALL
    SELECT i.chain_id, i.address, i.asset, -i.swept
      FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
     WHERE s.status = 'booked' AND i.swept > 0) x
  GROUP BY chain_id, address, asset)
SELECT coalesce(h.chain_id, r.chain_id)::int AS chain_id, coalesce(h.address, r.address) AS address,
  coalesce(h.asset, r.asset) AS asset, coalesce(h.balance, 0) AS history,
  coalesce(r.balance, 0) AS running
FROM history h
FULL JOIN custody.sweepable_balances r
  ON r.chain_id = h.chain_id AND r.address = h.address AND r.asset = h.asset
WHERE coalesce(h.balance, 0) <> coalesce(r.balance, 0)`;

/** A pair whose running balance (NUMERIC, so a bigint) is not what history sums to. */
export type DriftRow = {
  chain_id: number;
  address: string;
  asset: string;
  history: bigint;
  running: bigint;
};

/** Pairs whose running balance differs from history (empty when they agree), and how many pairs there are. */
export async function sweepableDrift(
  pool: Pick<pg.Pool, "query">,
): Promise<{ drift: DriftRow[]; pairs: number }> {
  const { rows } = await pool.query<DriftRow>(DRIFT);
  const n = await pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM custody.sweepable_balances",
  );
  return { drift: rows, pairs: n.rows[0]!.n };
}
