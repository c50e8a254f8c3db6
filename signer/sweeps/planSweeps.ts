/**
 * Which deposit addresses to sweep, in which transactions. Pure: the caller reads credited
 * balances, on-chain balances and configuration; this decides. An (address, asset) is swept once
 * its credited, not-yet-swept balance, capped by what it holds on chain, reaches the asset's threshold (set so the value is worth the gas); an asset
 * without a threshold is never swept automatically. Addresses are batched per factory, up to
 * `batchSize` per factory call, in a stable order so a re-plan after a crash picks the same ones.
 */
import { type Address, getAddress, type Hex, zeroAddress } from "viem";
import type { ChainConfig } from "../../chains/index.js";

export type SweepCandidate = {
  /** Lowercase. */
  address: string;
  salt: Hex;
  /** Lowercase factory the address derives from. */
  factory: string;
  /** Lowercase token address; the zero address for native value. */
  asset: string;
  /** Credited (confirmed and booked) minus already swept, in base units (capByOnChain: also at most what it holds). */
  balance: bigint;
};

export type PlannedSweepItem = { address: string; salt: Hex; asset: string; planned: bigint };

export type PlannedSweep = {
  factory: string;
  salts: Hex[];
  /** ERC-20s the factory call sweeps (native value is always swept). Checksummed. */
  tokens: Address[];
  items: PlannedSweepItem[];
};

/** Per-asset sweep thresholds of a chain, keyed by lowercase asset (zero address for native). */
export function sweepThresholds(chain: ChainConfig): Map<string, bigint> {
  const thresholds = new Map<string, bigint>();
  if (chain.nativeSweepThreshold !== undefined) {
    thresholds.set(zeroAddress, chain.nativeSweepThreshold);
  }
  for (const token of chain.tokens) {
    if (token.sweepThreshold !== undefined) {
      thresholds.set(token.address.toLowerCase(), token.sweepThreshold);
    }
  }
  return thresholds;
}

/** Key of an (address, asset) pair in on-chain balance maps: `<address>:<asset>`, lowercase. */
export function balanceKey(address: string, asset: string): string {
  return `${address.toLowerCase()}:${asset.toLowerCase()}`;
}

/**
 * Cap each candidate's ledger-sweepable balance by what the address holds on chain: a sweep plans
 * what it can really move, and an address whose credit exceeds its balance (value already gone, a
 * token that burned or froze it) is planned for what it holds, or dropped when it holds nothing.
 * A pair whose on-chain balance was not read is dropped (missing data is never evidence).
 */
export function capByOnChain(
  candidates: readonly SweepCandidate[],
  onChain: ReadonlyMap<string, bigint>,
): SweepCandidate[] {
  const out: SweepCandidate[] = [];
  for (const c of candidates) {
    const held = onChain.get(balanceKey(c.address, c.asset));
    if (held === undefined || held <= 0n) continue;
    let balance = c.balance;
    if (held < balance) balance = held;
    out.push({ ...c, balance });
  }
  return out;
}

/**
 * The candidates read again under the planning lock that may still be planned from on-chain
 * balances read earlier (with no lock held, startSweeps.ts): a pair read then too, whose ledger
 * balance has not dropped since. A drop means something was taken off the address in between (a
 * sweep started and booked by another pass, a credit reversed), which the earlier on-chain read
 * may predate: the pair waits for the next pass's fresh read. A rise is a new credit, whose value
 * is on chain as well (the cap stays the smaller, earlier reading). A pair first seen now has no
 * reading and is left to capByOnChain to drop. The re-read itself leaves out addresses in an open
 * sweep, so a sweep started meanwhile is never started twice.
 */
export function unchangedSince(
  now: readonly SweepCandidate[],
  before: readonly SweepCandidate[],
): SweepCandidate[] {
  const read = new Map(before.map((c) => [balanceKey(c.address, c.asset), c.balance]));
  return now.filter((c) => {
    const was = read.get(balanceKey(c.address, c.asset));
    return was === undefined || c.balance >= was;
  });
}

export function planSweeps(
  candidates: readonly SweepCandidate[],
  thresholds: ReadonlyMap<string, bigint>,
  batchSize: number,
): PlannedSweep[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError("batchSize must be >= 1");
  // factory -> address -> items
  const byFactory = new Map<string, Map<string, PlannedSweepItem[]>>();
  for (const c of candidates) {
    const threshold = thresholds.get(c.asset);
    if (threshold === undefined || c.balance <= 0n || c.balance < threshold) continue;
    let byAddress = byFactory.get(c.factory);
    if (!byAddress) {
      byAddress = new Map();
      byFactory.set(c.factory, byAddress);
    }
    const items = byAddress.get(c.address) ?? [];
    items.push({ address: c.address, salt: c.salt, asset: c.asset, planned: c.balance });
    byAddress.set(c.address, items);
  }
  const sweeps: PlannedSweep[] = [];
  for (const factory of [...byFactory.keys()].sort()) {
    const byAddress = byFactory.get(factory)!;
    const addresses = [...byAddress.keys()].sort();
    for (let i = 0; i < addresses.length; i += batchSize) {
      const chunk = addresses.slice(i, i + batchSize);
      const items = chunk.flatMap((a) =>
        byAddress.get(a)!.sort((x, y) => (x.asset < y.asset ? -1 : x.asset > y.asset ? 1 : 0)),
      );
      const tokens = [...new Set(items.map((it) => it.asset).filter((a) => a !== zeroAddress))]
        .sort()
        .map((a) => getAddress(a));
      sweeps.push({ factory, salts: chunk.map((a) => byAddress.get(a)![0]!.salt), tokens, items });
    }
  }
  return sweeps;
}
