/**
 * The ledger's rules as a pure function: given a batch of transfers and the current state of every
 * account, hold and id it touches (read under the accounts' row locks), decide each transfer's
 * result and the rows to write. No I/O here, so every rule is unit-tested without a database.
 */
import { classifyAccount } from "./chartOfAccounts.js";
import { assetChainOf, isUuid } from "./transferId.js";
import {
  type ChainRef,
  type FailureCode,
  type ResolveTransfer,
  STICKY_FAILURES,
  TRANSFER_KINDS,
  type TransferInput,
  type TransferKind,
  type TransferResult,
  type TransferType,
} from "./types.js";

export type AccountState = {
  id: bigint;
  assetId: string;
  name: string;
  debitsMustNotExceedCredits: boolean;
  creditsMustNotExceedDebits: boolean;
  frozen: boolean;
  debitsPending: bigint;
  debitsPosted: bigint;
  creditsPending: bigint;
  creditsPosted: bigint;
};

export type HoldState = {
  transferId: string;
  assetId: string;
  debitAccountId: bigint;
  creditAccountId: bigint;
  amount: bigint;
  kind: TransferKind;
  state: "pending" | "posted" | "voided" | "expired";
  /** The hold's timeout has passed (by the database clock). */
  timedOut: boolean;
};

/** The fields of a stored transfer that a retry is compared against. */
export type StoredTransfer = {
  id: string;
  type: TransferType;
  assetId: string;
  debitAccountId: bigint;
  creditAccountId: bigint;
  amount: bigint;
  pendingId: string | null;
  kind: TransferKind;
  chainRef: ChainRef | null;
  reversesId: string | null;
  memo: string | null;
  /**
   * A hold's timeout as requested: when it expires and releases the funds, so a retry asking for
   * another one is another request (TigerBeetle's `exists_with_different_timeout`).
   */
  timeoutSeconds: number | null;
};

export type TransferRow = StoredTransfer & {
  postedDelta: bigint;
  pendingDelta: bigint;
};

export type BatchState = {
  knownAssets: ReadonlySet<string>;
  /** By `accountKey(assetId, name)`. */
  accounts: Map<string, AccountState>;
  holds: Map<string, HoldState>;
  existing: Map<string, StoredTransfer>;
  failed: Map<string, { code: FailureCode; detail: string | null }>;
};

/** Internal: the expiry sweep voids a timed-out hold with type "expire". */
export type ExpireTransfer = { type: "expire"; id: string; pendingId: string; linked?: boolean };
export type BatchInput = TransferInput | ExpireTransfer;

export type BatchOutcome = {
  results: TransferResult[];
  inserts: TransferRow[];
  newHolds: HoldState[];
  resolvedHolds: { transferId: string; state: HoldState["state"]; resolvedBy: string }[];
  failures: { id: string; code: FailureCode; detail: string | null }[];
  /** Accounts whose balances changed, with their new balances. */
  changed: AccountState[];
};

/** Post, void or expire: the transfer resolves an existing hold. */
export function isResolve(t: BatchInput): t is ResolveTransfer | ExpireTransfer {
  return t.type === "post" || t.type === "void" || t.type === "expire";
}

export function accountKey(assetId: string, name: string): string {
  return `${assetId}\u0000${name}`;
}

type Failure = { code: FailureCode; detail?: string; field?: string };

/** 2^31 − 1 (about 68 years): the largest timeout Postgres' int stores. */
const MAX_TIMEOUT_SECONDS = 2_147_483_647;

const fail = (code: FailureCode, detail?: string, field?: string): Failure => ({
  code,
  ...(detail !== undefined ? { detail } : {}),
  ...(field !== undefined ? { field } : {}),
});

/**
 * A chain reference names a fact on its asset's chain (an asset id is `<chainId>:<token>`, ledger
 * `assets_check`); `transfers_ref_on_asset_chain` (ledger 0011) is the backstop.
 */
function refOffAssetChain(ref: ChainRef, assetId: string): Failure | undefined {
  return String(ref.chainId) === assetChainOf(assetId)
    ? undefined
    : fail(
        "LEDGER_INVALID_TRANSFER",
        `chainRef.chainId ${ref.chainId} is not the chain of asset ${assetId}`,
        "chainRef",
      );
}

/** Checks that need no state; undefined when the transfer is well-formed. */
export function validateTransfer(
  t: BatchInput,
  knownAssets: ReadonlySet<string>,
): Failure | undefined {
  if (typeof t.id !== "string" || !isUuid(t.id))
    return fail("LEDGER_INVALID_TRANSFER", "id must be a lowercase UUID", "id");
  if ("chainRef" in t && t.chainRef !== undefined) {
    const r = t.chainRef;
    if (
      !Number.isSafeInteger(r.chainId) ||
      r.chainId <= 0 ||
      !/^0x[0-9a-f]{64}$/.test(r.txHash) ||
      !r.position
    )
      return fail(
        "LEDGER_INVALID_TRANSFER",
        "chainRef needs chainId, lowercase txHash and position",
        "chainRef",
      );
  }
  if (isResolve(t)) {
    if (typeof t.pendingId !== "string" || !isUuid(t.pendingId))
      return fail("LEDGER_INVALID_TRANSFER", "pendingId must be a UUID", "pendingId");
    if (
      t.type === "post" &&
      t.amount !== undefined &&
      (typeof t.amount !== "bigint" || t.amount <= 0n)
    )
      return fail("LEDGER_INVALID_TRANSFER", "amount must be a positive bigint", "amount");
    return undefined;
  }
  if (typeof t.amount !== "bigint" || t.amount <= 0n)
    return fail("LEDGER_INVALID_TRANSFER", "amount must be a positive bigint", "amount");
  if (!(TRANSFER_KINDS as readonly string[]).includes(t.kind))
    return fail(
      "LEDGER_INVALID_TRANSFER",
      `kind must be one of ${TRANSFER_KINDS.join(", ")}`,
      "kind",
    );
  if (!knownAssets.has(t.assetId))
    return fail("LEDGER_UNKNOWN_ASSET", `unknown asset ${t.assetId}`, "assetId");
  if (t.chainRef !== undefined) {
    const wrong = refOffAssetChain(t.chainRef, t.assetId);
    if (wrong) return wrong;
  }
  if (!classifyAccount(t.debit))
    return fail(
      "LEDGER_INVALID_TRANSFER",
      `debit ${t.debit} is not in the chart of accounts`,
      "debit",
    );
  if (!classifyAccount(t.credit))
    return fail(
      "LEDGER_INVALID_TRANSFER",
      `credit ${t.credit} is not in the chart of accounts`,
      "credit",
    );
  if (t.debit === t.credit)
    return fail("LEDGER_INVALID_TRANSFER", "debit and credit must differ", "credit");
  if (t.heldAgain !== undefined && (t.heldAgain !== true || t.type !== "pending"))
    return fail("LEDGER_INVALID_TRANSFER", "heldAgain is for pending transfers", "heldAgain");
  if (t.timeoutSeconds !== undefined) {
    if (t.type !== "pending")
      return fail(
        "LEDGER_INVALID_TRANSFER",
        "timeoutSeconds is for pending transfers",
        "timeoutSeconds",
      );
    // Stored as int4 (runBatch's WRITE): a larger one would fail the whole batch in Postgres.
    if (
      !Number.isSafeInteger(t.timeoutSeconds) ||
      t.timeoutSeconds <= 0 ||
      t.timeoutSeconds > MAX_TIMEOUT_SECONDS
    )
      return fail(
        "LEDGER_INVALID_TRANSFER",
        `timeoutSeconds must be a positive integer up to ${MAX_TIMEOUT_SECONDS}`,
        "timeoutSeconds",
      );
  }
  if (t.reverses !== undefined && !isUuid(t.reverses))
    return fail("LEDGER_INVALID_TRANSFER", "reverses must be a UUID", "reverses");
  return undefined;
}

function sameRef(a: ChainRef | null, b: ChainRef | null): boolean {
  if (a === null || b === null) return a === b;
  return a.chainId === b.chainId && a.txHash === b.txHash && a.position === b.position;
}

/** The first field in which `wanted` differs from `stored`, or undefined when they are the same. */
export function firstDifference(
  stored: StoredTransfer,
  wanted: StoredTransfer,
): string | undefined {
  if (stored.type !== wanted.type) return "type";
  if (stored.pendingId !== wanted.pendingId) return "pendingId";
  if (stored.assetId !== wanted.assetId) return "assetId";
  if (stored.debitAccountId !== wanted.debitAccountId) return "debit";
  if (stored.creditAccountId !== wanted.creditAccountId) return "credit";
  if (stored.amount !== wanted.amount) return "amount";
  if (stored.kind !== wanted.kind) return "kind";
  if (!sameRef(stored.chainRef, wanted.chainRef)) return "chainRef";
  if (stored.reversesId !== wanted.reversesId) return "reverses";
  if (stored.memo !== wanted.memo) return "memo";
  if (stored.timeoutSeconds !== wanted.timeoutSeconds) return "timeoutSeconds";
  return undefined;
}

type Undo = () => void;

/**
 * Apply a batch in order. Each transfer sees the effects of the ones before it; a linked chain
 * (transfers with `linked: true` followed by the one that ends the chain) succeeds or fails whole.
 */
export function applyBatch(inputs: readonly BatchInput[], state: BatchState): BatchOutcome {
  // Holds name accounts by id; built only when a batch resolves holds.
  let byIdCache: Map<bigint, AccountState> | undefined;
  const byId = () => {
    if (!byIdCache) {
      byIdCache = new Map();
      for (const a of state.accounts.values()) byIdCache.set(a.id, a);
    }
    return byIdCache;
  };
  // Balances before the batch, recorded on an account's first move (only touched accounts can change).
  const initial = new Map<AccountState, [bigint, bigint, bigint, bigint]>();
  const results: TransferResult[] = new Array(inputs.length);
  const rows = new Map<string, TransferRow>(); // created in this batch, by id
  const newHolds = new Map<string, HoldState>();
  const resolved = new Map<
    string,
    { transferId: string; state: HoldState["state"]; resolvedBy: string }
  >();
  const failures = new Map<string, { id: string; code: FailureCode; detail: string | null }>();

  let chainStart = -1;
  let undo: Undo[] = [];

  const move = (
    a: AccountState,
    field: "debitsPending" | "debitsPosted" | "creditsPending" | "creditsPosted",
    delta: bigint,
  ) => {
    if (!initial.has(a))
      initial.set(a, [a.debitsPending, a.debitsPosted, a.creditsPending, a.creditsPosted]);
    a[field] += delta;
    undo.push(() => {
      a[field] -= delta;
    });
  };

  /** The row a transfer would write, or a failure. Mutates balances (recorded in `undo`). */
  const apply = (t: BatchInput): TransferRow | Failure | "exists" => {
    const invalid = validateTransfer(t, state.knownAssets);
    if (invalid) return invalid;
    const previous = state.failed.get(t.id) ?? failures.get(t.id);
    if (previous) return fail(previous.code, previous.detail ?? undefined);

    if (isResolve(t)) {
      const hold = newHolds.get(t.pendingId) ?? state.holds.get(t.pendingId);
      const stored = rows.get(t.id) ?? state.existing.get(t.id);
      if (stored) {
        const wanted: StoredTransfer = {
          id: t.id,
          type: t.type,
          assetId: hold?.assetId ?? stored.assetId,
          debitAccountId: hold?.debitAccountId ?? stored.debitAccountId,
          creditAccountId: hold?.creditAccountId ?? stored.creditAccountId,
          amount: t.type === "post" ? (t.amount ?? hold?.amount ?? stored.amount) : 0n,
          pendingId: t.pendingId,
          kind: hold?.kind ?? stored.kind,
          chainRef: "chainRef" in t ? (t.chainRef ?? null) : null,
          reversesId: null,
          memo: "memo" in t ? (t.memo ?? null) : null,
          timeoutSeconds: null,
        };
        const field = firstDifference(stored, wanted);
        return field
          ? fail("LEDGER_TRANSFER_EXISTS_MISMATCH", `id exists with a different ${field}`, field)
          : "exists";
      }
      if (!hold)
        return fail("LEDGER_PENDING_NOT_FOUND", `no pending transfer ${t.pendingId}`, "pendingId");
      if ("chainRef" in t && t.chainRef !== undefined) {
        const wrong = refOffAssetChain(t.chainRef, hold.assetId);
        if (wrong) return wrong;
      }
      if (hold.state === "posted") return fail("LEDGER_PENDING_ALREADY_POSTED");
      if (hold.state === "voided") return fail("LEDGER_PENDING_ALREADY_VOIDED");
      if (hold.state === "expired") return fail("LEDGER_PENDING_EXPIRED");
      if (hold.timedOut && t.type !== "expire") return fail("LEDGER_PENDING_EXPIRED");
      const amount = t.type === "post" ? (t.amount ?? hold.amount) : 0n;
      if (amount > hold.amount)
        return fail("LEDGER_EXCEEDS_PENDING_AMOUNT", `hold is ${hold.amount}`, "amount");
      const debit = byId().get(hold.debitAccountId);
      const credit = byId().get(hold.creditAccountId);
      if (!debit || !credit) throw new Error(`accounts of hold ${hold.transferId} were not locked`);
      move(debit, "debitsPending", -hold.amount);
      move(credit, "creditsPending", -hold.amount);
      if (amount > 0n) {
        move(debit, "debitsPosted", amount);
        move(credit, "creditsPosted", amount);
      }
      const previousState = hold.state;
      hold.state = t.type === "post" ? "posted" : t.type === "void" ? "voided" : "expired";
      resolved.set(hold.transferId, {
        transferId: hold.transferId,
        state: hold.state,
        resolvedBy: t.id,
      });
      undo.push(() => {
        hold.state = previousState;
        resolved.delete(hold.transferId);
      });
      return {
        id: t.id,
        type: t.type,
        assetId: hold.assetId,
        debitAccountId: hold.debitAccountId,
        creditAccountId: hold.creditAccountId,
        amount,
        pendingId: t.pendingId,
        kind: hold.kind,
        chainRef: "chainRef" in t ? (t.chainRef ?? null) : null,
        reversesId: null,
        memo: "memo" in t ? (t.memo ?? null) : null,
        postedDelta: amount,
        pendingDelta: -hold.amount,
        timeoutSeconds: null,
      };
    }

    const nt = t;
    const debit = state.accounts.get(accountKey(nt.assetId, nt.debit));
    const credit = state.accounts.get(accountKey(nt.assetId, nt.credit));
    if (!debit || !credit) throw new Error(`accounts of transfer ${nt.id} were not locked`);
    const type = nt.type ?? "single";
    const wanted: TransferRow = {
      id: nt.id,
      type,
      assetId: nt.assetId,
      debitAccountId: debit.id,
      creditAccountId: credit.id,
      amount: nt.amount,
      pendingId: null,
      kind: nt.kind,
      chainRef: nt.chainRef ?? null,
      reversesId: nt.reverses ?? null,
      memo: nt.memo ?? null,
      postedDelta: type === "single" ? nt.amount : 0n,
      pendingDelta: type === "pending" ? nt.amount : 0n,
      timeoutSeconds: nt.timeoutSeconds ?? null,
    };
    const stored = rows.get(nt.id) ?? state.existing.get(nt.id);
    if (stored) {
      const field = firstDifference(stored, wanted);
      return field
        ? fail("LEDGER_TRANSFER_EXISTS_MISMATCH", `id exists with a different ${field}`, field)
        : "exists";
    }
    // Freezing stops the owner spending; a reorg hold takes back a deposit the chain no longer has,
    // and refused (a sticky failure of its one id) it was never placed, even after the unfreeze.
    // A hold placed again for a payment a reorg undid (`heldAgain`) spends nothing new either.
    if (debit.frozen && nt.kind !== "reorg_hold" && !(type === "pending" && nt.heldAgain))
      return fail("LEDGER_ACCOUNT_FROZEN", `${debit.name} is frozen`, "debit");
    if (type === "single") {
      move(debit, "debitsPosted", nt.amount);
      move(credit, "creditsPosted", nt.amount);
    } else {
      move(debit, "debitsPending", nt.amount);
      move(credit, "creditsPending", nt.amount);
    }
    if (
      debit.debitsMustNotExceedCredits &&
      debit.debitsPosted + debit.debitsPending > debit.creditsPosted
    )
      return fail(
        "LEDGER_INSUFFICIENT_BALANCE",
        `${debit.name} cannot cover ${nt.amount}`,
        "amount",
      );
    if (
      credit.creditsMustNotExceedDebits &&
      credit.creditsPosted + credit.creditsPending > credit.debitsPosted
    )
      return fail("LEDGER_EXCEEDS_DEBITS", `${credit.name} cannot take ${nt.amount}`, "amount");
    if (type === "pending") {
      const hold: HoldState = {
        transferId: nt.id,
        assetId: nt.assetId,
        debitAccountId: debit.id,
        creditAccountId: credit.id,
        amount: nt.amount,
        kind: nt.kind,
        state: "pending",
        timedOut: false,
      };
      newHolds.set(nt.id, hold);
      undo.push(() => newHolds.delete(nt.id));
    }
    return wanted;
  };

  const pendingRows: { index: number; row: TransferRow }[] = [];

  const endChain = (failedAt: number | undefined, end: number) => {
    if (failedAt !== undefined) {
      for (let k = undo.length - 1; k >= 0; k--) undo[k]?.();
      for (let j = chainStart; j <= end; j++) {
        if (j === failedAt) continue;
        const id = inputs[j]?.id ?? "";
        results[j] = { id, status: "failed", code: "LEDGER_LINKED_EVENT_FAILED" };
      }
      for (const p of pendingRows) rows.delete(p.row.id);
    }
    pendingRows.length = 0;
    undo = [];
    chainStart = -1;
  };

  let chainFailedAt: number | undefined;
  for (let i = 0; i < inputs.length; i++) {
    const t = inputs[i] as BatchInput;
    if (chainStart < 0) {
      chainStart = i;
      chainFailedAt = undefined;
    }
    if (chainFailedAt === undefined) {
      const before = undo.length;
      const outcome = apply(t);
      if (outcome === "exists") {
        results[i] = { id: t.id, status: "exists" };
      } else if ("code" in outcome) {
        // A failed transfer leaves no trace on balances even outside a chain.
        for (let k = undo.length - 1; k >= before; k--) undo[k]?.();
        undo.length = before;
        results[i] = {
          id: t.id,
          status: "failed",
          code: outcome.code,
          ...(outcome.field !== undefined ? { field: outcome.field } : {}),
          ...(outcome.detail !== undefined ? { detail: outcome.detail } : {}),
        };
        if (STICKY_FAILURES.has(outcome.code) && !state.failed.has(t.id)) {
          failures.set(t.id, { id: t.id, code: outcome.code, detail: outcome.detail ?? null });
        }
        chainFailedAt = i;
      } else {
        rows.set(outcome.id, outcome);
        pendingRows.push({ index: i, row: outcome });
        results[i] = { id: t.id, status: "created" };
      }
    } else {
      results[i] = { id: t.id, status: "failed", code: "LEDGER_LINKED_EVENT_FAILED" };
    }
    const linked = "linked" in t && t.linked === true;
    if (!linked || i === inputs.length - 1) {
      if (linked && chainFailedAt === undefined) {
        // A chain left open at the end of the batch fails whole, as in TigerBeetle.
        chainFailedAt = i;
        results[i] = {
          id: t.id,
          status: "failed",
          code: "LEDGER_INVALID_TRANSFER",
          field: "linked",
          detail: "linked chain is not closed",
        };
      }
      endChain(chainFailedAt, i);
    }
  }

  const changed: AccountState[] = [];
  for (const [a, [dp, dpo, cp, cpo]] of initial) {
    if (
      a.debitsPending !== dp ||
      a.debitsPosted !== dpo ||
      a.creditsPending !== cp ||
      a.creditsPosted !== cpo
    )
      changed.push(a);
  }
  changed.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return {
    results,
    inserts: [...rows.values()],
    newHolds: [...newHolds.values()],
    resolvedHolds: [...resolved.values()],
    failures: [...failures.values()],
    changed,
  };
}
