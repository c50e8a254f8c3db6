/**
 * Running expected balances of deposit addresses (issue 15): what the chain facts explain of each
 * (deposit address, asset) balance, kept in `recon.expected_fact_balances` as of the block of the
 * run named in `recon.expected_fact_state`. An incremental run that continues from that run adds
 * the canonical facts of the blocks it covers (the facts it loaded anyway) and recomputes from
 * history only the addresses that a fact at an already-counted height touched (a reorg, an orphaned
 * or late row); it never sums an address's whole history otherwise. A full run, or a run that does
 * not continue from the run the table stands at, rebuilds the table from history (the check).
 */
import type { PoolClient } from "../../foundation/db.js";
import { addBalance, type BalanceMemory, balanceMemoryFor, intern } from "./balanceCache.js";
import type { ChainFact, CustodyKind } from "./types.js";
import type { PreviousRun } from "./watermarks.js";

const STORE_CHUNK = 50_000;

/** `address|assetId`, as inflows.ts keys expected balances. */
export const balanceKey = (address: string, assetId: string) => `${address}|${assetId}`;

/** What a fact does to the expected balance of the deposit addresses it touches. */
export function factEffects(
  f: ChainFact,
  isDeposit: (address: string) => boolean,
  add: (key: string, v: bigint) => void,
): void {
  if (f.status === "orphaned") return;
  // A fee is paid by its sender; it arrives nowhere the check looks.
  if (f.kind !== "fee" && isDeposit(f.to)) add(balanceKey(f.to, f.assetId), f.amount);
  if (isDeposit(f.from)) add(balanceKey(f.from, f.assetId), -f.amount);
}

/**
 * Canonical facts into minus out of deposit addresses at or below `block`, from history: for the
 * given addresses, or for every deposit address of the chain (`"all"`).
 */
export async function loadFactBalances(
  client: PoolClient,
  args: { chainId: number; block: number; addresses: readonly string[] | "all" },
): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  const { chainId } = args;
  if (args.addresses !== "all" && args.addresses.length === 0) return out;
  const deposits =
    args.addresses === "all"
      ? "IN (SELECT address FROM chain.watched_addresses WHERE chain_id = $1 AND kind = 'deposit')"
      : "= ANY($3::text[])";
  const r = await client.query<{ address: string; asset: string; net: bigint }>(
    `SELECT address, asset, sum(v) AS net FROM (
       SELECT to_address AS address, asset, amount AS v FROM chain.facts
        WHERE chain_id = $1 AND status <> 'orphaned' AND block_number <= $2 AND kind <> 'fee'
          AND to_address ${deposits}
       UNION ALL
       SELECT from_address, asset, -amount FROM chain.facts
        WHERE chain_id = $1 AND status <> 'orphaned' AND block_number <= $2
          AND from_address ${deposits}) x
     GROUP BY address, asset`,
    args.addresses === "all" ? [chainId, args.block] : [chainId, args.block, args.addresses],
  );
  for (const row of r.rows) out.set(balanceKey(row.address, `${chainId}:${row.asset}`), row.net);
  return out;
}

/** How a run leaves the running table (written by completeRun, in its transaction). */
export type ExpectedFactUpdate =
  /** Replace every row of the chain: the balances of all its deposit addresses at the run's block. */
  | { mode: "replace"; block: number; balances: ReadonlyMap<string, bigint> }
  /**
   * Continue from `fromRunId`: add `deltas`, set `recomputed` (addresses a fact at an already
   * counted height touched: every asset of theirs is in it, absent ones are zero).
   */
  | {
      mode: "continue";
      fromRunId: number;
      block: number;
      deltas: ReadonlyMap<string, bigint>;
      recomputedAddresses: readonly string[];
      recomputed: ReadonlyMap<string, bigint>;
    };

export type ExpectedFacts = {
  /** Fact-explained balances of the requested addresses at the run's block (absent: zero). */
  balances: Map<string, bigint>;
  update: ExpectedFactUpdate;
  /** The caller's memory as of this snapshot (for `storeExpectedFacts`), when the run continues. */
  memory?: ExpectedFactMemory;
};

/**
 * Rows of `recon.expected_fact_balances` one process knows, as they stand at run `runId`: for each
 * known address its balance by asset id (an asset not listed: zero). `complete`: every address of
 * the chain is known (after a rebuild), so an address not listed has no rows.
 */
export type ExpectedFactMemory = BalanceMemory;

/**
 * The fact-explained balances of `addresses` at `block`, and how to move the running table there.
 * `changedFacts` are the incremental run's changed facts (load.ts `loadChangedFacts`: every fact in
 * (previous.block, block], rows new since the previous run, rows orphaned since); `custody` must
 * hold the kind of every address they touch.
 */
export async function expectedFactBalances(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    previous: PreviousRun | null;
    addresses: readonly string[];
    changedFacts: readonly ChainFact[] | null;
    custody: ReadonlyMap<string, CustodyKind>;
    /** The caller's memory from its previous run (used when the table still stands there). */
    memory?: ExpectedFactMemory | undefined;
    /**
     * Every deposit address's fact balances at `block` in the caller's snapshot, when it has them
     * (a full run's stream sums them as it matches): a rebuild uses them instead of reading history.
     */
    history?: ReadonlyMap<string, bigint> | undefined;
  },
): Promise<ExpectedFacts> {
  const { chainId, block, previous } = args;
  const state = await client.query<{ run_id: string; block_number: string }>(
    "SELECT run_id::text, block_number::text FROM recon.expected_fact_state WHERE chain_id = $1",
    [chainId],
  );
  const at = state.rows[0];
  const continues =
    previous !== null &&
    args.changedFacts !== null &&
    at !== undefined &&
    Number(at.run_id) === previous.id &&
    Number(at.block_number) === previous.block &&
    block >= previous.block;
  if (!continues) {
    // Rebuild: every deposit address of the chain from history (a full run's check, or a run that
    // does not continue from the run the table stands at).
    const all =
      args.history ?? (await loadFactBalances(client, { chainId, block, addresses: "all" }));
    const balances = new Map<string, bigint>();
    const wanted = new Set(args.addresses);
    for (const [k, v] of all) if (wanted.has(k.slice(0, k.indexOf("|")))) balances.set(k, v);
    return { balances, update: { mode: "replace", block, balances: all } };
  }
  const isDeposit = (a: string) => args.custody.get(a) === "deposit";
  const deltas = new Map<string, bigint>();
  const recompute = new Set<string>();
  for (const f of args.changedFacts!) {
    if (f.blockNumber > previous.block) {
      factEffects(f, isDeposit, (k, v) => deltas.set(k, (deltas.get(k) ?? 0n) + v));
    } else {
      // A height the table already counted: its status or presence may have changed since.
      if (isDeposit(f.to)) recompute.add(f.to);
      if (isDeposit(f.from)) recompute.add(f.from);
    }
  }
  const recomputedAddresses = [...recompute].sort();
  const recomputed = await loadFactBalances(client, {
    chainId,
    block,
    addresses: recomputedAddresses,
  });
  const read = args.addresses.filter((a) => !recompute.has(a));
  // Rows are keyed by token address in the table, by asset id in memory.
  const memory = await balanceMemoryFor(client, {
    table: "recon.expected_fact_balances",
    chainId,
    runId: previous.id,
    memory: args.memory,
    read,
    assetKey: (asset) => `${chainId}:${asset}`,
  });
  const balances = new Map<string, bigint>();
  for (const a of read)
    for (const [assetId, v] of memory.rows.get(a) ?? []) balances.set(balanceKey(a, assetId), v);
  for (const [k, v] of deltas) {
    const address = k.slice(0, k.indexOf("|"));
    if (recompute.has(address)) continue;
    balances.set(k, (balances.get(k) ?? 0n) + v);
  }
  for (const [k, v] of recomputed) balances.set(k, v);
  // Only the requested addresses are returned (deltas may name others the facts touched).
  const wanted = new Set(args.addresses);
  for (const k of [...balances.keys()])
    if (!wanted.has(k.slice(0, k.indexOf("|")))) balances.delete(k);
  return {
    balances,
    update: {
      mode: "continue",
      fromRunId: previous.id,
      block,
      deltas: new Map([...deltas].filter(([k]) => !recompute.has(k.slice(0, k.indexOf("|"))))),
      recomputedAddresses,
      recomputed,
    },
    memory,
  };
}

const rowsOf = (chainId: number, m: ReadonlyMap<string, bigint>) => {
  const prefix = `${chainId}:`;
  const address: string[] = [];
  const asset: string[] = [];
  const value: string[] = [];
  for (const [k, v] of m) {
    const bar = k.indexOf("|");
    address.push(k.slice(0, bar));
    asset.push(k.slice(bar + 1 + prefix.length));
    value.push(v.toString());
  }
  return { address, asset, value };
};

async function upsert(
  client: PoolClient,
  chainId: number,
  m: ReadonlyMap<string, bigint>,
  how: "set" | "add",
): Promise<void> {
  const rows = rowsOf(chainId, m);
  const set =
    how === "set"
      ? "balance = excluded.balance"
      : "balance = recon.expected_fact_balances.balance + excluded.balance";
  for (let i = 0; i < rows.address.length; i += STORE_CHUNK) {
    await client.query(
      `INSERT INTO recon.expected_fact_balances (chain_id, address, asset, balance)
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::numeric[])
       ON CONFLICT (chain_id, address, asset) DO UPDATE SET ${set}`,
      [
        chainId,
        rows.address.slice(i, i + STORE_CHUNK),
        rows.asset.slice(i, i + STORE_CHUNK),
        rows.value.slice(i, i + STORE_CHUNK),
      ],
    );
  }
}

/**
 * Move the running table to the run's block, in the caller's (completeRun's) transaction. A run
 * continuing from another only applies its deltas if the table still stands at that run (a
 * concurrent run may have moved it); otherwise it leaves the table to the next run to rebuild.
 * Returns `memory` moved along by a continuing run, or undefined (a rebuild, the table did not
 * move, or `memory` is not where the table stood).
 */
export async function storeExpectedFacts(
  client: PoolClient,
  args: {
    chainId: number;
    runId: number;
    update: ExpectedFactUpdate;
    memory?: ExpectedFactMemory | undefined;
  },
): Promise<ExpectedFactMemory | undefined> {
  const { chainId, runId, update } = args;
  if (update.mode === "replace") {
    // Row lock on the state first: runs of the chain write the table one at a time.
    await client.query(
      `INSERT INTO recon.expected_fact_state (chain_id, run_id, block_number) VALUES ($1, $2, $3)
       ON CONFLICT (chain_id) DO UPDATE SET run_id = excluded.run_id, block_number = excluded.block_number`,
      [chainId, runId, update.block],
    );
    await client.query("DELETE FROM recon.expected_fact_balances WHERE chain_id = $1", [chainId]);
    await upsert(client, chainId, update.balances, "set");
    // A rebuild is a full run's (or a run that found the table elsewhere): no memory is kept
    // from it; the next run loads the table once.
    return undefined;
  }
  const moved = await client.query(
    `UPDATE recon.expected_fact_state SET run_id = $2, block_number = $3
      WHERE chain_id = $1 AND run_id = $4`,
    [chainId, runId, update.block, update.fromRunId],
  );
  if (moved.rowCount === 0) return undefined;
  await upsert(client, chainId, update.deltas, "add");
  if (update.recomputedAddresses.length > 0) {
    await client.query(
      "DELETE FROM recon.expected_fact_balances WHERE chain_id = $1 AND address = ANY($2::text[])",
      [chainId, update.recomputedAddresses],
    );
    await upsert(client, chainId, update.recomputed, "set");
  }
  const memory = args.memory;
  if (memory === undefined || memory.runId !== update.fromRunId) return undefined;
  for (const [k, v] of update.deltas) {
    const bar = k.indexOf("|");
    const address = k.slice(0, bar);
    // Not known: the table moved a row this process never read (unless it knows there was none).
    if (!memory.complete && !memory.rows.has(address)) continue;
    const m = memory.rows.get(address) ?? [];
    memory.rows.set(address, m);
    addBalance(m, k.slice(bar + 1), v);
  }
  for (const address of update.recomputedAddresses) memory.rows.set(address, []);
  for (const [k, v] of update.recomputed) {
    const bar = k.indexOf("|");
    memory.rows.get(k.slice(0, bar))!.push([intern(k.slice(bar + 1)), v]);
  }
  memory.runId = runId;
  return memory;
}
