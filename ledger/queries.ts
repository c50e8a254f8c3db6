/**
 * Reading the ledger: an account's balance now, its balance after a transfer or at a time (summed
 * from transfers), its transfers page by page, and one transfer by id.
 */
import type { Pool } from "../foundation/db.js";
import type { Accounts } from "./accounts.js";
import { availableBalance } from "./chartOfAccounts.js";
import type { Queryable } from "./runBatch.js";
import { TRANSFER_SELECT, type TransferRecordRow, toTransfer } from "./transferRow.js";
import type { AccountRef, Balance, Transfer } from "./types.js";

export type LedgerQueries = {
  balance: (ref: AccountRef, options?: { client?: Queryable }) => Promise<Balance>;
  balanceAt: (ref: AccountRef, at: { transferId: string } | { time: Date }) => Promise<Balance>;
  accountTransfers: (
    ref: AccountRef,
    page?: { limit?: number; cursor?: string },
  ) => Promise<{ transfers: Transfer[]; nextCursor: string | null }>;
  getTransfer: (id: string) => Promise<Transfer | undefined>;
};

export function createLedgerQueries({
  pool,
  requireAccount,
}: {
  pool: Pool;
  requireAccount: Accounts["requireAccount"];
}): LedgerQueries {
  async function sumBalance(accountId: bigint, where: string, params: unknown[]) {
    const r = await pool.query<{ dp: bigint; dpo: bigint; cp: bigint; cpo: bigint }>(
      `SELECT
         COALESCE(sum(pending_delta) FILTER (WHERE side = 'd'), 0) AS dp,
         COALESCE(sum(posted_delta) FILTER (WHERE side = 'd'), 0) AS dpo,
         COALESCE(sum(pending_delta) FILTER (WHERE side = 'c'), 0) AS cp,
         COALESCE(sum(posted_delta) FILTER (WHERE side = 'c'), 0) AS cpo
       FROM (
         SELECT 'd' AS side, pending_delta, posted_delta FROM ledger.transfers WHERE debit_account_id = $1 AND ${where}
         UNION ALL
         SELECT 'c', pending_delta, posted_delta FROM ledger.transfers WHERE credit_account_id = $1 AND ${where}
       ) s`,
      [accountId.toString(), ...params],
    );
    const row = r.rows[0];
    return {
      debitsPending: row?.dp ?? 0n,
      debitsPosted: row?.dpo ?? 0n,
      creditsPending: row?.cp ?? 0n,
      creditsPosted: row?.cpo ?? 0n,
    };
  }

  return {
    async balance(ref, options = {}) {
      const a = await requireAccount(ref, options.client);
      return {
        debitsPending: a.debitsPending,
        debitsPosted: a.debitsPosted,
        creditsPending: a.creditsPending,
        creditsPosted: a.creditsPosted,
        available: a.available,
      };
    },
    async balanceAt(ref, at) {
      const a = await requireAccount(ref);
      const b =
        "transferId" in at
          ? await sumBalance(
              a.id,
              "seq <= (SELECT seq FROM ledger.transfers WHERE id = $2::uuid)",
              [at.transferId],
            )
          : await sumBalance(a.id, "created_at <= $2", [at.time]);
      return { ...b, available: availableBalance(a.normal, b) };
    },
    async accountTransfers(ref, page = {}) {
      const a = await requireAccount(ref);
      const limit = Math.min(Math.max(page.limit ?? 50, 1), 1000);
      const before = page.cursor ? BigInt(page.cursor) : null;
      const r = await pool.query<TransferRecordRow>(
        `SELECT * FROM (
           (${TRANSFER_SELECT} WHERE debit_account_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY ledger.transfers.seq DESC LIMIT $3)
           UNION ALL
           (${TRANSFER_SELECT} WHERE credit_account_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY ledger.transfers.seq DESC LIMIT $3)
         ) t ORDER BY seq::bigint DESC LIMIT $3`,
        [a.id.toString(), before?.toString() ?? null, limit + 1],
      );
      const rows = r.rows.slice(0, limit).map(toTransfer);
      const last = rows[rows.length - 1];
      return {
        transfers: rows,
        nextCursor: r.rows.length > limit && last ? last.seq.toString() : null,
      };
    },
    async getTransfer(id) {
      const r = await pool.query<TransferRecordRow>(`${TRANSFER_SELECT} WHERE id = $1::uuid`, [id]);
      return r.rows[0] ? toTransfer(r.rows[0]) : undefined;
    },
  };
}

/**
 * Whether the transfer with this seq moves this account (debit or credit side): an account's
 * transfers page's cursor is the seq of the last transfer of the page before, so it names one.
 */
export async function accountTransferSeqExists(
  client: Queryable,
  accountId: bigint,
  seq: string,
): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT 1 FROM ledger.transfers
      WHERE seq = $2::bigint AND (debit_account_id = $1 OR credit_account_id = $1)`,
    [accountId.toString(), seq],
  );
  return rows.length > 0;
}
