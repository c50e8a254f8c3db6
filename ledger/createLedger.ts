/**
 * The ledger's API: assets, accounts, transfers (single, pending/post/void, linked, batched),
 * balances and account history. Transfer functions run in their own transaction, or in the
 * caller's (`{ client }`) so a hold can be placed in the same transaction as the caller's own row.
 */
import { Counter } from "prom-client";
import type { Common } from "../foundation/common.js";
import type { ChainConfig } from "../foundation/config.js";
import { type Pool, type PoolClient, withTransaction } from "../foundation/db.js";
import type { BatchInput } from "./applyBatch.js";
import { availableBalance, classifyAccount } from "./chartOfAccounts.js";
import { type CheckReport, checkLedger } from "./check.js";
import {
  AccountNotFoundError,
  InvalidAccountError,
  TransferFailedError,
  TransferIdRaceError,
} from "./errors.js";
import { type Queryable, runBatch } from "./runBatch.js";
import { assetIdOf, transferId } from "./transferId.js";
import type {
  Account,
  AccountRef,
  Asset,
  Balance,
  NewTransfer,
  Transfer,
  TransferInput,
  TransferKind,
  TransferResult,
  TransferType,
} from "./types.js";

export type TransferOptions = {
  /** Run inside this client's open transaction instead of a new one. */
  client?: PoolClient;
  /**
   * The ids are expected not to exist yet (e.g. deposit credits of facts with no standing credit):
   * the batch skips reading them first, and is redone the ordinary way (reading them) when its
   * write meets an id that exists or failed. Results are the same either way.
   */
  expectNew?: boolean;
};

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
  balanceAt: (ref: AccountRef, at: { transferId: string } | { time: Date }) => Promise<Balance>;
  /** Newest first; pass `nextCursor` back for the next page. */
  accountTransfers: (
    ref: AccountRef,
    page?: { limit?: number; cursor?: string },
  ) => Promise<{ transfers: Transfer[]; nextCursor: string | null }>;
  getTransfer: (id: string) => Promise<Transfer | undefined>;
  /** Frozen accounts accept no new debits (holds already placed can still be posted or voided). */
  freeze: (ref: AccountRef) => Promise<void>;
  unfreeze: (ref: AccountRef) => Promise<void>;
  check: () => Promise<CheckReport>;
  /** Waits for in-flight batched transfers. */
  close: () => Promise<void>;
};

/** Control flow only: the batch needs accounts created first (see `apply`). */
class AccountsMissing extends Error {
  constructor(
    readonly sql: string,
    readonly params: unknown[],
  ) {
    super("accounts missing");
  }
}

type Waiter = {
  t: TransferInput;
  resolve: (r: TransferResult) => void;
  reject: (e: unknown) => void;
};

const ACCOUNT_SELECT = `SELECT id::text, asset_id, name, kind, normal, debits_must_not_exceed_credits,
  credits_must_not_exceed_debits, frozen, debits_pending::text, debits_posted::text, credits_pending::text,
  credits_posted::text FROM ledger.accounts`;

type AccountRow = {
  id: string;
  asset_id: string;
  name: string;
  kind: Account["kind"];
  normal: Account["normal"];
  debits_must_not_exceed_credits: boolean;
  credits_must_not_exceed_debits: boolean;
  frozen: boolean;
  debits_pending: string;
  debits_posted: string;
  credits_pending: string;
  credits_posted: string;
};

function toAccount(r: AccountRow): Account {
  const b = {
    debitsPending: BigInt(r.debits_pending),
    debitsPosted: BigInt(r.debits_posted),
    creditsPending: BigInt(r.credits_pending),
    creditsPosted: BigInt(r.credits_posted),
  };
  return {
    id: BigInt(r.id),
    assetId: r.asset_id,
    name: r.name,
    kind: r.kind,
    normal: r.normal,
    debitsMustNotExceedCredits: r.debits_must_not_exceed_credits,
    creditsMustNotExceedDebits: r.credits_must_not_exceed_debits,
    frozen: r.frozen,
    ...b,
    available: availableBalance(r.normal, b),
  };
}

const TRANSFER_SELECT = `SELECT seq::text, id::text, asset_id, debit_account_id::text, credit_account_id::text,
  amount::text, type, pending_id::text, posted_delta::text, pending_delta::text, kind, chain_id::text, tx_hash,
  position, reverses_id::text, timeout_at, memo, created_at FROM ledger.transfers`;

type TransferRow = {
  seq: string;
  id: string;
  asset_id: string;
  debit_account_id: string;
  credit_account_id: string;
  amount: string;
  type: TransferType;
  pending_id: string | null;
  posted_delta: string;
  pending_delta: string;
  kind: TransferKind;
  chain_id: string | null;
  tx_hash: string | null;
  position: string | null;
  reverses_id: string | null;
  timeout_at: Date | null;
  memo: string | null;
  created_at: Date;
};

export function toTransfer(r: TransferRow): Transfer {
  return {
    seq: BigInt(r.seq),
    id: r.id,
    assetId: r.asset_id,
    debitAccountId: BigInt(r.debit_account_id),
    creditAccountId: BigInt(r.credit_account_id),
    amount: BigInt(r.amount),
    type: r.type,
    pendingId: r.pending_id,
    postedDelta: BigInt(r.posted_delta),
    pendingDelta: BigInt(r.pending_delta),
    kind: r.kind,
    chainRef:
      r.chain_id !== null && r.tx_hash !== null && r.position !== null
        ? { chainId: Number(r.chain_id), txHash: r.tx_hash, position: r.position }
        : null,
    reversesId: r.reverses_id,
    timeoutAt: r.timeout_at,
    memo: r.memo,
    createdAt: r.created_at,
  };
}

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
  const registry = common.metrics.registry;
  const transfersTotal =
    (registry.getSingleMetric("custody_ledger_transfers_total") as Counter<"status"> | undefined) ??
    new Counter({
      name: "custody_ledger_transfers_total",
      help: "Transfers submitted to the ledger, by result",
      labelNames: ["status"],
      registers: [registry],
    });

  // Assets are never deleted, so an id once seen committed stays valid.
  const knownAssets = new Set<string>();
  const accountIds = new Map<string, bigint>();
  const refreshAssets = async (ids: Iterable<string>) => {
    const wanted = [...new Set(ids)].filter((id) => !knownAssets.has(id));
    if (wanted.length === 0) return;
    const r = await pool.query<{ id: string }>(
      "SELECT id FROM ledger.assets WHERE id = ANY($1::text[])",
      [wanted],
    );
    for (const row of r.rows) knownAssets.add(row.id);
  };

  const count = (results: TransferResult[]) => {
    for (const r of results)
      transfersTotal.inc({ status: r.status === "failed" ? r.code : r.status });
  };

  async function createTransfers(
    transfers: readonly TransferInput[],
    options: TransferOptions = {},
  ): Promise<TransferResult[]> {
    return apply(transfers, options);
  }

  /** Ids found not new (or a transfer refused) under `onlyNew`: the batch wrote nothing. */
  const NOT_ALL_NEW = null;

  async function apply(
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew: true },
  ): Promise<TransferResult[] | null>;
  async function apply(
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew?: false },
  ): Promise<TransferResult[]>;
  async function apply(
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew?: boolean },
  ): Promise<TransferResult[] | null> {
    if (transfers.length === 0) return [];
    await refreshAssets(transfers.flatMap((t) => ("assetId" in t ? [t.assetId] : [])));
    const snapshot = new Set(knownAssets);
    const client = options.client;
    const onlyNew = options.onlyNew === true;
    // Ids taken as new until a write (or an outcome other than created) says otherwise.
    let assumeNew = options.expectNew === true || onlyNew;
    if (client) {
      // A savepoint lets a lost id race be retried without aborting the caller's transaction.
      for (let attempt = 1; ; attempt++) {
        await client.query("SAVEPOINT ledger_batch");
        try {
          const results = await runBatch(client, transfers, {
            knownAssets: snapshot,
            accountIds,
            assumeNew,
          });
          await client.query("RELEASE SAVEPOINT ledger_batch");
          count(results);
          return results;
        } catch (error) {
          if (error instanceof TransferIdRaceError && (attempt < 5 || assumeNew)) {
            await client.query("ROLLBACK TO SAVEPOINT ledger_batch");
            if (onlyNew) return NOT_ALL_NEW;
            assumeNew = false;
            continue;
          }
          throw error;
        }
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await withTransaction(pool, (client) =>
          runBatch(client, transfers, {
            knownAssets: snapshot,
            accountIds,
            assumeNew,
            // Missing accounts are created outside the batch's transaction, after it rolled
            // back: creation then commits on its own, never waits inside our lock order, and
            // never needs a second pool connection while this one is held (pool exhaustion).
            createAccounts: async (sql, params) => {
              throw new AccountsMissing(sql, params);
            },
          }),
        );
        count(results);
        return results;
      } catch (error) {
        if (error instanceof AccountsMissing && attempt < 5) {
          await pool.query(error.sql, error.params);
          continue;
        }
        if (error instanceof TransferIdRaceError && (attempt < 5 || assumeNew)) {
          if (onlyNew) return NOT_ALL_NEW;
          assumeNew = false;
          continue;
        }
        throw error;
      }
    }
  }

  // The shared-transaction path: callers without a client queue here; each lane takes whatever
  // accumulated while the previous commit ran.
  const queue: Waiter[] = [];
  let running = 0;
  const idle: (() => void)[] = [];
  const drain = async () => {
    running++;
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, maxBatch);
        try {
          const results = await apply(
            batch.map((w) => w.t),
            {},
          );
          batch.forEach((w, i) => {
            const r = results[i];
            if (r) w.resolve(r);
            else w.reject(new Error("ledger returned no result"));
          });
        } catch (error) {
          for (const w of batch) w.reject(error);
        }
      }
    } finally {
      running--;
      if (running === 0) for (const f of idle.splice(0)) f();
    }
  };
  const submit = (t: TransferInput): Promise<TransferResult> =>
    new Promise((resolve, reject) => {
      // Callers of the shared path do not share fate: a caller's transfer is never linked to another's.
      const { linked: _linked, ...own } = t;
      queue.push({ t: own as TransferInput, resolve, reject });
      if (running < lanes) void drain();
    });

  async function transfer(t: TransferInput, options: TransferOptions = {}) {
    if (options.client) return outcome((await apply([t], options))[0]);
    return outcome(await submit(t));
  }

  const findAccount = async (ref: AccountRef, db: Queryable = pool) => {
    const r = await db.query<AccountRow>(`${ACCOUNT_SELECT} WHERE asset_id = $1 AND name = $2`, [
      ref.assetId,
      ref.name,
    ]);
    return r.rows[0] ? toAccount(r.rows[0]) : undefined;
  };
  const requireAccount = async (ref: AccountRef, db?: Queryable) => {
    const a = await findAccount(ref, db);
    if (!a) throw new AccountNotFoundError(ref.assetId, ref.name);
    return a;
  };

  async function sumBalance(accountId: bigint, where: string, params: unknown[]) {
    const r = await pool.query<{ dp: string; dpo: string; cp: string; cpo: string }>(
      `SELECT
         COALESCE(sum(pending_delta) FILTER (WHERE side = 'd'), 0)::text AS dp,
         COALESCE(sum(posted_delta) FILTER (WHERE side = 'd'), 0)::text AS dpo,
         COALESCE(sum(pending_delta) FILTER (WHERE side = 'c'), 0)::text AS cp,
         COALESCE(sum(posted_delta) FILTER (WHERE side = 'c'), 0)::text AS cpo
       FROM (
         SELECT 'd' AS side, pending_delta, posted_delta FROM ledger.transfers WHERE debit_account_id = $1 AND ${where}
         UNION ALL
         SELECT 'c', pending_delta, posted_delta FROM ledger.transfers WHERE credit_account_id = $1 AND ${where}
       ) s`,
      [accountId.toString(), ...params],
    );
    const row = r.rows[0];
    return {
      debitsPending: BigInt(row?.dp ?? "0"),
      debitsPosted: BigInt(row?.dpo ?? "0"),
      creditsPending: BigInt(row?.cp ?? "0"),
      creditsPosted: BigInt(row?.cpo ?? "0"),
    };
  }

  const setFrozen = async (ref: AccountRef, frozen: boolean) => {
    const r = await pool.query(
      "UPDATE ledger.accounts SET frozen = $3 WHERE asset_id = $1 AND name = $2",
      [ref.assetId, ref.name, frozen],
    );
    if (r.rowCount === 0) throw new AccountNotFoundError(ref.assetId, ref.name);
    log.info({
      msg: frozen ? "account frozen" : "account unfrozen",
      asset_id: ref.assetId,
      account: ref.name,
    });
  };

  return {
    async ensureAsset(asset) {
      const token = asset.token.toLowerCase() as `0x${string}`;
      const id = assetIdOf(asset.chainId, token);
      await pool.query(
        `INSERT INTO ledger.assets (id, chain_id, token, symbol, decimals) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING`,
        [id, asset.chainId, token, asset.symbol, asset.decimals],
      );
      const r = await pool.query<{ symbol: string; decimals: number }>(
        "SELECT symbol, decimals FROM ledger.assets WHERE id = $1",
        [id],
      );
      knownAssets.add(id);
      return {
        id,
        chainId: asset.chainId,
        token,
        symbol: r.rows[0]?.symbol ?? asset.symbol,
        decimals: r.rows[0]?.decimals ?? asset.decimals,
      };
    },
    async ensureAssetsFromConfig(chains) {
      for (const c of chains) {
        await this.ensureAsset({
          chainId: c.chainId,
          token: "0x0000000000000000000000000000000000000000",
          symbol: c.nativeSymbol,
          decimals: c.nativeDecimals,
        });
        for (const t of c.tokens) {
          await this.ensureAsset({
            chainId: c.chainId,
            token: t.address.toLowerCase() as `0x${string}`,
            symbol: t.symbol,
            decimals: t.decimals,
          });
        }
      }
    },
    async ensureAccount(ref) {
      const cls = classifyAccount(ref.name);
      if (!cls) throw new InvalidAccountError(ref.name, "not in the chart of accounts");
      await pool.query(
        `INSERT INTO ledger.accounts (asset_id, name, kind, normal, debits_must_not_exceed_credits, credits_must_not_exceed_debits)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (asset_id, name) DO NOTHING`,
        [
          ref.assetId,
          ref.name,
          cls.kind,
          cls.normal,
          cls.debitsMustNotExceedCredits,
          cls.creditsMustNotExceedDebits,
        ],
      );
      return requireAccount(ref);
    },
    getAccount: (ref, options = {}) => findAccount(ref, options.client ?? pool),
    createTransfers,
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
      const r = await pool.query<TransferRow>(
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
      const r = await pool.query<TransferRow>(`${TRANSFER_SELECT} WHERE id = $1::uuid`, [id]);
      return r.rows[0] ? toTransfer(r.rows[0]) : undefined;
    },
    freeze: (ref) => setFrozen(ref, true),
    unfreeze: (ref) => setFrozen(ref, false),
    check: () => checkLedger(pool),
    async close() {
      if (running === 0) return;
      await new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}
