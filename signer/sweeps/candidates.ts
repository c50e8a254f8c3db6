/**
 * Deposit-address balances the ledger says are sweepable: per (address, asset), what the ledger
 * credited for confirmed chain facts to that address (deposit transfers not compensated) minus what
 * booked sweeps moved out. The planner caps this by the on-chain balance (startSweeps.ts), so an
 * address whose credit exceeds what it holds is swept for what it holds, or not at all. Value that
 * arrived but is not yet credited is still moved by the forwarder (it sweeps whole balances) and
 * simply makes the difference negative until the credit lands.
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
  )
  -- an (address, asset) whose latest booked sweep moved none of it waits: the chain did not let it
  -- move (a paused or blocklisting token, value gone before the sweep mined), and sweeping it
  -- again every interval would only burn gas
  AND NOT EXISTS (
    SELECT 1 FROM (
      SELECT ei.swept, es.settled_at
      FROM custody.sweep_items ei JOIN custody.sweeps es ON es.id = ei.sweep_id
      WHERE es.chain_id = $1 AND es.status = 'booked' AND ei.address = c.address
        AND ei.asset = c.asset AND ei.planned > 0
      ORDER BY es.settled_at DESC LIMIT 1
    ) last
    WHERE last.swept = 0
      AND last.settled_at > now() - make_interval(secs => $3::double precision / 1000)
  )`;

export async function readSweepCandidates(
  client: Queryable,
  chainId: number,
  /** Addresses of a sweep that failed less than this long ago are left out. */
  failedRetryAfterMs: number,
  /** (address, asset) pairs whose latest booked sweep moved nothing this long ago are left out. */
  emptyRetryAfterMs: number = failedRetryAfterMs,
): Promise<SweepCandidate[]> {
  const { rows } = await client.query<{
    address: string;
    salt: string;
    factory: string;
    asset: string;
    balance: string;
  }>(CANDIDATES, [chainId, failedRetryAfterMs, emptyRetryAfterMs]);
  return rows.map((r) => ({
    address: r.address,
    salt: r.salt as Hex,
    factory: r.factory,
    asset: r.asset,
    balance: BigInt(r.balance),
  }));
}
