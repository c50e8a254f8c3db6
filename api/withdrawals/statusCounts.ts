/**
 * Withdrawals counted by status, for the state metrics the composition root exports
 * (ops/stateMetrics.ts): how many are in each of `statuses` and how long ago the oldest of them was
 * requested. A status with no withdrawal has no row.
 */
import type { Pool } from "../../foundation/db.js";

export type WithdrawalStatusCount = { count: number; oldestAgeSeconds: number };

export async function withdrawalsByStatus(
  pool: Pool,
  statuses: readonly string[],
): Promise<Map<string, WithdrawalStatusCount>> {
  const r = await pool.query<{ status: string; n: string; age: string | null }>(
    `SELECT status, count(*) AS n,
            extract(epoch FROM now() - min(created_at))::float8 AS age
       FROM api.withdrawals WHERE status = ANY($1) GROUP BY status`,
    [statuses],
  );
  return new Map(
    r.rows.map((row) => [
      row.status,
      { count: Number(row.n), oldestAgeSeconds: Math.max(0, Number(row.age ?? 0)) },
    ]),
  );
}
