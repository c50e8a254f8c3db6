/**
 * Customers whose withdrawals are refused (shared contract 3): a reorg hold the customer's available
 * balance could not cover blocks them until the deposit confirms again (cleared automatically) or
 * an operator clears it (audited: who, why). The API asks `isWithdrawalBlocked` before placing a
 * withdrawal's hold and before an approval hands one to the signer, and its worker pulls back the
 * blocked customers' withdrawals the signer has not signed yet (api/withdrawals/blocked.ts).
 */
import { appendAudit } from "../foundation/audit.js";
import { type Pool, withTransaction } from "../foundation/db.js";
import { WithdrawalBlockInputError } from "./errors.js";
import type { Queryable } from "./runBatch.js";

export type WithdrawalBlock = {
  id: number;
  customerId: string;
  reason: string;
  creditId: string | null;
  details: Record<string, unknown>;
  createdAt: Date;
};

/** True while the customer has any block not cleared. */
export async function isWithdrawalBlocked(db: Queryable, customerId: string): Promise<boolean> {
  const r = await db.query<{ blocked: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ledger.withdrawal_blocks
       WHERE customer_id = $1 AND cleared_at IS NULL) AS blocked`,
    [customerId],
  );
  return r.rows[0]?.blocked === true;
}

/** Open blocks, oldest first (one customer, or all). */
export async function listWithdrawalBlocks(
  db: Queryable,
  customerId?: string,
): Promise<WithdrawalBlock[]> {
  const r = await db.query<{
    id: string;
    customer_id: string;
    reason: string;
    credit_id: string | null;
    details: Record<string, unknown>;
    created_at: Date;
  }>(
    `SELECT id::text, customer_id, reason, credit_id::text, details, created_at
       FROM ledger.withdrawal_blocks
      WHERE cleared_at IS NULL AND ($1::text IS NULL OR customer_id = $1) ORDER BY id`,
    [customerId ?? null],
  );
  return r.rows.map((x) => ({
    id: Number(x.id),
    customerId: x.customer_id,
    reason: x.reason,
    creditId: x.credit_id,
    details: x.details,
    createdAt: x.created_at,
  }));
}

/** Block a customer's withdrawals; one open block per credit (a repeat is a no-op). */
export async function blockWithdrawals(
  db: Queryable,
  args: {
    customerId: string;
    reason: string;
    creditId?: string;
    details?: Record<string, unknown>;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO ledger.withdrawal_blocks (customer_id, reason, credit_id, details)
     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
    [args.customerId, args.reason, args.creditId ?? null, JSON.stringify(args.details ?? {})],
  );
}

/** Clear the open block a credit's reorg shortfall caused (the deposit came back). */
export async function clearCreditBlock(
  db: Queryable,
  creditId: string,
  reason: string,
): Promise<number> {
  const r = await db.query(
    `UPDATE ledger.withdrawal_blocks SET cleared_at = now(), cleared_by = 'deposit-crediting',
       clear_reason = $2
     WHERE credit_id = $1 AND cleared_at IS NULL`,
    [creditId, reason],
  );
  return r.rowCount ?? 0;
}

/**
 * Clear the open block a withdrawal's own reorg shortfall caused (its hold placed again after a
 * deep reorg undid its failure, api/withdrawals/holds.ts; `details.withdrawal_id` names it): it
 * failed again, and what it had booked on the receivable is given back.
 */
export async function clearWithdrawalShortfallBlock(
  db: Queryable,
  args: { customerId: string; withdrawalId: string; reason: string },
): Promise<number> {
  const r = await db.query(
    `UPDATE ledger.withdrawal_blocks SET cleared_at = now(), cleared_by = 'withdrawals',
       clear_reason = $3
     WHERE customer_id = $1 AND cleared_at IS NULL AND credit_id IS NULL
       AND details->>'withdrawal_id' = $2`,
    [args.customerId, args.withdrawalId, args.reason],
  );
  return r.rowCount ?? 0;
}

/**
 * An operator clears every open block of a customer (who and why required, audited in the same
 * transaction: it lets a customer who owes a reorg receivable withdraw again); returns how many
 * were cleared.
 */
export async function clearWithdrawalBlocks(
  pool: Pool,
  args: { customerId: string; by: string; reason: string },
): Promise<number> {
  const by = args.by.trim();
  const reason = args.reason.trim();
  if (by === "") throw new WithdrawalBlockInputError(args.customerId, "by");
  if (reason === "") throw new WithdrawalBlockInputError(args.customerId, "reason");
  return withTransaction(pool, async (client) => {
    const r = await client.query<{ id: string }>(
      `UPDATE ledger.withdrawal_blocks SET cleared_at = now(), cleared_by = $2, clear_reason = $3
       WHERE customer_id = $1 AND cleared_at IS NULL
       RETURNING id::text`,
      [args.customerId, by, reason],
    );
    if (r.rows.length > 0)
      await appendAudit(client, {
        actor: by,
        action: "ledger.withdrawal_blocks.cleared",
        entityType: "customer",
        entityId: args.customerId,
        details: { reason, block_ids: r.rows.map((x) => Number(x.id)) },
      });
    return r.rows.length;
  });
}
