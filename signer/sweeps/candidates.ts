/**
 * Deposit-address balances the ledger says are sweepable: per (address, asset), the standing
 * deposit credits to that address (confirmed, not held by a reorg, not reversed) and the
 * unattributed inflows an operator credited to it (migration 0109) minus what booked
 * sweeps moved out, kept as a running balance (custody.sweepable_balances, migration 0103) so a
 * planning pass reads only pairs with something to sweep, never the credit history. The planner
 * caps this by the on-chain balance (startSweeps.ts), so an address whose credit exceeds what it
 * holds is swept for what it holds, or not at all. Value that arrived but is not yet credited is
 * still moved by the forwarder (it sweeps whole balances) and simply makes the difference negative
 * until the credit lands.
 */
import type pg from "pg";
import type { Hex } from "viem";
import type { SweepCandidate } from "./planSweeps.js";

type Queryable = Pick<pg.ClientBase, "query">;

// Pairs at or above their asset's threshold ($4 assets, $5 thresholds), in address order (the
// partial index on `positive`, migration 0105; a stable plan after a crash), at most $6 per pass.
const CANDIDATES = `
SELECT c.address, d.salt, d.factory, c.asset, c.balance
FROM custody.sweepable_balances c
JOIN unnest($4::text[], $5::numeric[]) AS t(asset, threshold) ON t.asset = c.asset
JOIN chain.deposit_forwarders d ON d.chain_id = c.chain_id AND d.address = c.address
WHERE c.chain_id = $1 AND c.positive AND c.balance >= t.threshold
  -- an address in an open sweep waits for that sweep to settle
  AND NOT EXISTS (
    SELECT 1 FROM custody.sweep_items oi JOIN custody.sweeps os ON os.id = oi.sweep_id
    WHERE oi.chain_id = $1 AND oi.address = c.address AND os.status = 'open'
  )
  -- an address whose sweep failed recently waits: the cause (gas, a node) may not have passed,
  -- and retrying every tick would only burn gas
  AND NOT EXISTS (
    SELECT 1 FROM custody.sweep_items fi JOIN custody.sweeps fs ON fs.id = fi.sweep_id
    WHERE fi.chain_id = $1 AND fi.address = c.address AND fs.status = 'failed'
      AND fs.settled_at > now() - make_interval(secs => $2::double precision / 1000)
  )
  -- an (address, asset) whose latest booked sweeps moved none of it waits: the chain did not let
  -- it move (a token that blacklisted or paused the address, value gone before the sweep mined),
  -- and sweeping it again every interval would only burn gas. The wait doubles with each such
  -- sweep in a row since the last one that moved some of it ($3 after one, capped at $7): a
  -- blacklisted address is tried ever more rarely, never given up (the issuer may lift it).
  AND NOT EXISTS (
    SELECT 1 FROM (
      SELECT count(*) AS streak, max(es.settled_at) AS last
      FROM custody.sweep_items ei JOIN custody.sweeps es ON es.id = ei.sweep_id
      WHERE ei.chain_id = $1 AND ei.address = c.address AND ei.asset = c.asset
        AND es.status = 'booked' AND ei.planned > 0 AND ei.swept = 0
        AND es.settled_at > COALESCE((
          SELECT max(ms.settled_at)
          FROM custody.sweep_items mi JOIN custody.sweeps ms ON ms.id = mi.sweep_id
          WHERE mi.chain_id = $1 AND mi.address = c.address AND mi.asset = c.asset
            AND ms.status = 'booked' AND mi.swept > 0
        ), '-infinity')
    ) empty
    WHERE empty.streak > 0
      AND empty.last > now() - make_interval(secs => LEAST(
        $7::double precision,
        $3::double precision * power(2, LEAST(empty.streak - 1, 40))
      ) / 1000)
  )
ORDER BY c.address, c.asset
LIMIT $6`;

export async function readSweepCandidates(
  client: Queryable,
  chainId: number,
  /** Addresses of a sweep that failed less than this long ago are left out. */
  failedRetryAfterMs: number,
  /**
   * (address, asset) pairs whose latest booked sweep moved nothing this long ago are left out,
   * twice as long for each such sweep in a row before it…
   */
  emptyRetryAfterMs: number,
  /** Per lowercase asset, the least balance worth sweeping; other assets are not read. */
  thresholds: ReadonlyMap<string, bigint>,
  /** At most this many pairs per pass (the next pass takes the next ones). */
  limit: number,
  /** …but never longer than this. */
  emptyRetryMaxMs: number,
): Promise<SweepCandidate[]> {
  const { rows } = await client.query<{
    address: string;
    salt: string;
    factory: string;
    asset: string;
    balance: bigint;
  }>(CANDIDATES, [
    chainId,
    failedRetryAfterMs,
    emptyRetryAfterMs,
    [...thresholds.keys()],
    [...thresholds.values()].map(String),
    limit,
    emptyRetryMaxMs,
  ]);
  return rows.map((r) => ({
    address: r.address,
    salt: r.salt as Hex,
    factory: r.factory,
    asset: r.asset,
    balance: r.balance,
  }));
}
