/**
 * Balance checks at the run's block: each hot (and cold) wallet's on-chain balance against its
 * `custody:hot:<address>` account, the sum over deposit addresses against `custody:deposits`, and
 * custody assets against user liabilities (solvency). A difference that the transfer-level breaks
 * explain is reported as explained; only the rest becomes an `unexplained_balance_difference`.
 */
import type { Break, ChainFact, CustodyKind, LedgerEntry } from "./types.js";

export type OnchainBalance = {
  address: string;
  kind: CustodyKind;
  assetId: string;
  balance: bigint;
};

export type BalanceScope = "hot" | "cold" | "deposits" | "solvency";

export type BalanceCheck = {
  scope: BalanceScope;
  /** The wallet, for hot and cold checks. */
  address: string | null;
  assetId: string;
  /** On-chain side (for solvency: total custody assets). */
  chain: bigint;
  /** Ledger side (for solvency: total user liabilities). */
  ledger: bigint;
  /** ledger − chain (for solvency: assets − liabilities, the surplus). */
  difference: bigint;
  /** The part of the difference that this run's transfer-level breaks account for. */
  explained: bigint;
  unexplained: bigint;
};

/** Ledger balances keyed by `accountKey(assetId, name)`, as debits − credits (posted). */
export type LedgerBalances = ReadonlyMap<string, bigint>;

export function accountKey(assetId: string, name: string): string {
  return `${assetId}|${name}`;
}

export function custodyAccount(kind: CustodyKind, address: string): string {
  return kind === "deposit" ? "custody:deposits" : `custody:${kind}:${address}`;
}

export type CheckBalancesInput = {
  onchain: readonly OnchainBalance[];
  ledger: LedgerBalances;
  /** Total user liabilities per asset (credits − debits over `user:*`). */
  liabilities: ReadonlyMap<string, bigint>;
  /** The transfer-level breaks of this run. */
  breaks: readonly Break[];
  custody: ReadonlyMap<string, CustodyKind>;
  /**
   * What the deposit addresses not read this run hold per asset (their last-read balances): added
   * to the deposit total and to custody assets.
   */
  unreadDeposits?: ReadonlyMap<string, bigint>;
};

export function checkBalances(input: CheckBalancesInput): {
  checks: BalanceCheck[];
  breaks: Break[];
} {
  const explained = explainedByBreaks(input.breaks, input.custody);
  const checks: BalanceCheck[] = [];
  const deposits = new Map<string, bigint>();
  const assets = new Map<string, bigint>();
  for (const b of input.onchain) {
    assets.set(b.assetId, (assets.get(b.assetId) ?? 0n) + b.balance);
    if (b.kind === "deposit") {
      deposits.set(b.assetId, (deposits.get(b.assetId) ?? 0n) + b.balance);
      continue;
    }
    const key = accountKey(b.assetId, custodyAccount(b.kind, b.address));
    checks.push(
      check(b.kind, b.address, b.assetId, b.balance, input.ledger.get(key) ?? 0n, explained, key),
    );
  }
  for (const [assetId, v] of input.unreadDeposits ?? []) {
    assets.set(assetId, (assets.get(assetId) ?? 0n) + v);
    deposits.set(assetId, (deposits.get(assetId) ?? 0n) + v);
  }
  for (const [assetId, chain] of deposits) {
    const key = accountKey(assetId, "custody:deposits");
    checks.push(
      check("deposits", null, assetId, chain, input.ledger.get(key) ?? 0n, explained, key),
    );
  }
  const breaks: Break[] = [];
  for (const c of checks) {
    if (c.unexplained === 0n) continue;
    breaks.push({
      type: "unexplained_balance_difference",
      assetId: c.assetId,
      key: c.scope === "deposits" ? "deposits" : `${c.scope}:${c.address}`,
      facts: [],
      entries: [],
      chainAmount: c.chain,
      ledgerAmount: c.ledger,
      difference: c.unexplained,
      action: `the ${c.scope === "deposits" ? "deposit addresses" : `${c.scope} wallet ${c.address}`} hold ${c.chain} on chain but the ledger says ${c.ledger}; ${c.unexplained} is not explained by any transfer break: look for an unindexed movement (traces, unlisted token events) or a ledger write without chain reference`,
    });
  }
  const assetIds = new Set([...assets.keys(), ...input.liabilities.keys()]);
  for (const assetId of [...assetIds].sort()) {
    const held = assets.get(assetId) ?? 0n;
    const owed = input.liabilities.get(assetId) ?? 0n;
    const surplus = held - owed;
    checks.push({
      scope: "solvency",
      address: null,
      assetId,
      chain: held,
      ledger: owed,
      difference: surplus,
      explained: 0n,
      unexplained: surplus < 0n ? surplus : 0n,
    });
    if (surplus < 0n) {
      breaks.push({
        type: "solvency_shortfall",
        assetId,
        key: "solvency",
        facts: [],
        entries: [],
        chainAmount: held,
        ledgerAmount: owed,
        difference: surplus,
        action: `custody holds ${held} but owes users ${owed}: stop withdrawals of this asset and escalate`,
      });
    }
  }
  return { checks, breaks };
}

function check(
  scope: BalanceScope,
  address: string | null,
  assetId: string,
  chain: bigint,
  ledger: bigint,
  explained: ReadonlyMap<string, bigint>,
  key: string,
): BalanceCheck {
  const difference = ledger - chain;
  const part = explained.get(key) ?? 0n;
  return {
    scope,
    address,
    assetId,
    chain,
    ledger,
    difference,
    explained: part,
    unexplained: difference - part,
  };
}

/**
 * What the breaks do to each account's ledger − chain difference: entries named in a break move
 * the ledger side by their postings; facts in a break whose ledger side is missing or differs move
 * the chain side. Facts of a double credit are matched once already, so only the extra entries count.
 */
export function explainedByBreaks(
  breaks: readonly Break[],
  custody: ReadonlyMap<string, CustodyKind>,
): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const add = (key: string, v: bigint) => out.set(key, (out.get(key) ?? 0n) + v);
  for (const b of breaks) {
    // Value at a deposit address that no fact shows: the chain side of custody:deposits.
    if (b.type === "unattributed_inflow")
      add(accountKey(b.assetId, "custody:deposits"), b.difference);
    for (const e of b.entries) postEntry(e, add);
    if (b.direction === "ledger_without_chain") continue;
    for (const f of b.facts) if (f.status !== "orphaned") chainEffect(f, custody, add, -1n);
  }
  return out;
}

function postEntry(e: LedgerEntry, add: (key: string, v: bigint) => void): void {
  add(accountKey(e.assetId, e.debit), e.amount);
  add(accountKey(e.assetId, e.credit), -e.amount);
}

function chainEffect(
  f: ChainFact,
  custody: ReadonlyMap<string, CustodyKind>,
  add: (key: string, v: bigint) => void,
  sign: bigint,
): void {
  const from = custody.get(f.from);
  if (from) add(accountKey(f.assetId, custodyAccount(from, f.from)), -f.amount * sign);
  const to = f.kind === "fee" ? undefined : custody.get(f.to);
  if (to) add(accountKey(f.assetId, custodyAccount(to, f.to)), f.amount * sign);
}
