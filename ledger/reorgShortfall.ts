/**
 * A reorg shortfall (DESIGN "Money flows"): a reorg gives back to the chain money the customer was
 * given and has spent meanwhile, so a hold for it cannot come out of their available balance. What
 * the balance covers is held as usual; the rest is owed on `receivable:reorg:<id>`, the customer's
 * withdrawals are blocked (ledger.withdrawal_blocks, reason `reorg_shortfall`) so nothing more
 * leaves, and the alert fires (custody_ledger_reorg_shortfalls_total, ReorgHoldShortfall). Deposit
 * crediting's reorg hold (a credited deposit orphaned) and the withdrawal follower's hold placed
 * again (a failure at a final block a deep reorg undid, api/withdrawals/holds.ts) both go through
 * here.
 */
import type { Counter, Registry } from "prom-client";
import { afterCommit, type PoolClient } from "../foundation/db.js";
import type { Logger } from "../foundation/logger.js";
import { counterOnce } from "../foundation/metrics.js";
import { blockWithdrawals } from "./withdrawalBlocks.js";

export const REORG_SHORTFALL_BLOCK = "reorg_shortfall";

/** The alert's counter (one registration per registry, whoever asks first). */
export function reorgShortfallCounter(registry: Registry): Counter<"chain_id"> {
  return counterOnce(registry, {
    name: "custody_ledger_reorg_shortfalls_total",
    help: "Reorg holds the customer's available balance could not cover (receivable booked, withdrawals blocked); each one is an alert",
    labelNames: ["chain_id"],
  });
}

/**
 * Splits `amount` into what `user:<owner>`'s available balance covers and the shortfall, with the
 * user's row and `counterparty`'s locked in id order (the ledger's lock order), so a withdrawal
 * hold or a repayment placed concurrently is either seen here or sees the hold placed after this.
 */
export async function coverReorgHold(
  client: PoolClient,
  args: { assetId: string; owner: string; counterparty: string; amount: bigint },
): Promise<{ covered: bigint; shortfall: bigint }> {
  const user = `user:${args.owner}`;
  const acct = await client.query<{ name: string; available: bigint }>(
    `SELECT name, credits_posted - debits_posted - debits_pending AS available
       FROM ledger.accounts WHERE asset_id = $1 AND name IN ($2, $3)
      ORDER BY id FOR UPDATE`,
    [args.assetId, user, args.counterparty],
  );
  const available = acct.rows.find((r) => r.name === user)?.available ?? 0n;
  const covered = available <= 0n ? 0n : available < args.amount ? available : args.amount;
  return { covered, shortfall: args.amount - covered };
}

/**
 * What `owner` still owes on `receivable:reorg:<owner>`, with that row, `user:<owner>`'s and
 * `counterparty`'s locked in id order (the ledger's lock order), so a repayment (crediting's
 * repayReceivables) placed concurrently is either seen here or sees what the caller books next.
 * A withdrawal failing again gives back at most this of the shortfall it had booked.
 */
export async function lockReorgReceivable(
  client: PoolClient,
  args: { assetId: string; owner: string; counterparty: string },
): Promise<bigint> {
  const receivable = `receivable:reorg:${args.owner}`;
  const { rows } = await client.query<{ name: string; owed: bigint }>(
    `SELECT name, debits_posted - credits_posted AS owed FROM ledger.accounts
      WHERE asset_id = $1 AND name = ANY($2::text[]) ORDER BY id FOR UPDATE`,
    [args.assetId, [`user:${args.owner}`, args.counterparty, receivable]],
  );
  return rows.find((r) => r.name === receivable)?.owed ?? 0n;
}

/**
 * A shortfall was booked on `receivable:reorg:<owner>` in this transaction: block the customer's
 * withdrawals (one open block per deposit credit; `details` names what caused it), and once it
 * commits count it and log the alert.
 */
export async function recordReorgShortfall(
  client: PoolClient,
  args: {
    owner: string;
    chainId: number;
    creditId?: string;
    details: Record<string, unknown>;
    msg: string;
    counter: Counter<"chain_id">;
    log: Logger;
  },
): Promise<void> {
  await blockWithdrawals(client, {
    customerId: args.owner,
    reason: REORG_SHORTFALL_BLOCK,
    ...(args.creditId ? { creditId: args.creditId } : {}),
    details: args.details,
  });
  afterCommit(client, () => {
    args.counter.inc({ chain_id: String(args.chainId) });
    args.log.error({
      msg: args.msg,
      alert: "reorg_shortfall",
      receivable: `receivable:reorg:${args.owner}`,
      ...args.details,
    });
  });
}
