/**
 * One batch of transfers inside one Postgres transaction (the caller's client, already in BEGIN):
 * read the ids, lock every touched account once in id order, read the holds under those locks,
 * decide with `applyBatch`, and write everything with one statement of unnest()ed arrays.
 */
import type { PoolClient } from "../foundation/db.js";
import { ACCOUNT_COLUMNS, type AccountRow, toAccountState } from "./accountRow.js";
import {
  type AccountState,
  accountKey,
  applyBatch,
  type BatchInput,
  type BatchState,
  type HoldState,
  isResolve,
  type StoredTransfer,
  validateTransfer,
} from "./applyBatch.js";
import { classifyAccount } from "./chartOfAccounts.js";
import { TransferIdRaceError } from "./errors.js";
import { isUuid } from "./transferId.js";
import { chainRefOf } from "./transferRow.js";
import type { FailureCode, TransferKind, TransferResult, TransferType } from "./types.js";

export type Queryable = Pick<PoolClient, "query">;

// Names resolve to ids without a lock (ids never change and accounts are never deleted), then
// rows are locked by id alone, in id order, so two batches touching overlapping accounts queue
// instead of deadlocking. (Locking through a join on the same table lost rows under concurrent
// updates: READ COMMITTED's recheck of an updated row does not re-run the join.)
const RESOLVE_ACCOUNTS = `
SELECT a.id::text, a.asset_id, a.name FROM ledger.accounts a
JOIN unnest($1::text[], $2::text[]) AS u(asset_id, name) ON a.asset_id = u.asset_id AND a.name = u.name`;

// In numeric id order (the table's column: the output column "id" is text, and ordering by it
// locked "100001" before "7" while reorg holds lock in numeric order, a deadlock to retry).
const LOCK_ACCOUNTS = `
SELECT ${ACCOUNT_COLUMNS} FROM ledger.accounts WHERE id = ANY($1::bigint[])
ORDER BY ledger.accounts.id FOR UPDATE`;

const CREATE_ACCOUNTS = `
INSERT INTO ledger.accounts (asset_id, name, kind, normal, debits_must_not_exceed_credits, credits_must_not_exceed_debits)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], $6::boolean[])
ON CONFLICT (asset_id, name) DO NOTHING`;

// Account ids are int8, which pg gives as strings: read as text and converted with BigInt. Amounts
// are NUMERIC and arrive as bigints (foundation/db.ts' PG_TYPES).
const READ_HOLDS = `
SELECT h.transfer_id::text, h.asset_id, h.debit_account_id::text, h.credit_account_id::text, h.amount,
  h.state, t.kind, (h.timeout_at IS NOT NULL AND h.timeout_at <= now()) AS timed_out
FROM ledger.holds h JOIN ledger.transfers t ON t.id = h.transfer_id
WHERE h.transfer_id = ANY($1::uuid[])`;

type HoldRow = {
  transfer_id: string;
  asset_id: string;
  debit_account_id: string;
  credit_account_id: string;
  amount: bigint;
  state: HoldState["state"];
  kind: TransferKind;
  timed_out: boolean;
};

// A hold's requested timeout is its timeout_at less its created_at: WRITE sets both from the
// same now() (the transaction's start), and transfers are immutable.
const READ_IDS = `
SELECT u.id::text AS id, t.type, t.asset_id, t.debit_account_id::text, t.credit_account_id::text, t.amount,
  t.pending_id::text, t.kind, t.chain_id::text, t.tx_hash, t.position, t.reverses_id::text, t.memo,
  extract(epoch FROM t.timeout_at - t.created_at)::int AS timeout_s,
  f.code AS failed_code, f.detail AS failed_detail
FROM unnest($1::uuid[]) AS u(id)
LEFT JOIN ledger.transfers t ON t.id = u.id
LEFT JOIN ledger.failed_transfers f ON f.id = u.id
WHERE t.id IS NOT NULL OR f.id IS NOT NULL`;

type IdRow = {
  id: string;
  type: TransferType | null;
  asset_id: string | null;
  debit_account_id: string | null;
  credit_account_id: string | null;
  amount: bigint | null;
  pending_id: string | null;
  kind: TransferKind | null;
  chain_id: string | null;
  tx_hash: string | null;
  position: string | null;
  reverses_id: string | null;
  memo: string | null;
  timeout_s: number | null;
  failed_code: FailureCode | null;
  failed_detail: string | null;
};

// Every write of a batch in one round trip. Holds created in this batch are inserted with their
// final state (a statement cannot update rows it inserts itself).
const WRITE = `
WITH ins AS (
  INSERT INTO ledger.transfers (id, asset_id, debit_account_id, credit_account_id, amount, type, pending_id,
    posted_delta, pending_delta, kind, chain_id, tx_hash, position, reverses_id, timeout_at, memo)
  SELECT id, asset_id, d, c, amount, type, pending_id, posted_delta, pending_delta, kind, chain_id, tx_hash,
    position, reverses_id, CASE WHEN timeout_s IS NULL THEN NULL ELSE now() + make_interval(secs => timeout_s) END, memo
  FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::numeric[], $6::text[], $7::uuid[],
    $8::numeric[], $9::numeric[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::uuid[], $15::int[], $16::text[])
    WITH ORDINALITY AS u(id, asset_id, d, c, amount, type, pending_id, posted_delta, pending_delta, kind, chain_id,
      tx_hash, position, reverses_id, timeout_s, memo, ord)
  WHERE NOT EXISTS (SELECT 1 FROM ledger.failed_transfers f WHERE f.id = u.id)
  ORDER BY ord
  ON CONFLICT (id) DO NOTHING
  RETURNING id
), acc AS (
  UPDATE ledger.accounts a SET debits_pending = u.dp, debits_posted = u.dpo, credits_pending = u.cp, credits_posted = u.cpo
  FROM unnest($17::bigint[], $18::numeric[], $19::numeric[], $20::numeric[], $21::numeric[]) AS u(id, dp, dpo, cp, cpo)
  WHERE a.id = u.id
  RETURNING a.id
), new_holds AS (
  INSERT INTO ledger.holds (transfer_id, asset_id, debit_account_id, credit_account_id, amount, timeout_at, state, resolved_by, resolved_at)
  SELECT id, asset_id, d, c, amount, CASE WHEN timeout_s IS NULL THEN NULL ELSE now() + make_interval(secs => timeout_s) END,
    state, resolved_by, CASE WHEN resolved_by IS NULL THEN NULL ELSE now() END
  FROM unnest($22::uuid[], $23::text[], $24::bigint[], $25::bigint[], $26::numeric[], $27::int[], $28::text[], $29::uuid[])
    AS u(id, asset_id, d, c, amount, timeout_s, state, resolved_by)
  -- the same hold placed by another transaction after our read: counted, and the batch redone
  ON CONFLICT (transfer_id) DO NOTHING
  RETURNING transfer_id
), resolved AS (
  UPDATE ledger.holds h SET state = u.state, resolved_by = u.resolved_by, resolved_at = now()
  FROM unnest($30::uuid[], $31::text[], $32::uuid[]) AS u(id, state, resolved_by)
  WHERE h.transfer_id = u.id AND h.state = 'pending'
  RETURNING h.transfer_id
), failed AS (
  INSERT INTO ledger.failed_transfers (id, code, detail)
  SELECT * FROM unnest($33::uuid[], $34::text[], $35::text[]) AS u(id, code, detail)
  -- an id another transaction created after our read must not also be recorded as failed
  WHERE NOT EXISTS (SELECT 1 FROM ledger.transfers t WHERE t.id = u.id)
  ON CONFLICT (id) DO NOTHING
  RETURNING id
)
SELECT (SELECT count(*) FROM ins)::int AS inserted, (SELECT count(*) FROM acc)::int AS accounts,
  (SELECT count(*) FROM resolved)::int AS resolved, (SELECT count(*) FROM new_holds)::int AS holds,
  (SELECT count(*) FROM failed)::int AS failed`;

const str = (v: bigint) => v.toString();

export type RunBatchOptions = {
  knownAssets: ReadonlySet<string>;
  /** name → id of accounts seen before (ids never change; a stale entry is detected and dropped). */
  accountIds?: Map<string, bigint>;
  /** Creates missing accounts. Defaults to the batch's own client. */
  createAccounts?: (query: string, params: unknown[]) => Promise<void>;
  /**
   * Skip reading the ids before deciding: every id is taken to be new. Safe because the write
   * checks it (an id that exists or failed is not inserted, the counts differ, and the batch
   * throws TransferIdRaceError to be redone with the read). For callers whose ids are new in
   * the usual case, e.g. deposit credits.
   */
  assumeNew?: boolean;
};

/**
 * Resolve names to ids (creating missing accounts), then lock every account by id in id order.
 * Ids of accounts created in this transaction stay out of the shared cache until they are seen
 * committed, so a concurrent transaction never tries to lock a row it cannot see.
 */
async function lockAccounts(
  client: Queryable,
  nameList: { assetId: string; name: string }[],
  holdAccountIds: Set<string>,
  options: RunBatchOptions,
): Promise<Map<string, AccountState>> {
  const shared = options.accountIds ?? new Map<string, bigint>();
  const own = new Map<string, bigint>();
  const idOf = (n: { assetId: string; name: string }) =>
    shared.get(accountKey(n.assetId, n.name)) ?? own.get(accountKey(n.assetId, n.name));
  const resolve = async (refs: { assetId: string; name: string }[], into: Map<string, bigint>) => {
    if (refs.length === 0) return;
    const r = await client.query<{ id: string; asset_id: string; name: string }>(RESOLVE_ACCOUNTS, [
      refs.map((n) => n.assetId),
      refs.map((n) => n.name),
    ]);
    for (const row of r.rows) into.set(accountKey(row.asset_id, row.name), BigInt(row.id));
  };
  for (let attempt = 1; ; attempt++) {
    const unknown = () => nameList.filter((n) => idOf(n) === undefined);
    await resolve(unknown(), shared);
    const missing = unknown();
    if (missing.length > 0) {
      const classes = missing.map((n) => classifyAccount(n.name));
      const params = [
        missing.map((n) => n.assetId),
        missing.map((n) => n.name),
        classes.map((c) => c?.kind),
        classes.map((c) => c?.normal),
        classes.map((c) => c?.debitsMustNotExceedCredits),
        classes.map((c) => c?.creditsMustNotExceedDebits),
      ];
      if (options.createAccounts) {
        await options.createAccounts(CREATE_ACCOUNTS, params);
        await resolve(missing, shared);
      } else {
        await client.query(CREATE_ACCOUNTS, params);
        await resolve(missing, own);
      }
    }
    const lockIds = new Set(holdAccountIds);
    for (const n of nameList) {
      const id = idOf(n);
      if (id === undefined)
        throw new Error(`account ${n.name} in ${n.assetId} could not be created`);
      lockIds.add(id.toString());
    }
    const locked = await client.query<AccountRow>(LOCK_ACCOUNTS, [[...lockIds]]);
    const accounts = new Map<string, AccountState>();
    for (const row of locked.rows) {
      const a = toAccountState(row);
      accounts.set(accountKey(a.assetId, a.name), a);
    }
    if (locked.rows.length === lockIds.size) return accounts;
    // A cached id whose creation was rolled back with a caller's transaction: forget it and redo
    // (nothing is written yet, and re-locking rows we hold is a no-op).
    for (const n of nameList)
      if (!accounts.has(accountKey(n.assetId, n.name)))
        shared.delete(accountKey(n.assetId, n.name));
    if (attempt >= 3) throw new TransferIdRaceError([]);
  }
}

/** Runs one batch on `client`, which must already be inside a transaction. */
export async function runBatch(
  client: Queryable,
  inputs: readonly BatchInput[],
  options: RunBatchOptions,
): Promise<TransferResult[]> {
  // Names of accounts that well-formed new transfers touch.
  const names = new Map<string, { assetId: string; name: string }>();
  const pendingIds = new Set<string>();
  const ids = new Set<string>();
  for (const t of inputs) {
    if (validateTransfer(t, options.knownAssets)) continue;
    ids.add(t.id);
    if (isResolve(t)) pendingIds.add(t.pendingId);
    else {
      names.set(accountKey(t.assetId, t.debit), { assetId: t.assetId, name: t.debit });
      names.set(accountKey(t.assetId, t.credit), { assetId: t.assetId, name: t.credit });
    }
  }
  const pendingList = [...pendingIds];
  const holdAccountIds = new Set<string>();
  if (pendingList.length > 0) {
    const pre = await client.query<HoldRow>(READ_HOLDS, [pendingList]);
    for (const h of pre.rows) {
      holdAccountIds.add(h.debit_account_id);
      holdAccountIds.add(h.credit_account_id);
    }
  }
  const nameList = [...names.values()];
  // Read before the locks, to keep the locked section short. An id written or failed by
  // another transaction after this read is caught by the write (see WRITE), which then rolls
  // the batch back for a retry that sees it.
  const existing = new Map<string, StoredTransfer>();
  const failed = new Map<string, { code: FailureCode; detail: string | null }>();
  const idList = options.assumeNew ? [] : [...ids].filter(isUuid);
  if (idList.length > 0) {
    const r = await client.query<IdRow>(READ_IDS, [idList]);
    for (const row of r.rows) {
      if (row.type !== null) existing.set(row.id, toStored(row));
      else if (row.failed_code !== null)
        failed.set(row.id, { code: row.failed_code, detail: row.failed_detail });
    }
  }

  const accounts = await lockAccounts(client, nameList, holdAccountIds, options);

  const holds = new Map<string, HoldState>();
  if (pendingList.length > 0) {
    const post = await client.query<HoldRow>(READ_HOLDS, [pendingList]);
    // A hold committed after the first read (while we waited for a lock) names accounts we did
    // not lock: redo the batch, whose first read then sees it, rather than fail every transfer.
    const lockedIds = new Set([...accounts.values()].map((a) => a.id.toString()));
    const unlocked = post.rows.filter(
      (h) => !lockedIds.has(h.debit_account_id) || !lockedIds.has(h.credit_account_id),
    );
    if (unlocked.length > 0) throw new TransferIdRaceError(unlocked.map((h) => h.transfer_id));
    for (const h of post.rows) {
      holds.set(h.transfer_id, {
        transferId: h.transfer_id,
        assetId: h.asset_id,
        debitAccountId: BigInt(h.debit_account_id),
        creditAccountId: BigInt(h.credit_account_id),
        amount: h.amount,
        kind: h.kind,
        state: h.state,
        timedOut: h.timed_out,
      });
    }
  }

  const state: BatchState = { knownAssets: options.knownAssets, accounts, holds, existing, failed };
  const out = applyBatch(inputs, state);
  // Taking every id as new decides the same as reading them only when every transfer is created
  // (the write then proves none existed or failed); any other outcome is decided again with the read.
  if (options.assumeNew && out.results.some((r) => r.status !== "created"))
    throw new TransferIdRaceError([]);

  if (out.inserts.length + out.failures.length + out.changed.length === 0) return out.results;
  const newHoldIds = new Set(out.newHolds.map((h) => h.transferId));
  const resolvedBy = new Map(out.resolvedHolds.map((r) => [r.transferId, r.resolvedBy]));
  const resolvedExisting = out.resolvedHolds.filter((r) => !newHoldIds.has(r.transferId));
  const timeouts = new Map(out.inserts.map((t) => [t.id, t.timeoutSeconds]));
  const ins = out.inserts;
  const w = await client.query<{
    inserted: number;
    resolved: number;
    holds: number;
    failed: number;
  }>(WRITE, [
    ins.map((t) => t.id),
    ins.map((t) => t.assetId),
    ins.map((t) => str(t.debitAccountId)),
    ins.map((t) => str(t.creditAccountId)),
    ins.map((t) => str(t.amount)),
    ins.map((t) => t.type),
    ins.map((t) => t.pendingId),
    ins.map((t) => str(t.postedDelta)),
    ins.map((t) => str(t.pendingDelta)),
    ins.map((t) => t.kind),
    ins.map((t) => (t.chainRef ? String(t.chainRef.chainId) : null)),
    ins.map((t) => t.chainRef?.txHash ?? null),
    ins.map((t) => t.chainRef?.position ?? null),
    ins.map((t) => t.reversesId),
    ins.map((t) => t.timeoutSeconds),
    ins.map((t) => t.memo),
    out.changed.map((a) => str(a.id)),
    out.changed.map((a) => str(a.debitsPending)),
    out.changed.map((a) => str(a.debitsPosted)),
    out.changed.map((a) => str(a.creditsPending)),
    out.changed.map((a) => str(a.creditsPosted)),
    out.newHolds.map((h) => h.transferId),
    out.newHolds.map((h) => h.assetId),
    out.newHolds.map((h) => str(h.debitAccountId)),
    out.newHolds.map((h) => str(h.creditAccountId)),
    out.newHolds.map((h) => str(h.amount)),
    out.newHolds.map((h) => timeouts.get(h.transferId) ?? null),
    out.newHolds.map((h) => h.state),
    out.newHolds.map((h) => resolvedBy.get(h.transferId) ?? null),
    resolvedExisting.map((r) => r.transferId),
    resolvedExisting.map((r) => r.state),
    resolvedExisting.map((r) => r.resolvedBy),
    out.failures.map((f) => f.id),
    out.failures.map((f) => f.code),
    out.failures.map((f) => f.detail),
  ]);
  const row = w.rows[0];
  if (
    !row ||
    row.inserted !== ins.length ||
    row.resolved !== resolvedExisting.length ||
    row.holds !== out.newHolds.length ||
    row.failed !== out.failures.length
  ) {
    // Another transaction wrote or failed one of these ids (or resolved one of these holds) after
    // our read. Roll back and decide again with what it wrote. (A failure we were about to record
    // for an id that now exists would otherwise answer "failed" for a transfer that was created.)
    throw new TransferIdRaceError(ins.map((t) => t.id));
  }
  return out.results;
}

function toStored(r: IdRow): StoredTransfer {
  return {
    id: r.id,
    type: r.type as TransferType,
    assetId: r.asset_id ?? "",
    debitAccountId: BigInt(r.debit_account_id ?? "0"),
    creditAccountId: BigInt(r.credit_account_id ?? "0"),
    amount: r.amount ?? 0n,
    pendingId: r.pending_id,
    kind: r.kind as TransferKind,
    chainRef: chainRefOf(r),
    reversesId: r.reverses_id,
    memo: r.memo,
    timeoutSeconds: r.timeout_s,
  };
}
