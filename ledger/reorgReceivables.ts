/**
 * Reorg receivables (DESIGN "Money flows"): what customers owe on `receivable:reorg:<id>` after a
 * reorg removed a deposit they had already spent, or undid a withdrawal's failure whose refund they
 * had spent (ledger/reorgShortfall.ts). Crediting repays them out of money that comes
 * back to the customer (depositCrediting.ts `repayReceivables`); this file lists them, counts them
 * for the state metrics, and books an operator's **write-off** when the treasury decides the money
 * will not come back: one transfer `receivable:reorg:<id>` → `expense:reorg_loss` (kind
 * `reorg_writeoff`, id from the operator's reference), audited with who and why.
 *
 * The customer's block: once nothing is owed on the asset, the write-off lifts the blocks that
 * receivable settles (final credits' and withdrawals', reorgShortfall.ts clearSettledShortfallBlocks)
 * in the same transaction, as a repayment does (a held credit's block stays: its deposit may still
 * confirm again). Keeping them would change nothing for long: the next
 * crediting pass lifts a block whose receivable owes nothing, and would record it as "repaid".
 * A shortfall undone after its write-off (its withdrawal fails for good, its deposit comes back)
 * reverses that part of it (reorgShortfall.ts writeOffReversal, audited
 * `ledger.reorg_receivable.writeoff_reversed`).
 */
import { formatAmount } from "../foundation/amounts.js";
import { appendAudit } from "../foundation/audit.js";
import type { Common } from "../foundation/common.js";
import { afterCommit, type Pool, withTransaction } from "../foundation/db.js";
import { classifyAccount } from "./chartOfAccounts.js";
import type { Ledger } from "./createLedger.js";
import { ReorgWriteOffError, TransferFailedError } from "./errors.js";
import { clearSettledShortfallBlocks, REORG_LOSS_ACCOUNT } from "./reorgShortfall.js";
import type { Queryable } from "./runBatch.js";
import { assetIdOf, transferId } from "./transferId.js";

/** The name of a write-off's transfer: one per customer, asset and operator's reference. */
export function reorgWriteOffName(assetId: string, owner: string, ref: string): string {
  return `reorg-writeoff:${assetId}:${owner}:${ref}`;
}

export type ReorgReceivable = {
  customerId: string;
  assetId: string;
  /** Posted and not repaid nor written off: owed for good. */
  owed: bigint;
  /** Booked by reorg holds still pending (their deposit may still confirm again). */
  pending: bigint;
  /** Repaid (out of the customer's balance or a deposit's return) and written off so far. */
  settled: bigint;
};

/** Receivables with anything owed or pending (one customer, or all), by customer and asset. */
export async function listReorgReceivables(
  db: Queryable,
  customerId?: string,
): Promise<ReorgReceivable[]> {
  const r = await db.query<{
    name: string;
    asset_id: string;
    owed: bigint;
    pending: bigint;
    settled: bigint;
  }>(
    `SELECT name, asset_id, debits_posted - credits_posted AS owed, debits_pending AS pending,
            credits_posted AS settled
       FROM ledger.accounts
      WHERE kind = 'receivable' AND ($1::text IS NULL OR name = 'receivable:reorg:' || $1)
        AND (debits_posted > credits_posted OR debits_pending > 0)
      ORDER BY name, asset_id`,
    [customerId ?? null],
  );
  return r.rows.map((x) => ({
    customerId: x.name.slice("receivable:reorg:".length),
    assetId: x.asset_id,
    owed: x.owed,
    pending: x.pending,
    settled: x.settled,
  }));
}

// The receivable accounts owing something posted (partial index `accounts_receivable`, ledger
// 0016: a handful, however many user accounts there are), and since when: the first posting after
// the last time each was settled to zero (a partial repayment does not make it younger).
const OUTSTANDING = `
WITH owing AS (
  SELECT id, asset_id FROM ledger.accounts
   WHERE kind = 'receivable' AND debits_posted > credits_posted),
moves AS (
  SELECT o.id, o.asset_id, t.seq, t.created_at,
         sum(CASE WHEN t.debit_account_id = o.id THEN t.posted_delta ELSE -t.posted_delta END)
           OVER (PARTITION BY o.id ORDER BY t.seq) AS owed_after
    FROM owing o JOIN ledger.transfers t ON t.debit_account_id = o.id OR t.credit_account_id = o.id
   WHERE t.posted_delta <> 0),
settled AS (SELECT id, max(seq) AS seq FROM moves WHERE owed_after <= 0 GROUP BY id),
since AS (
  SELECT m.id, m.asset_id, min(m.created_at) AS since
    FROM moves m LEFT JOIN settled s ON s.id = m.id
   WHERE m.seq > coalesce(s.seq, 0) GROUP BY m.id, m.asset_id)
SELECT x.chain_id::int AS chain_id, since.asset_id, count(*)::int AS customers,
       extract(epoch FROM now() - min(since.since))::float8 AS oldest_seconds
  FROM since JOIN ledger.assets x ON x.id = since.asset_id
 GROUP BY x.chain_id, since.asset_id ORDER BY 1, 2`;

/**
 * Per chain and asset, how many customers owe something posted on a reorg receivable and how long
 * the oldest has been owed (the state metrics `custody_ledger_reorg_receivables_outstanding` and
 * `custody_ledger_reorg_receivable_oldest_seconds`).
 */
export async function outstandingReorgReceivables(
  db: Queryable,
): Promise<{ chainId: number; assetId: string; customers: number; oldestSeconds: number }[]> {
  const r = await db.query<{
    chain_id: number;
    asset_id: string;
    customers: number;
    oldest_seconds: number;
  }>(OUTSTANDING);
  return r.rows.map((x) => ({
    chainId: x.chain_id,
    assetId: x.asset_id,
    customers: x.customers,
    oldestSeconds: x.oldest_seconds,
  }));
}

export type ReorgWriteOffArgs = {
  chainId: number;
  /** The token (zero address: the chain's native asset). */
  asset: string;
  customerId: string;
  /** Base units; default: everything owed now. */
  amount?: bigint;
  /** The treasury's reference for the decision (a ticket, a memo id): the write-off's identity. */
  ref: string;
  by: string;
  reason: string;
};

export type ReorgWriteOff = {
  status: "created" | "exists";
  transferId: string;
  assetId: string;
  customerId: string;
  amount: bigint;
  /** Owed before it (created), or null for a repeat (what was owed then is in its audit entry). */
  owed: bigint | null;
  stillOwed: bigint;
  blocksCleared: number[];
};

/**
 * Write off (part of) what a customer owes on `receivable:reorg:<id>` for one asset: debit
 * `expense:reorg_loss`, credit the receivable, id `reorg-writeoff:<assetId>:<id>:<ref>`, audited
 * (`ledger.reorg_receivable.written_off`, actor `by`) in the same transaction. Only what is posted
 * is owed: a shortfall whose reorg hold is still pending may yet be voided. A repeat of the same
 * reference answers `exists` and books nothing; the same reference for another amount is refused.
 */
export async function writeOffReorgReceivable(
  deps: { common: Common; pool: Pool; ledger: Ledger },
  args: ReorgWriteOffArgs,
): Promise<ReorgWriteOff> {
  const customerId = args.customerId.trim();
  const by = args.by.trim();
  const reason = args.reason.trim();
  const ref = args.ref.trim();
  const input = (field: string, detail: string) =>
    new ReorgWriteOffError("LEDGER_REORG_WRITEOFF_INPUT", args.customerId, detail, { field });
  if (!classifyAccount(`user:${customerId}`)) throw input("customer", "not a customer id");
  if (by === "") throw input("by", "--by must not be empty");
  if (reason === "") throw input("reason", "--reason must not be empty");
  // No ':' in it: the transfer's name ends with it, and a customer id may hold one.
  if (!/^[^\s:]{1,128}$/.test(ref))
    throw input("ref", "--ref must be 1 to 128 characters, no spaces nor ':'");
  if (args.amount !== undefined && args.amount <= 0n)
    throw input("amount", "--amount must be a positive integer in base units");
  const assetId = assetIdOf(args.chainId, args.asset);
  const known = await deps.pool.query("SELECT 1 FROM ledger.assets WHERE id = $1", [assetId]);
  if (known.rowCount === 0) throw input("asset", `unknown asset ${assetId}`);

  const receivable = `receivable:reorg:${customerId}`;
  const id = transferId(reorgWriteOffName(assetId, customerId, ref));
  // The loss account exists before the transaction, so both rows are locked in id order there.
  await deps.ledger.ensureAccount({ assetId, name: REORG_LOSS_ACCOUNT });
  const log = deps.common.logger.child({ component: "ledger", chain_id: args.chainId });

  return withTransaction(deps.pool, async (client) => {
    // The receivable's row locked (with the loss account's, in id order: the ledger's lock order)
    // before reading what is owed: a repayment or a reorg hold posted concurrently is either seen
    // here or sees this write-off.
    const acct = await client.query<{
      id: string;
      name: string;
      owed: bigint;
    }>(
      `SELECT id::text, name, debits_posted - credits_posted AS owed FROM ledger.accounts
        WHERE asset_id = $1 AND name = ANY($2::text[]) ORDER BY id FOR UPDATE`,
      [assetId, [receivable, REORG_LOSS_ACCOUNT]],
    );
    const prior = await client.query<{ amount: bigint }>(
      "SELECT amount FROM ledger.transfers WHERE id = $1",
      [id],
    );
    const owed = acct.rows.find((x) => x.name === receivable)?.owed ?? 0n;
    const before = prior.rows[0];
    if (before) {
      if (args.amount !== undefined && args.amount !== before.amount)
        throw input(
          "ref",
          `reference ${ref} already wrote off ${formatAmount(before.amount)}, not ${formatAmount(args.amount)}`,
        );
      return {
        status: "exists" as const,
        transferId: id,
        assetId,
        customerId,
        amount: before.amount,
        owed: null,
        stillOwed: owed > 0n ? owed : 0n,
        blocksCleared: [],
      };
    }
    if (owed <= 0n)
      throw new ReorgWriteOffError(
        "LEDGER_REORG_NOTHING_OWED",
        customerId,
        `nothing is owed on ${receivable} for ${assetId} (repaid, written off, or its reorg hold is still pending)`,
        { asset_id: assetId },
      );
    const amount = args.amount ?? owed;
    if (amount > owed)
      throw new ReorgWriteOffError(
        "LEDGER_REORG_WRITEOFF_EXCEEDS_OWED",
        customerId,
        `${formatAmount(amount)} is more than the ${formatAmount(owed)} owed on ${receivable} for ${assetId}`,
        { asset_id: assetId, owed: formatAmount(owed), amount: formatAmount(amount) },
      );
    const [result] = await deps.ledger.createTransfers(
      [
        {
          id,
          assetId,
          debit: REORG_LOSS_ACCOUNT,
          credit: receivable,
          amount,
          kind: "reorg_writeoff",
          memo: `reorg receivable written off (ref ${ref})`,
        },
      ],
      { client },
    );
    if (!result || result.status === "failed")
      throw new TransferFailedError(
        id,
        result?.status === "failed" ? result.code : "LEDGER_INVALID_TRANSFER",
      );
    const stillOwed = owed - amount;
    const cleared =
      stillOwed === 0n
        ? await clearSettledShortfallBlocks(client, {
            chainId: args.chainId,
            asset: args.asset,
            owner: customerId,
            by,
            reason: `the reorg receivable was written off: ${reason}`,
          })
        : [];
    const details = {
      asset_id: assetId,
      receivable,
      ref,
      reason,
      owed: formatAmount(owed),
      amount: formatAmount(amount),
      still_owed: formatAmount(stillOwed),
      transfer_id: id,
      blocks_cleared: cleared,
    };
    await appendAudit(client, {
      actor: by,
      action: "ledger.reorg_receivable.written_off",
      entityType: "customer",
      entityId: customerId,
      details,
    });
    // No counter: it runs in a one-off CLI process nothing scrapes. The outstanding gauge (api
    // role) drops with it, and the audit entry is the record.
    afterCommit(client, () => {
      log.warn({
        msg:
          stillOwed === 0n
            ? "reorg receivable written off: nothing owed on the asset, its withdrawal blocks lifted"
            : "reorg receivable partly written off: withdrawals stay blocked",
        customer_id: customerId,
        by,
        ...details,
      });
    });
    return {
      status: "created" as const,
      transferId: id,
      assetId,
      customerId,
      amount,
      owed,
      stillOwed,
      blocksCleared: cleared,
    };
  });
}
