/**
 * A run's snapshot: everything a reconciliation run reads from Postgres, in the caller's one
 * REPEATABLE READ transaction (a fact and the entry booking it are seen together or not at all):
 * the custody addresses, the deposit addresses whose balances and inflows it checks, the unread
 * deposits' cached balances, the run's inputs (load.ts), the match of facts to entries (streamed in
 * a full run), and the expected fact balances. An incremental run starts its on-chain balance read
 * here, so the read overlaps the load.
 */

import type { PoolClient } from "../../foundation/db.js";
import {
  countCustody,
  loadCustody,
  loadCustodyOf,
  loadCustodyWallets,
} from "../../indexers/index.js";
import type { TransferKind } from "../types.js";
import { unreadDepositBalances } from "./balanceCache.js";
import { accountKey, custodyAccount, type OnchainBalance } from "./balances.js";
import { loadChangedEntries } from "./changes.js";
import { expectedFactBalances } from "./expectedBalances.js";
import { loadExpectedAdjustments, selectInflowAddresses } from "./inflows.js";
import { loadRunInputs } from "./load.js";
import { matchFactsToEntries } from "./match.js";
import type { JournalRecord } from "./seqGaps.js";
import type { SweepReader, SweptItem } from "./sources.js";
import type { ChainMemory } from "./store.js";
import { matchFullStream } from "./stream.js";
import type { Break, CustodyKind } from "./types.js";
import type { PreviousRun } from "./watermarks.js";

export async function loadRunSnapshot(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    previous: PreviousRun | null;
    /** A full run's: the seq record it continues its gaps from (load.ts). */
    journal?: JournalRecord | null | undefined;
    /** Deposit addresses beyond the active ones whose balances and inflows the run checks. */
    rotation: number;
    /** Kinds backed by a chain fact; undefined: all of CHAIN_BACKED_KINDS (see MatchInput). */
    chainBackedKinds: ReadonlySet<TransferKind> | undefined;
    /** The chain's memory from its previous run; its parts are replaced by this snapshot's. */
    carried: ChainMemory;
    /** Reads the on-chain balances of these custody addresses at the run's block. */
    readBalances: (addresses: Map<string, CustodyKind>) => Promise<OnchainBalance[]>;
    /** Booked sweeps (the signer's). */
    sweeps: SweepReader;
    lookbackMs: number | undefined;
    streamPage: number | undefined;
    /**
     * A second client in this snapshot (foundation/db.ts `snapshotPeer`): an incremental run reads
     * its changed entries on it while `client` reads the rest.
     */
    peer?: PoolClient | undefined;
  },
) {
  const { chainId, block, previous, rotation, chainBackedKinds, carried } = args;
  const { lookbackMs, streamPage } = args;
  const changedEntries =
    previous !== null && args.peer ? loadChangedEntries(args.peer, chainId, previous) : undefined;
  changedEntries?.catch(() => {}); // awaited by loadChanges; a failure before must not go unhandled
  // A full run needs every custody address; an incremental one the wallets, the deposit
  // addresses it reads, and those its facts touch (added once the facts are in).
  const custody =
    previous === null
      ? await loadCustody(client, chainId)
      : await loadCustodyWallets(client, chainId);
  const inflowSelection = await selectInflowAddresses(client, {
    chainId,
    block,
    previous,
    custody,
    sweeps: args.sweeps,
    rotation,
    ...(lookbackMs !== undefined ? { lookbackMs } : {}),
  });
  for (const address of inflowSelection.addresses) custody.set(address, "deposit");
  const toRead = new Map<string, CustodyKind>();
  for (const [address, kind] of custody) if (kind !== "deposit") toRead.set(address, kind);
  for (const address of inflowSelection.addresses) toRead.set(address, "deposit");
  // On-chain balances: hot and cold wallets, and the deposit addresses with activity since
  // the previous run plus a rotating slice (all of them in a full run).
  const readBalances = () => args.readBalances(toRead);
  // An incremental run reads while Postgres loads. A full run reads after its streaming
  // match: that match keeps the event loop busy for long stretches, and a response waiting
  // behind it would pass the RPC timeout.
  const onchainRead: Promise<OnchainBalance[]> =
    previous === null ? Promise.resolve([]) : readBalances();
  onchainRead.catch(() => {}); // awaited below; a load failure must not leave it unhandled
  // (Counted after the read has started: the read is the longer path of an incremental run.)
  const custodyCount = previous === null ? custody.size : await countCustody(client, chainId);
  const unread = await unreadDepositBalances(client, {
    chainId,
    read: inflowSelection.addresses,
    memory: carried.deposits,
  });
  carried.deposits = unread.memory;
  const inputs = await loadRunInputs(client, {
    chainId,
    block,
    previous,
    custody,
    changedEntries,
    journal: args.journal,
    ...(lookbackMs !== undefined ? { lookbackMs } : {}),
  });
  if (previous !== null) {
    const touched = new Set<string>();
    for (const f of inputs.facts) {
      if (!custody.has(f.from)) touched.add(f.from);
      if (!custody.has(f.to)) touched.add(f.to);
    }
    for (const [a, k] of await loadCustodyOf(client, chainId, [...touched])) custody.set(a, k);
  }
  const matchStart = performance.now();
  const reorgHolds = new Map(inputs.reorgHolds.map((h) => [h.creditId, h.state]));
  let matching: { breaks: Break[]; matched: number };
  let counts: { facts: number; entries: number; deferred: number };
  let history: Map<string, bigint> | undefined;
  if (previous === null) {
    const streamed = await matchFullStream(client, {
      chainId,
      block,
      custody,
      reorgHolds,
      lateIds: inputs.lateIds,
      ...(streamPage !== undefined ? { page: streamPage } : {}),
      ...(chainBackedKinds ? { chainBackedKinds } : {}),
    });
    matching = streamed;
    history = streamed.factBalances;
    counts = {
      facts: streamed.factsExamined,
      entries: streamed.entriesExamined,
      deferred: streamed.deferred,
    };
  } else {
    matching = matchFactsToEntries({
      ...inputs,
      reorgHolds,
      ...(chainBackedKinds ? { chainBackedKinds } : {}),
    });
    counts = {
      facts: inputs.facts.length,
      entries: inputs.entries.length,
      deferred: inputs.deferred,
    };
  }
  const matchMs = performance.now() - matchStart;
  // The facts' part from the running table (moved by this run's facts), rebuilt in a full run
  // from what its stream summed of every fact; sweeps no fact shows and operator credits summed
  // here (they are few).
  const expected = await expectedFactBalances(client, {
    chainId,
    block,
    previous,
    addresses: inflowSelection.addresses,
    changedFacts: inputs.changedFacts,
    custody,
    memory: carried.expected,
    history,
  });
  carried.expected = expected.memory;
  const expectedBalances = expected.balances;
  const unmined: SweptItem[] = [];
  const adjustments = await loadExpectedAdjustments(client, {
    chainId,
    block,
    addresses: inflowSelection.addresses,
    sweeps: args.sweeps,
    unmined,
  });
  // The ledger as it stood at the block: a sweep no fact shows is booked without a chain reference,
  // so it is not deferred with the late entries; above the block, it has not happened there yet.
  for (const i of unmined) {
    const assetId = `${chainId}:${i.asset}`;
    const move = (name: string, v: bigint) => {
      const key = accountKey(assetId, name);
      inputs.ledger.set(key, (inputs.ledger.get(key) ?? 0n) + v);
    };
    move(custodyAccount("hot", i.hotWallet), -i.swept);
    move("custody:deposits", i.swept);
  }
  for (const [k, v] of adjustments) expectedBalances.set(k, (expectedBalances.get(k) ?? 0n) + v);
  return {
    inputs,
    inflowSelection,
    /** Deposit addresses with a booked sweep not mined at or below the block (the next run reads them). */
    sweptUnmined: [...new Set(unmined.map((i) => i.address))].sort(),
    expectedBalances,
    expectedUpdate: expected.update,
    unreadDeposits: unread.unread,
    matching,
    counts,
    onchainRead,
    readBalances,
    custodyCount,
    matchMs,
  };
}
