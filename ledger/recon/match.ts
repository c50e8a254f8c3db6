/**
 * The matching core: pairs chain facts with ledger entries exclusively on
 * (chain id, tx hash, position). A fact is matched by at most one entry and an entry matches at
 * most one fact, so a second entry claiming the same fact is always seen (a double credit) instead
 * of being paired with it again. Pure and in memory: one hash join on string keys.
 */
import type { TransferKind } from "../types.js";
import {
  type Break,
  CHAIN_BACKED_KINDS,
  type ChainFact,
  type CustodyKind,
  type LedgerEntry,
} from "./types.js";

export type MatchInput = {
  /** Facts of one chain up to the run's block, any status (orphaned ones explain orphaned credits). */
  facts: readonly ChainFact[];
  /** Posted ledger entries of that chain's assets, ascending `seq`. */
  entries: readonly LedgerEntry[];
  /** Custody addresses of the chain (lowercase) and their kind. */
  custody: ReadonlyMap<string, CustodyKind>;
  /**
   * Kinds that must carry a chain reference (default `CHAIN_BACKED_KINDS`). On a chain without
   * traces a native sweep moves value in an internal call the indexer cannot see, so there is no
   * fact to reference: the caller leaves `sweep` out and the balance checks cover it.
   */
  chainBackedKinds?: ReadonlySet<TransferKind>;
  /**
   * Deposit credits under a reorg hold, by transfer id: `held` (pending) claims its fact only if
   * the same deposit is canonical again (it is about to be restored); `final` claims nothing. Their
   * orphaned facts are not breaks, and the posted holds (kind `reorg_hold`) need no fact.
   */
  reorgHolds?: ReadonlyMap<string, "held" | "final">;
};

export type MatchResult = {
  /** `matchedEntry[i]` is the index in `entries` paired with `facts[i]`, or −1. */
  matchedEntry: Int32Array;
  matched: number;
  breaks: Break[];
};

export function factKey(txHash: string, position: string): string {
  return `${txHash}:${position}`;
}

export function matchFactsToEntries(input: MatchInput): MatchResult {
  const { facts, entries, custody } = input;
  const chainBacked = input.chainBackedKinds ?? CHAIN_BACKED_KINDS;
  // An open hash table over typed arrays, keyed by a hash of the tx hash's last characters: no
  // key strings are built and no string is hashed by the engine. Buckets chain fact indexes; a
  // lookup compares the full tx hash and position.
  let size = 1024;
  while (size < facts.length * 2) size *= 2;
  const mask = size - 1;
  const heads = new Int32Array(size).fill(-1);
  const nextInBucket = new Int32Array(facts.length).fill(-1);
  const shadowed = new Uint8Array(facts.length);
  let orphanedByKey: Map<string, number[]> | undefined;
  const findCanonical = (txHash: string, position: string): number => {
    let j = heads[txBucket(txHash, mask)]!;
    while (j !== -1) {
      const f = facts[j]!;
      if (f.txHash === txHash && f.position === position) return j;
      j = nextInBucket[j]!;
    }
    return -1;
  };
  for (let i = 0; i < facts.length; i++) {
    const f = facts[i]!;
    if (f.status === "orphaned") {
      const key = factKey(f.txHash, f.position);
      orphanedByKey ??= new Map();
      const list = orphanedByKey.get(key);
      if (list) list.push(i);
      else orphanedByKey.set(key, [i]);
      continue;
    }
    const bucket = txBucket(f.txHash, mask);
    let j = heads[bucket]!;
    while (j !== -1) {
      const g = facts[j]!;
      if (g.txHash === f.txHash && g.position === f.position) break;
      j = nextInBucket[j]!;
    }
    if (j !== -1) {
      // Two canonical rows for one identity cannot both be real; the first one is matched.
      shadowed[i] = 1;
      continue;
    }
    nextInBucket[i] = heads[bucket]!;
    heads[bucket] = i;
  }

  const matchedEntry = new Int32Array(facts.length).fill(-1);
  const extras = new Map<number, number[]>();
  const orphanClaims = new Map<string, number[]>();
  const compensations: number[] = [];
  const breaks: Break[] = [];

  // A withdrawal's, cold move's or sweep's booking, or its gas, reversed after a reorg
  // (api/withdrawals/holds.ts, signer/sweeps/followColdMoves.ts, followSweeps.ts) claims no fact:
  // the booking that stands is the one made when the tx mined again (often the same signed bytes:
  // the same fact). So does a treasury booking reversed by `treasury unbook` (ledger/treasury.ts:
  // its tx final off the chain; mined again after all, its fact is unbooked, not this booking's).
  const reversed = new Set<string>();
  for (const entry of entries) if (entry.reversesId !== null) reversed.add(entry.reversesId);
  const reversible = new Set(["withdrawal", "cold_move", "sweep", "fee", "treasury"]);

  for (let e = 0; e < entries.length; e++) {
    const entry = entries[e]!;
    if (entry.kind === "reorg_hold") continue;
    if (reversible.has(entry.kind) && reversed.has(entry.id)) continue;
    const held = input.reorgHolds?.get(entry.id);
    if (held === "final") continue;
    if (entry.kind === "compensation" || entry.reversesId !== null) {
      compensations.push(e);
      continue;
    }
    if (entry.txHash === null || entry.position === null) {
      if (chainBacked.has(entry.kind)) breaks.push(entryWithoutFact(entry, "no chain ref"));
      continue;
    }
    const fi = findCanonical(entry.txHash, entry.position);
    if (held === "held" && (fi === -1 || !agrees(facts[fi]!, entry))) continue;
    if (fi === -1) {
      const key = factKey(entry.txHash, entry.position);
      if (orphanedByKey?.has(key)) {
        const list = orphanClaims.get(key);
        if (list) list.push(e);
        else orphanClaims.set(key, [e]);
      } else {
        breaks.push(entryWithoutFact(entry, "unknown fact"));
      }
      continue;
    }
    const current = matchedEntry[fi]!;
    if (current === -1) {
      matchedEntry[fi] = e;
      continue;
    }
    // Exclusive: the fact already has an entry. Keep the one that agrees with the chain (the first
    // such by seq); every other claimant is an extra booking of the same fact.
    const fact = facts[fi]!;
    let extra = e;
    if (!agrees(fact, entries[current]!) && agrees(fact, entry)) {
      matchedEntry[fi] = e;
      extra = current;
    }
    const list = extras.get(fi);
    if (list) list.push(extra);
    else extras.set(fi, [extra]);
  }

  let matched = 0;
  for (let i = 0; i < facts.length; i++) {
    const fact = facts[i]!;
    if (fact.status === "orphaned") continue;
    const e = matchedEntry[i]!;
    if (e !== -1) {
      matched++;
      const entry = entries[e]!;
      if (!agrees(fact, entry)) breaks.push(amountMismatch(fact, entry, custody));
      continue;
    }
    if (fact.amount === 0n || shadowed[i] === 1) continue;
    const missing = missingBreak(fact, custody);
    if (missing) breaks.push(missing);
  }

  for (const [fi, list] of extras) {
    const fact = facts[fi]!;
    const extraEntries = list.sort((a, b) => a - b).map((e) => entries[e]!);
    const ledgerAmount = extraEntries.reduce((s, x) => s + x.amount, 0n);
    breaks.push({
      type: "double_credit",
      assetId: fact.assetId,
      key: factKey(fact.txHash, fact.position),
      direction: "ledger_without_chain",
      facts: [fact],
      entries: extraEntries,
      chainAmount: 0n,
      ledgerAmount,
      difference: ledgerAmount,
      action: `the fact is booked ${extraEntries.length + 1} times: reverse transfer(s) ${extraEntries.map((x) => x.id).join(", ")} and find the path that wrote them`,
    });
  }

  if (orphanClaims.size > 0)
    breaks.push(...orphanedCredits(orphanClaims, orphanedByKey!, facts, entries, compensations));

  return { matchedEntry, matched, breaks };
}

/**
 * Bucket of a tx hash: a multiplicative hash of its last 8 hex characters (32 bits of a keccak
 * output, uniform in every position), finalised so that the low bits depend on all of them.
 */
function txBucket(txHash: string, mask: number): number {
  let h = 0x811c9dc5;
  for (let i = txHash.length - 8; i < txHash.length; i++)
    h = Math.imul(h ^ txHash.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x45d9f3b);
  h ^= h >>> 16;
  return h & mask;
}

function agrees(fact: ChainFact, entry: LedgerEntry): boolean {
  return fact.amount === entry.amount && fact.assetId === entry.assetId;
}

function amountMismatch(
  fact: ChainFact,
  entry: LedgerEntry,
  custody: ReadonlyMap<string, CustodyKind>,
): Break {
  const what = fact.kind === "fee" ? "fee" : "amount";
  const sameAsset = fact.assetId === entry.assetId;
  const outOf = fact.kind === "fee" ? undefined : custody.get(fact.from);
  return {
    type: "amount_mismatch",
    assetId: fact.assetId,
    key: factKey(fact.txHash, fact.position),
    facts: [fact],
    entries: [entry],
    chainAmount: fact.amount,
    ledgerAmount: sameAsset ? entry.amount : 0n,
    difference: (sameAsset ? entry.amount : 0n) - fact.amount,
    action: !sameAsset
      ? `transfer ${entry.id} is booked in asset ${entry.assetId} but the chain moved ${fact.assetId}: reverse and rebook it`
      : outOf
        ? outflowMismatchAction(fact, entry, outOf)
        : `the ${what} booked (${entry.amount}) differs from the chain (${fact.amount}): book an adjusting ${entry.kind} transfer of ${fact.amount - entry.amount}`,
  };
}

/**
 * Value out of a custody address: the fact is what the chain logged, not all that left the
 * wallet. A token may take more than its logs show (api/withdrawals/holds.ts postFeeOnTransfer
 * books the customer for what left; a part burned without a log is booked to the recipient's
 * Transfer), so an adjustment toward the fact could pay a customer back tokens the wallet no longer
 * holds. The wallet's balance check decides; a shortfall on the ledger's side is not charged to
 * anyone before it is explained.
 */
function outflowMismatchAction(fact: ChainFact, entry: LedgerEntry, outOf: CustodyKind): string {
  const wallet = `${outOf} address ${fact.from}`;
  if (entry.amount > fact.amount) {
    const d = entry.amount - fact.amount;
    return `${entry.kind} transfer ${entry.id} booked ${entry.amount} out of ${wallet} but its chain fact carries ${fact.amount}: check the wallet before booking anything. If this run's balance check shows the wallet moving ${d} that no fact explains (unexplained_balance_difference), the ${d} left it with no fact to show (e.g. a token that burns on transfer without a log) and the booking is right: acknowledge both breaks; only if the wallet still holds the ${d}, reverse ${d} of transfer ${entry.id}`;
  }
  const d = fact.amount - entry.amount;
  return `${d} more left ${wallet} than ${entry.kind} transfer ${entry.id} books (chain ${fact.amount}, booked ${entry.amount}): find what the transaction sent and why, and escalate before booking it; the ${d} is not the customer's to pay unless their withdrawal asked for it`;
}

function missingBreak(fact: ChainFact, custody: ReadonlyMap<string, CustodyKind>): Break | null {
  const fromCustody = custody.get(fact.from);
  const toCustody = custody.get(fact.to);
  const base = {
    assetId: fact.assetId,
    key: factKey(fact.txHash, fact.position),
    direction: "chain_without_ledger" as const,
    facts: [fact],
    entries: [],
    chainAmount: fact.amount,
    ledgerAmount: 0n,
    difference: -fact.amount,
  };
  if (fact.kind === "fee") {
    if (!fromCustody) return null;
    return {
      ...base,
      type: "fee_not_booked",
      action: `book the gas paid by ${fact.from}: debit fees:gas, credit custody:${accountSuffix(fromCustody, fact.from)}`,
    };
  }
  if (toCustody && !fromCustody) {
    return {
      ...base,
      type: "missing_credit",
      action:
        toCustody === "deposit"
          ? `credit the deposit to the owner of ${fact.to} (run deposit crediting for this fact)`
          : `book the inflow to ${toCustody} wallet ${fact.to}`,
    };
  }
  if (fromCustody && !toCustody) {
    return {
      ...base,
      type: "unmatched_withdrawal",
      action: `value left ${fromCustody} address ${fact.from} with no ledger transfer: find the withdrawal it belongs to and post it, or treat as a loss and investigate the key`,
    };
  }
  if (fromCustody && toCustody) {
    return {
      ...base,
      type: "unbooked_move",
      action: `book the move from ${fact.from} (${fromCustody}) to ${fact.to} (${toCustody})`,
    };
  }
  return null;
}

function accountSuffix(kind: CustodyKind, address: string): string {
  return kind === "deposit" ? "deposits" : `${kind}:${address}`;
}

function entryWithoutFact(entry: LedgerEntry, why: "no chain ref" | "unknown fact"): Break {
  const claim =
    why === "no chain ref"
      ? "has no chain reference"
      : `points at ${entry.txHash}:${entry.position}, which is not a chain fact`;
  return {
    type: entry.kind === "withdrawal" ? "unmatched_withdrawal" : "unmatched_ledger_transfer",
    assetId: entry.assetId,
    key:
      entry.txHash !== null && entry.position !== null
        ? factKey(entry.txHash, entry.position)
        : `transfer:${entry.id}`,
    direction: "ledger_without_chain",
    facts: [],
    entries: [entry],
    chainAmount: 0n,
    ledgerAmount: entry.amount,
    difference: entry.amount,
    action: `${entry.kind} transfer ${entry.id} ${claim}: find the transaction or reverse the transfer`,
  };
}

function orphanedCredits(
  claims: Map<string, number[]>,
  orphanedByKey: Map<string, number[]>,
  facts: readonly ChainFact[],
  entries: readonly LedgerEntry[],
  compensations: number[],
): Break[] {
  const claimIds = new Map<string, string>();
  for (const [key, list] of claims) for (const e of list) claimIds.set(entries[e]!.id, key);
  const compensationsByKey = new Map<string, LedgerEntry[]>();
  for (const c of compensations) {
    const entry = entries[c]!;
    const key =
      (entry.reversesId !== null ? claimIds.get(entry.reversesId) : undefined) ??
      (entry.txHash !== null && entry.position !== null
        ? factKey(entry.txHash, entry.position)
        : undefined);
    if (key === undefined || !claims.has(key)) continue;
    const list = compensationsByKey.get(key);
    if (list) list.push(entry);
    else compensationsByKey.set(key, [entry]);
  }
  const out: Break[] = [];
  for (const [key, list] of claims) {
    const claimed = list.map((e) => entries[e]!);
    const orphans = orphanedByKey.get(key)!.map((i) => facts[i]!);
    const comp = compensationsByKey.get(key) ?? [];
    const ledgerAmount = claimed.reduce((s, x) => s + x.amount, 0n);
    out.push({
      type: "orphaned_credit",
      assetId: claimed[0]!.assetId,
      key,
      direction: "ledger_without_chain",
      facts: orphans,
      entries: [...claimed, ...comp],
      chainAmount: 0n,
      ledgerAmount,
      difference: ledgerAmount,
      action:
        comp.length > 0
          ? `a reorg removed the fact after it was booked; compensation ${comp.map((c) => c.id).join(", ")} is booked: recover the value or write off the suspense balance`
          : `a reorg removed the fact after transfer(s) ${claimed.map((c) => c.id).join(", ")} booked it and no reorg hold covers it: a deposit credit gets its hold from the next crediting sweep (check the worker runs); any other booking must be reversed by hand`,
    });
  }
  return out;
}
