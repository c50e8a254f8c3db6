/**
 * A reorg shortfall (DESIGN "Money flows"): a reorg gives back to the chain money the customer was
 * given and has spent meanwhile, so a hold for it cannot come out of their available balance. What
 * the balance covers is held as usual; the rest is owed on `receivable:reorg:<id>`, the customer's
 * withdrawals are blocked (ledger.withdrawal_blocks, reason `reorg_shortfall`) so nothing more
 * leaves, and the alert fires (custody_ledger_reorg_shortfalls_total, ReorgHoldShortfall). Deposit
 * crediting's reorg hold (a credited deposit orphaned) and the withdrawal follower's hold placed
 * again (a failure at a final block a deep reorg undid, api/withdrawals/holds.ts) both go through
 * here, and the receivable is settled the same way whatever booked it: repaid by crediting from
 * money that comes back to the customer (depositCrediting.ts repayReceivables) or written off by an
 * operator (reorgReceivables.ts), which lift the blocks once nothing is owed on the asset
 * (clearSettledShortfallBlocks).
 */
import type { Counter, Registry } from "prom-client";
import { afterCommit, type PoolClient } from "../foundation/db.js";
import type { Logger } from "../foundation/logger.js";
import { counterOnce } from "../foundation/metrics.js";
import type { Queryable } from "./runBatch.js";
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

/**
 * The open shortfall blocks a receivable settles, each with the chain, asset and customer of the
 * receivable whose settling lifts it: those of final credits (a held credit's block stays: its
 * deposit may still confirm again, its reorg hold still pending on the receivable) and those of
 * withdrawals' undone failures (no credit; chain and asset from the details recordReorgShortfall
 * was given; their shortfall is posted at once). A withdrawal failing again after its shortfall was
 * settled gives back only what is still owed (api/withdrawals/holds.ts release), so lifting its
 * block before it ends counts nothing twice. Crediting's repayment lists the customers to look at
 * from it, and clearSettledShortfallBlocks lifts them.
 */
export const SETTLED_BY_RECEIVABLE = `
SELECT b.id, d.chain_id::int AS chain_id, d.asset, d.owner
  FROM ledger.withdrawal_blocks b JOIN ledger.deposit_credits d ON d.credit_id = b.credit_id
 WHERE b.cleared_at IS NULL AND d.state = 'final'
UNION ALL
SELECT b.id, (b.details->>'chain_id')::int, lower(b.details->>'asset'), b.customer_id
  FROM ledger.withdrawal_blocks b
 WHERE b.cleared_at IS NULL AND b.credit_id IS NULL AND b.reason = '${REORG_SHORTFALL_BLOCK}'`;

/**
 * Nothing is owed any more on `owner`'s receivable of one asset (repaid or written off): lift the
 * blocks it settles, recording who and why. Returns their ids.
 */
export async function clearSettledShortfallBlocks(
  db: Queryable,
  args: { chainId: number; asset: string; owner: string; by: string; reason: string },
): Promise<number[]> {
  const r = await db.query<{ id: string }>(
    `UPDATE ledger.withdrawal_blocks SET cleared_at = now(), cleared_by = $4, clear_reason = $5
      WHERE id IN (SELECT id FROM (${SETTLED_BY_RECEIVABLE}) s
                    WHERE s.chain_id = $1 AND lower(s.asset) = lower($2) AND s.owner = $3)
      RETURNING id::text`,
    [args.chainId, args.asset, args.owner, args.by, args.reason],
  );
  return r.rows.map((x) => Number(x.id));
}
