/**
 * Scale measurement of sweep planning (issue 15), for the scale bench (ops/bench/scale.ts) on its
 * seeded database: the database part of one planning pass as startSweeps runs it — the sweepable
 * pairs at or above their threshold (custody.sweepable_balances and the open / failed / empty
 * back-off checks against sweep history), read once with no lock (which addresses to read on
 * chain) and again under the per-chain advisory lock, and the pure plan. The on-chain balance
 * reads (RPC) and the request writes are not part of it.
 *
 * State, built inside one transaction that is rolled back at the end (the seed is unchanged): the
 * chain's deposit addresses as forwarders, every one swept once before (a booked sweep item each,
 * balance 0 after it), and `pending` of them credited again since (balance above the threshold).
 */
import type { Pool } from "../../foundation/db.js";
import { readSweepCandidates } from "./candidates.js";
import { planSweeps, unchangedSince } from "./planSweeps.js";
import { SWEEP_LOCK } from "./startSweeps.js";

const ZERO = "0x0000000000000000000000000000000000000000";
const FACTORY = `0x${"5d".repeat(20)}`;
const HOT = `0x${"5e".repeat(20)}`;

export type SweepPlanningMeasurement = {
  /** Median over the runs (ms). */
  ms: number;
  runsMs: number[];
  /** Deposit addresses of the chain (each with sweep history). */
  addresses: number;
  /** Pairs read per pass (at most the pass limit). */
  candidates: number;
  /** Sweeps planned per pass. */
  sweeps: number;
};

export async function measureSweepPlanning({
  pool,
  chainId,
  pending = 5_000,
  batchSize = 50,
  runs = 5,
}: {
  pool: Pool;
  chainId: number;
  /** Addresses credited since their last sweep. */
  pending?: number;
  /** The chain's sweepBatchSize (a pass reads at most ten batches, as startSweeps). */
  batchSize?: number;
  runs?: number;
}): Promise<SweepPlanningMeasurement> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(
      `INSERT INTO chain.deposit_addresses (chain_id, customer_id, address, salt, factory)
       SELECT chain_id, 'scale:' || address, address, '0x' || lpad(substr(address, 3), 64, '0'), $2
         FROM chain.custody_addresses WHERE chain_id = $1 AND kind = 'deposit'
       ON CONFLICT DO NOTHING`,
      [chainId, FACTORY],
    );
    const { rows: a } = await client.query<{ n: string }>(
      "SELECT count(*)::text AS n FROM chain.deposit_addresses WHERE chain_id = $1",
      [chainId],
    );
    const addresses = Number(a[0]!.n);
    // One booked sweep a day ago that moved 1,000 from every address …
    await client.query(
      `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens, status, settled_at, final_at)
       VALUES ('scale-sweep:' || $1::bigint, $1::bigint, $2, $3, '{}', 'booked', now() - interval '1 day', now())`,
      [chainId, FACTORY, HOT],
    );
    await client.query(
      `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
       SELECT 'scale-sweep:' || $1::bigint, $1::bigint, address, salt, $2, 1000, 1000
         FROM chain.deposit_addresses WHERE chain_id = $1::bigint`,
      [chainId, ZERO],
    );
    // … so every pair has a running balance: 0, and `pending` of them credited again since.
    await client.query(
      `INSERT INTO custody.sweepable_balances (chain_id, address, asset, balance)
       SELECT chain_id, address, $2, CASE WHEN row_number() OVER (ORDER BY address DESC) <= $3 THEN 10 ^ 18 ELSE 0 END
         FROM chain.deposit_addresses WHERE chain_id = $1
       ON CONFLICT (chain_id, address, asset) DO UPDATE SET balance = EXCLUDED.balance`,
      [chainId, ZERO, pending],
    );
    await client.query("ANALYZE custody.sweepable_balances");
    await client.query("ANALYZE custody.sweep_items");
    await client.query("ANALYZE chain.deposit_addresses");
    const thresholds = new Map([[ZERO, 10n ** 17n]]);
    const runsMs: number[] = [];
    let candidates = 0;
    let sweeps = 0;
    for (let run = 0; run < runs; run++) {
      await client.query("SAVEPOINT pass");
      const t = performance.now();
      const read = () =>
        readSweepCandidates(client, chainId, 300_000, 300_000, thresholds, batchSize * 10, 300_000);
      const seen = await read();
      await client.query("SELECT pg_advisory_xact_lock($1, $2)", [SWEEP_LOCK, chainId]);
      const found = unchangedSince(await read(), seen);
      const plan = planSweeps(found, thresholds, batchSize);
      runsMs.push(performance.now() - t);
      candidates = found.length;
      sweeps = plan.length;
      await client.query("ROLLBACK TO SAVEPOINT pass");
    }
    const sorted = [...runsMs].sort((x, y) => x - y);
    return { ms: sorted[Math.floor(sorted.length / 2)]!, runsMs, addresses, candidates, sweeps };
  } finally {
    await client.query("ROLLBACK").catch(() => {});
    client.release();
  }
}
