/**
 * Each customer's balance of one asset as a completed run counted it: what attestation
 * (ledger/attest) publishes as the leaves of the liabilities it pairs with the reserves at the
 * run's block. The ledger moves on after the run; this winds the balances now back to the run,
 * by the same records an incremental run continues from (load.ts):
 * - entries the run did not see: above its entry seq watermark or in its seq gaps
 *   (`loadChangedEntries`, what the next run reads as changed);
 * - entries it deferred because their fact is above its block (its `deferred_entries`, with the
 *   compensations `loadEntriesByKeys` brings along, as `loadLateEntries` did);
 * - reorg holds pending at its snapshot, taken out as the run's balances took them out.
 * Their sum is the run's solvency liabilities for the asset when nothing the run recorded has gone
 * (every seq the run could not see is in its record, seqGaps.ts): the caller
 * compares the two and does not attest on a difference.
 *
 * Read in one REPEATABLE READ snapshot (the caller's): the balances now and the entries since
 * the run must be seen at the same instant.
 */
import type { PoolClient } from "../../foundation/db.js";
import { listCustomerReorgHolds, loadPostedCustomerBalances } from "../customerBalances.js";
import { loadChangedEntries } from "./changes.js";
import { loadEntriesByKeys } from "./claimants.js";
import { liabilityMoves } from "./liabilities.js";
import { seenAtSnapshot } from "./seqGaps.js";
import type { RunJournalPosition } from "./store.js";
import type { LedgerEntry } from "./types.js";

export async function customerLiabilitiesAtRun(
  client: PoolClient,
  args: { run: RunJournalPosition; assetId: string },
): Promise<Map<string, bigint>> {
  const { run, assetId } = args;
  if (run.status !== "completed")
    throw new Error(`run ${run.runId} is ${run.status}: only a completed run records what it saw`);
  const balances = await loadPostedCustomerBalances(client, assetId);
  const move = (account: string, change: bigint) => {
    const id = account.slice("user:".length);
    balances.set(id, (balances.get(id) ?? 0n) + change);
  };
  // Take out what the run did not count: entries it did not see, and those it deferred.
  const notCounted = new Map<string, LedgerEntry>();
  for (const e of await loadChangedEntries(client, run.chainId, run)) notCounted.set(e.id, e);
  for (const e of await loadEntriesByKeys(client, run.chainId, [], run.deferredEntryIds))
    if (!notCounted.has(e.id) && seenAtSnapshot(e.seq, run)) notCounted.set(e.id, e);
  for (const e of notCounted.values()) {
    if (e.assetId !== assetId) continue;
    for (const [account, change] of liabilityMoves(e)) move(account, -change);
  }
  // Reorg holds pending at the run's snapshot: placed in what it saw and not resolved in it.
  // Resolutions at or below this seq were all seen (it is below the watermark and every gap).
  const seenUpTo = Math.min(run.entryWatermark, ...run.entryGaps.map(([from]) => from - 1));
  for (const h of await listCustomerReorgHolds(client, assetId, seenUpTo)) {
    const pending =
      seenAtSnapshot(h.holdSeq, run) &&
      (h.resolvedSeq === null || !seenAtSnapshot(h.resolvedSeq, run));
    if (pending) move(`user:${h.customerId}`, -h.amount);
  }
  return balances;
}
