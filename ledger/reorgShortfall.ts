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
 * (clearSettledShortfallBlocks). What caused a shortfall can still be undone after it was written
 * off (the withdrawal fails for good, the deposit comes back): then the write-off is reversed for
 * the part of it that shortfall had (writeOffReversal), so the loss goes back to the custody's
 * books and is never paid to the customer.
 */
import type { Counter, Registry } from "prom-client";
import { formatAmount } from "../foundation/amounts.js";
import { appendAudit } from "../foundation/audit.js";
import { afterCommit, type PoolClient } from "../foundation/db.js";
import type { Logger } from "../foundation/logger.js";
import { counterOnce } from "../foundation/metrics.js";
import type { Queryable } from "./runBatch.js";
import type { NewTransfer } from "./types.js";
import { blockWithdrawals } from "./withdrawalBlocks.js";

export const REORG_SHORTFALL_BLOCK = "reorg_shortfall";

/** The account a written-off reorg receivable is booked to (ledger/chartOfAccounts.ts). */
export const REORG_LOSS_ACCOUNT = "expense:reorg_loss";

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
 * What `owner` still owes on `receivable:reorg:<owner>`, with that row, `user:<owner>`'s,
 * `counterparty`'s and the loss account's locked in id order (the ledger's lock order), so a
 * repayment (crediting's repayReceivables) or a write-off placed concurrently is either seen here or
 * sees what the caller books next (a write-off's reversal among it, writeOffReversal). A withdrawal
 * failing again gives back at most this of the shortfall it had booked.
 */
export async function lockReorgReceivable(
  client: PoolClient,
  args: { assetId: string; owner: string; counterparty: string },
): Promise<bigint> {
  const receivable = `receivable:reorg:${args.owner}`;
  const { rows } = await client.query<{ name: string; owed: bigint }>(
    `SELECT name, debits_posted - credits_posted AS owed FROM ledger.accounts
      WHERE asset_id = $1 AND name = ANY($2::text[]) ORDER BY id FOR UPDATE`,
    [args.assetId, [`user:${args.owner}`, args.counterparty, receivable, REORG_LOSS_ACCOUNT]],
  );
  return rows.find((r) => r.name === receivable)?.owed ?? 0n;
}

// What was written off `receivable:reorg:<owner>` of one asset and not reversed since: write-offs
// (receivable → loss) less their reversals (loss → receivable), both of kind reorg_writeoff.
const WRITTEN_OFF = `
SELECT coalesce(sum(CASE WHEN t.credit_account_id = r.id THEN t.amount ELSE -t.amount END), 0)
         AS written_off
  FROM ledger.accounts r JOIN ledger.transfers t
    ON (t.credit_account_id = r.id OR t.debit_account_id = r.id) AND t.kind = 'reorg_writeoff'
 WHERE r.asset_id = $1 AND r.name = $2`;

/**
 * A shortfall that booked `booked` on `receivable:reorg:<owner>` is settled because what caused it
 * was undone (a withdrawal failing for good gives it back, a deposit's return pays it), and `owed`
 * (read under the receivable's lock: lockReorgReceivable, or crediting's lockCreditAccounts) is
 * less than it: the rest was repaid or written off meanwhile. The part written off was a loss that
 * did not happen: returns the reversal of that much of the write-offs (loss → receivable, kind
 * reorg_writeoff, id `id`), so the receivable owes it again and the caller's settlement takes it
 * back from the customer instead of leaving it theirs; null if nothing of it was written off. The
 * write-offs count first, up to what is written off and not reversed on the receivable (one
 * account per customer and asset, shared by every shortfall): a customer's repayments pay what
 * they truly owe, and a write-off forgives only what they did not pay. The caller books it before
 * its settlement (linked with it where it can be refused) and records it (recordWriteOffReversal).
 */
export async function writeOffReversal(
  client: PoolClient,
  args: { assetId: string; owner: string; booked: bigint; owed: bigint; id: string; memo: string },
): Promise<NewTransfer | null> {
  const gone =
    args.owed <= 0n ? args.booked : args.owed < args.booked ? args.booked - args.owed : 0n;
  if (gone === 0n) return null;
  const receivable = `receivable:reorg:${args.owner}`;
  const r = await client.query<{ written_off: bigint }>(WRITTEN_OFF, [args.assetId, receivable]);
  const written = r.rows[0]?.written_off ?? 0n;
  const amount = written < gone ? written : gone;
  if (amount <= 0n) return null;
  return {
    id: args.id,
    assetId: args.assetId,
    debit: receivable,
    credit: REORG_LOSS_ACCOUNT,
    amount,
    kind: "reorg_writeoff",
    memo: args.memo,
  };
}

/**
 * A write-off's reversal (writeOffReversal) was booked in this transaction: audited
 * (`ledger.reorg_receivable.writeoff_reversed`, actor the component, `details` naming what was
 * undone) and, once it commits, logged.
 */
export async function recordWriteOffReversal(
  client: PoolClient,
  args: {
    owner: string;
    reversal: NewTransfer;
    actor: string;
    details: Record<string, unknown>;
    log: Logger;
  },
): Promise<void> {
  const details = {
    asset_id: args.reversal.assetId,
    receivable: args.reversal.debit,
    amount: formatAmount(args.reversal.amount),
    transfer_id: args.reversal.id,
    ...args.details,
  };
  await appendAudit(client, {
    actor: args.actor,
    action: "ledger.reorg_receivable.writeoff_reversed",
    entityType: "customer",
    entityId: args.owner,
    details,
  });
  afterCommit(client, () => {
    args.log.warn({
      msg: "a written-off reorg shortfall was undone: the write-off reversed for it, the loss back on the books",
      customer_id: args.owner,
      ...details,
    });
  });
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
