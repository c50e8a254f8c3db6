/**
 * The ledger's API: assets, accounts, transfers (single, pending/post/void, linked, batched),
 * balances and account history. Transfer functions run in their own transaction, or in the
 * caller's (`{ client }`) so a hold can be placed in the same transaction as the caller's own row.
 * The parts: accounts.ts (assets, accounts, freezing), applyTransfers.ts (a batch in a
 * transaction), groupCommit.ts (callers without a client share transactions), queries.ts.
 */

import type { ChainConfig } from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Pool } from "../foundation/db.js";
import { createAccounts } from "./accounts.js";
import { createApplyTransfers, type TransferOptions } from "./applyTransfers.js";
import { type CheckReport, checkLedger } from "./check.js";
import { TransferFailedError } from "./errors.js";
import { createGroupCommit } from "./groupCommit.js";
import { createLedgerQueries, type LedgerQueries } from "./queries.js";
import { transferId } from "./transferId.js";
import type {
  Account,
  AccountRef,
  Asset,
  Balance,
  NewTransfer,
  Transfer,
  TransferInput,
  TransferResult,
} from "./types.js";

export type { TransferOptions } from "./applyTransfers.js";

export type Ledger = {
  /** Idempotent; an existing asset is returned unchanged. */
  ensureAsset: (asset: Omit<Asset, "id">) => Promise<Asset>;
  /** Every chain's native asset and listed tokens. */
  ensureAssetsFromConfig: (chains: readonly ChainConfig[]) => Promise<void>;
  ensureAccount: (ref: AccountRef) => Promise<Account>;
  getAccount: (ref: AccountRef, options?: TransferOptions) => Promise<Account | undefined>;
  /**
   * Apply transfers in one transaction, in order; one result per transfer (never throws for a
   * refused transfer, only for infrastructure errors).
   */
  createTransfers: (
    transfers: readonly TransferInput[],
    options?: TransferOptions,
  ) => Promise<TransferResult[]>;
  /**
   * All or nothing for new ids: every transfer is created (one `created` result each), or nothing
   * is written and the answer is `null` (an id exists or failed, or the ledger refuses one). Never
   * reads the ids first: for callers whose ids are new in the usual case and that take another way
   * otherwise (deposit crediting's first credits of a new block).
   */
  createNewTransfers: (
    transfers: readonly TransferInput[],
    options?: Pick<TransferOptions, "client">,
  ) => Promise<TransferResult[] | null>;
  /**
   * One transfer; throws `TransferFailedError` when refused. Without a client, concurrent calls
   * share transactions (up to `maxBatch` per commit), so many callers cost one lock round each.
   */
  transfer: (t: TransferInput, options?: TransferOptions) => Promise<"created" | "exists">;
  /** A pending transfer (hold). */
  hold: (t: Omit<NewTransfer, "type">, options?: TransferOptions) => Promise<"created" | "exists">;
  postPending: (
    args: { id: string; pendingId: string; amount?: bigint; chainRef?: Transfer["chainRef"] },
    options?: TransferOptions,
  ) => Promise<"created" | "exists">;
  voidPending: (
    args: { id: string; pendingId: string },
    options?: TransferOptions,
  ) => Promise<"created" | "exists">;
  /** Void every hold whose timeout passed (transfer type "expire"); returns how many. */
  expireHolds: (options?: { limit?: number }) => Promise<number>;
  balance: (ref: AccountRef, options?: TransferOptions) => Promise<Balance>;
  /** The balance right after a transfer (by id), or as of a time, summed from transfers. */
  balanceAt: LedgerQueries["balanceAt"];
  /** Newest first; pass `nextCursor` back for the next page. */
  accountTransfers: LedgerQueries["accountTransfers"];
  getTransfer: LedgerQueries["getTransfer"];
  /**
   * Frozen accounts accept no new debits (holds already placed can still be posted or voided), except
   * reorg holds: a deposit the chain no longer has is held whatever the account's state.
   */
  freeze: (ref: AccountRef) => Promise<void>;
  unfreeze: (ref: AccountRef) => Promise<void>;
  check: () => Promise<CheckReport>;
  /** Waits for in-flight batched transfers. */
  close: () => Promise<void>;
};

function outcome(r: TransferResult | undefined): "created" | "exists" {
  if (!r) throw new Error("ledger returned no result");
  if (r.status === "failed") throw new TransferFailedError(r.id, r.code, r.detail, r.field);
  return r.status;
}

export function createLedger({
  common,
  pool,
  maxBatch = 4096,
  lanes = 2,
}: {
  common: Common;
  pool: Pool;
  /** Most transfers the shared-transaction path puts in one commit. */
  maxBatch?: number;
  /** Concurrent shared transactions (one overlaps its commit with the next one's reads). */
  lanes?: number;
}): Ledger {
  const log = common.logger.child({ component: "ledger" });
  // Assets are never deleted, so an id once seen committed stays valid.
  const knownAssets = new Set<string>();
  const accounts = createAccounts({ pool, log, knownAssets });
  const apply = createApplyTransfers({ common, pool, knownAssets });
  const shared = createGroupCommit({ apply: (ts) => apply(ts, {}), maxBatch, lanes });
  const queries = createLedgerQueries({ pool, requireAccount: accounts.requireAccount });

  async function transfer(t: TransferInput, options: TransferOptions = {}) {
    if (options.client) return outcome((await apply([t], options))[0]);
    return outcome(await shared.submit(t));
  }

  return {
    ensureAsset: accounts.ensureAsset,
    ensureAssetsFromConfig: accounts.ensureAssetsFromConfig,
    ensureAccount: accounts.ensureAccount,
    getAccount: (ref, options = {}) => accounts.findAccount(ref, options.client ?? pool),
    createTransfers: (transfers, options = {}) => apply(transfers, options),
    createNewTransfers: (transfers, options = {}) =>
      apply(transfers, { ...options, onlyNew: true }),
    transfer,
    hold: (t, options) => transfer({ ...t, type: "pending" }, options),
    postPending: (args, options) =>
      transfer(
        {
          type: "post",
          id: args.id,
          pendingId: args.pendingId,
          ...(args.amount !== undefined ? { amount: args.amount } : {}),
          ...(args.chainRef ? { chainRef: args.chainRef } : {}),
        },
        options,
      ),
    voidPending: (args, options) =>
      transfer({ type: "void", id: args.id, pendingId: args.pendingId }, options),
    async expireHolds({ limit = 1000 } = {}) {
      const r = await pool.query<{ transfer_id: string }>(
        `SELECT transfer_id::text FROM ledger.holds
         WHERE state = 'pending' AND timeout_at IS NOT NULL AND timeout_at <= now()
         ORDER BY timeout_at LIMIT $1`,
        [limit],
      );
      if (r.rows.length === 0) return 0;
      const results = await apply(
        r.rows.map((h) => ({
          type: "expire" as const,
          id: transferId(`expire:${h.transfer_id}`),
          pendingId: h.transfer_id,
        })),
        {},
      );
      const expired = results.filter((x) => x.status === "created").length;
      if (expired > 0) log.info({ msg: "holds expired", count: expired });
      return expired;
    },
    balance: queries.balance,
    balanceAt: queries.balanceAt,
    accountTransfers: queries.accountTransfers,
    getTransfer: queries.getTransfer,
    freeze: (ref) => accounts.setFrozen(ref, true),
    unfreeze: (ref) => accounts.setFrozen(ref, false),
    check: () => checkLedger(pool),
    close: shared.close,
  };
}
