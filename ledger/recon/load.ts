/**
 * Reading a run's inputs from Postgres: chain facts (`chain.transfers`), posted ledger entries
 * (`ledger.transfers`), custody addresses and ledger balances, all in the caller's transaction (a
 * REPEATABLE READ snapshot, so both sides are read at the same instant). Full runs read facts and
 * entries range by range while matching (stream.ts); incremental runs read what changed since the
 * previous run's watermarks, the items its breaks (and every break still unresolved) named, and
 * everything sharing a chain reference with those (changes.ts). The parts: watermarks.ts,
 * seqGaps.ts, custodyAddresses.ts, factEntryRows.ts, claimants.ts, ledgerBalances.ts.
 */
import type { PoolClient } from "../../foundation/db.js";
import { accountKey } from "./balances.js";
import { loadChanges } from "./changes.js";
import { loadLateEntries } from "./claimants.js";
import { loadBalances, loadReorgHolds } from "./ledgerBalances.js";
import {
  isUserAccount,
  type LiabilityUpdate,
  liabilitiesAt,
  liabilityMoves,
} from "./liabilities.js";
import { entryGapsAt, type JournalRecord } from "./seqGaps.js";
import type { ChainFact, CustodyKind, LedgerEntry, ReorgHold } from "./types.js";
import { type PreviousRun, readWatermarks, type Watermarks } from "./watermarks.js";

/**
 * Facts orphaned this long before the previous run's snapshot are re-read: the indexer's
 * transaction stamps `orphaned_at` when it starts, and may commit after our snapshot. Not the
 * bound of what is found: every orphaning comes with a reorg, found by its id past the previous
 * run's reorg watermark however long its transaction took (changes.ts); by `detected_at` within
 * this lookback only after a run stored without that watermark.
 */
export const DEFAULT_LOOKBACK_MS = 5 * 60_000;

export type RunInputs = {
  facts: ChainFact[];
  /**
   * An incremental run's changed facts (`loadChangedFacts`: every fact in (previous block, block],
   * rows new since the previous run, rows orphaned since); null in a full run.
   */
  changedFacts: ChainFact[] | null;
  entries: LedgerEntry[];
  custody: Map<string, CustodyKind>;
  /** Posted ledger balances (debits − credits) at the run's block, by `accountKey`. */
  ledger: Map<string, bigint>;
  /** User liabilities (credits − debits over `user:*`) at the run's block, per asset. */
  liabilities: Map<string, bigint>;
  /** Entries left for a later run: their chain fact is above the run's block. */
  deferred: number;
  /** All entries whose fact is above the block (the next run re-examines them). */
  deferredEntries: { id: string; txHash: string; position: string }[];
  /** Ids of `deferredEntries` (a full run leaves them out while it streams). */
  lateIds: Set<string>;
  /** Every deposit credit of the chain under a reorg hold (pending or posted). */
  reorgHolds: ReorgHold[];
  watermarks: Watermarks;
  /** How the run moves the running user liabilities (liabilities.ts). */
  liabilityUpdate: LiabilityUpdate;
};

export async function loadRunInputs(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    previous: PreviousRun | null;
    lookbackMs?: number;
    /**
     * The chain's custody addresses read by the caller in the same snapshot: all of them for a
     * full run; for an incremental one those it needs (the caller adds the facts' ones after).
     */
    custody: Map<string, CustodyKind>;
    /** An incremental run's changed entries, when the caller reads them on another client. */
    changedEntries?: Promise<LedgerEntry[]> | undefined;
    /**
     * A full run's: the seq record it continues its gaps from (store.ts findJournalRecord); an
     * incremental run continues `previous`'s.
     */
    journal?: JournalRecord | null | undefined;
  },
): Promise<RunInputs> {
  const { chainId, block, previous } = args;
  const lookbackMs = args.lookbackMs ?? DEFAULT_LOOKBACK_MS;
  const watermarks = await readWatermarks(client, chainId);
  const now = watermarks.snapshotAt.getTime();
  watermarks.entryGaps = await entryGapsAt(
    client,
    previous ?? args.journal ?? null,
    watermarks.entry,
    now,
    watermarks.xids,
  );
  const { custody } = args;
  // A full run matches in tx-hash ranges while it reads them (stream.ts): nothing loaded here.
  const changes = previous
    ? await loadChanges(client, {
        chainId,
        block,
        previous,
        lookbackMs,
        changedEntries: args.changedEntries,
      })
    : null;
  let entries = changes?.entries ?? [];
  const changedEntries = changes?.changedEntries ?? null;
  const reorgHolds = await loadReorgHolds(client, chainId);
  // A credit under a reorg hold (and the posted hold) stands as booked at any block: the pending
  // hold already takes it out of the balances, a posted one nets it to zero.
  const underHold = new Set(reorgHolds.map((h) => h.creditId));
  const late = (await loadLateEntries(client, chainId, block)).filter(
    (e) => !underHold.has(e.id) && e.kind !== "reorg_hold",
  );
  const liabilityUpdate = await liabilitiesAt(client, { chainId, previous, changedEntries });
  // loadBalances works on its own copy of the totals: the update keeps them as of the snapshot.
  const { ledger, liabilities } = await loadBalances(client, chainId, liabilityUpdate.totals);
  let deferred = 0;
  const lateIds = new Set(late.map((e) => e.id));
  if (late.length > 0) {
    const before = entries.length;
    entries = entries.filter((e) => !lateIds.has(e.id));
    deferred = before - entries.length;
    // The ledger as it stood at the block: without the postings of facts above it.
    for (const e of late) {
      // Undo: a debit raised debits − credits, a credit lowered it.
      const undo = (name: string, v: bigint) => {
        if (isUserAccount(name)) return;
        const key = accountKey(e.assetId, name);
        ledger.set(key, (ledger.get(key) ?? 0n) - v);
      };
      undo(e.debit, e.amount);
      undo(e.credit, -e.amount);
      for (const [, change] of liabilityMoves(e))
        liabilities.set(e.assetId, (liabilities.get(e.assetId) ?? 0n) - change);
    }
  }
  const deferredEntries = late
    .filter((e) => e.txHash !== null && e.position !== null)
    .map((e) => ({ id: e.id, txHash: e.txHash!, position: e.position! }));
  return {
    facts: changes?.facts ?? [],
    changedFacts: changes?.changedFacts ?? null,
    entries,
    custody,
    ledger,
    liabilities,
    deferred,
    deferredEntries,
    lateIds,
    reorgHolds,
    watermarks,
    liabilityUpdate,
  };
}
