/**
 * For api tests of a request whose answer was lost after its effect committed, so that its
 * Idempotency-Key is left bound to it, unanswered (api/idempotency.ts): a real 5xx made by killing
 * the handler's connection once it committed, or the row as a 5xx (or a crash) leaves it; and a
 * withdrawal in needs_review, the state an operator's fail starts from.
 */
import type { Pool } from "../../foundation/db.js";
import { waitFor } from "../../ops/testing/wait.js";
import { setTxRequestState } from "../../signer/testing/txRequestState.js";
import { createWithdrawals } from "../withdrawals/service.js";
import type { WithdrawalApiTestContext } from "./apiTestContext.js";

/**
 * `send` with its answer lost after the commit: while it runs, `table` is locked (the request
 * must not touch it before its commit); the request's first read of it afterwards waits, and its
 * backend is terminated (a connection lost on the way back), so the request answers a 5xx.
 * E.g. an operator's fail reads api.withdrawal_approvals only for its answer.
 */
export async function answeredWith5xxAfterCommit<T>(
  pool: Pool,
  table: string,
  send: () => Promise<T>,
): Promise<T> {
  const locker = await pool.connect();
  try {
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    // inject() sends when awaited: start it now, lock held.
    const answer = (async () => await send())();
    // Watched from another session: the locker's transaction sees one snapshot of the activity.
    const pid = await waitFor(
      `a read of ${table} waiting for its lock`,
      async () =>
        (
          await pool.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND query LIKE $1`,
            [`%FROM ${table}%`],
          )
        ).rows[0]?.pid,
      { timeoutMs: 20_000, everyMs: 20 },
    );
    await pool.query("SELECT pg_terminate_backend($1)", [pid]);
    await locker.query("ROLLBACK");
    return await answer;
  } finally {
    locker.release();
  }
}

/**
 * The stored answer of `idem` gone, its key left bound to its request, unanswered, its lease
 * lapsed: what a 5xx after the commit leaves (api/idempotency.ts), and a process that died after
 * the commit, before storing the answer.
 */
export async function answerLost(pool: Pool, idem: string): Promise<void> {
  const { rowCount } = await pool.query(
    `UPDATE api.idempotency_keys
        SET status_code = NULL, response_body = NULL, content_type = NULL, completed_at = NULL,
            lease_until = now() - interval '1 second'
      WHERE idempotency_key = $1`,
    [idem],
  );
  if (rowCount !== 1) throw new Error(`no stored answer under ${idem}`);
}

/**
 * A withdrawal of `customer` (`amount` wei) the signer's tracker gave up on (it broadcast at
 * `nonce`, then found no receipt; null: no nonce recorded, which an operator's fail reads as never
 * signed): needs_review, applied by the outcome pass.
 */
export async function withdrawalInReview(
  t: WithdrawalApiTestContext,
  customer: string,
  amount: bigint,
  nonce: number | null,
): Promise<string> {
  const { id } = await t.withdrawNative(t.keys["withdrawals:write"], customer, amount);
  const withdrawals = createWithdrawals({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    ledger: t.ledger,
  });
  for (const status of ["broadcast", "receipt_unknown", "needs_review"]) {
    await setTxRequestState(t.ctx.db.pool, `withdrawal:${id}`, {
      status,
      txHash: `0x${"e5".repeat(32)}`,
      ...(nonce === null ? {} : { nonce }),
      ...(status === "needs_review" ? { reviewReason: "no receipt on any endpoint" } : {}),
    });
    await withdrawals.syncOutcomes();
  }
  return id;
}
