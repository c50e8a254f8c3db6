/**
 * Deposit-address balances the sweep may move: per (address, asset), what the ledger credited for
 * confirmed chain facts to that address (deposit transfers not compensated) minus what booked
 * sweeps moved out. Only credited value counts, so a sweep never books value the ledger has not
 * credited; value that arrived but is not yet credited is still moved by the forwarder (it sweeps
 * whole balances) and simply makes the difference negative until the credit lands.
 *
 * Reads ledger.transfers and chain.transfers by their documented contracts (docs/contracts.md).
 */
import type pg from "pg";
import type { Hex } from "viem";
import type { SweepCandidate } from "./planSweeps.js";

type Queryable = Pick<pg.ClientBase, "query">;

const CANDIDATES = `
WITH credited AS (
  SELECT f.to_address AS address, f.asset, sum(l.amount) AS amount
  FROM ledger.transfers l
  JOIN chain.transfers f
    ON f.chain_id = l.chain_id AND f.tx_hash = l.tx_hash AND f.position = l.position
   AND f.status = 'confirmed'
  JOIN custody.deposit_addresses d ON d.chain_id = f.chain_id AND d.address = f.to_address
  WHERE l.chain_id = $1 AND l.kind = 'deposit' AND l.type = 'single'
    AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.reverses_id = l.id)
  GROUP BY f.to_address, f.asset
), swept AS (
  SELECT i.address, i.asset, sum(i.swept) AS amount
  FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
  WHERE s.chain_id = $1 AND s.status = 'booked'
  GROUP BY i.address, i.asset
)
SELECT c.address, d.salt, d.factory, c.asset, (c.amount - coalesce(s.amount, 0))::text AS balance
FROM credited c
JOIN custody.deposit_addresses d ON d.chain_id = $1 AND d.address = c.address
LEFT JOIN swept s ON s.address = c.address AND s.asset = c.asset
WHERE c.amount - coalesce(s.amount, 0) > 0
  -- an address in an open sweep waits for that sweep to settle
  AND NOT EXISTS (
    SELECT 1 FROM custody.sweep_items oi JOIN custody.sweeps os ON os.id = oi.sweep_id
    WHERE os.chain_id = $1 AND os.status = 'open' AND oi.address = c.address
  )
  -- an address whose sweep failed recently waits: the cause (gas, a node) may not have passed,
  -- and retrying every tick would only burn gas
  AND NOT EXISTS (
    SELECT 1 FROM custody.sweep_items fi JOIN custody.sweeps fs ON fs.id = fi.sweep_id
    WHERE fs.chain_id = $1 AND fs.status = 'failed' AND fi.address = c.address
      AND fs.settled_at > now() - make_interval(secs => $2::double precision / 1000)
  )`;

export async function readSweepCandidates(
  client: Queryable,
  chainId: number,
  /** Addresses of a sweep that failed less than this long ago are left out. */
  failedRetryAfterMs: number,
): Promise<SweepCandidate[]> {
  const { rows } = await client.query<{
    address: string;
    salt: string;
    factory: string;
    asset: string;
    balance: string;
  }>(CANDIDATES, [chainId, failedRetryAfterMs]);
  return rows.map((r) => ({
    address: r.address,
    salt: r.salt as Hex,
    factory: r.factory,
    asset: r.asset,
    balance: BigInt(r.balance),
  }));
}
