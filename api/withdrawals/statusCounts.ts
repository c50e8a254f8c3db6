/**
 * Withdrawals counted by status, for the state metrics the composition root exports
 * (ops/stateMetrics.ts): how many are in each of `statuses`, how long ago the oldest of them was
 * requested, and how long the longest-waiting one has been in it (`updated_at`: only a status change
 * updates a withdrawal, transitions.ts). A status with no withdrawal has no row. And per chain, how
 * long the oldest one out has not been mined.
 */
import type { Pool } from "../../foundation/db.js";

export type WithdrawalStatusCount = {
  count: number;
  oldestAgeSeconds: number;
  longestInStatusSeconds: number;
};

export async function withdrawalsByStatus(
  pool: Pool,
  statuses: readonly string[],
): Promise<Map<string, WithdrawalStatusCount>> {
  const r = await pool.query<{
    status: string;
    n: string;
    age: string | null;
    in_status: string | null;
  }>(
    `SELECT status, count(*) AS n,
            extract(epoch FROM now() - min(created_at))::float8 AS age,
            extract(epoch FROM now() - min(updated_at))::float8 AS in_status
       FROM api.withdrawals WHERE status = ANY($1) GROUP BY status`,
    [statuses],
  );
  return new Map(
    r.rows.map((row) => [
      row.status,
      {
        count: Number(row.n),
        oldestAgeSeconds: Math.max(0, Number(row.age ?? 0)),
        longestInStatusSeconds: Math.max(0, Number(row.in_status ?? 0)),
      },
    ]),
  );
}

/**
 * Per chain, seconds since the send (or a reorg's re-send) of the oldest withdrawal out and not
 * mined: in broadcast or receipt_unknown, from `unmined_since`, which moves between the two do
 * not restart (transitions.ts). A chain with none has no entry.
 */
export async function oldestUnminedByChain(pool: Pool): Promise<Map<number, number>> {
  const r = await pool.query<{ chain_id: string; unmined: number }>(
    `SELECT chain_id::text,
            extract(epoch FROM now() - min(COALESCE(unmined_since, updated_at)))::float8 AS unmined
       FROM api.withdrawals WHERE status IN ('broadcast', 'receipt_unknown') GROUP BY chain_id`,
  );
  return new Map(r.rows.map((row) => [Number(row.chain_id), Math.max(0, row.unmined)]));
}
