/**
 * The deposit addresses' last-read on-chain balances (`recon.onchain_balances`) and their per-asset
 * total (`recon.deposit_balance_totals`). A run reads only addresses with activity plus a rotating
 * slice; the rest count at the balance read last (no fact touched them since, and the rotation and
 * the unattributed-inflow check find value that arrived without one).
 *
 * A reconciler process carries the rows it has read or written from one run to the next
 * (`DepositBalanceMemory`), checked against `recon.onchain_balance_state`: while that still names
 * the run the memory stands at, nobody else has written the table, and the known addresses are not
 * read again (at 100,000 deposit addresses, the 10,000 a block touches lie on nearly every page).
 */
import type { PoolClient } from "../../foundation/db.js";
import type { OnchainBalance } from "./balances.js";

const STORE_CHUNK = 50_000;

/** Balances of one address by asset, as a short list (most addresses hold one or two assets). */
export type AssetBalances = [asset: string, balance: bigint][];

const interned = new Map<string, string>();
/** One copy of each asset string, however many rows name it (a memory holds 100,000s of rows). */
export function intern(s: string): string {
  const known = interned.get(s);
  if (known !== undefined) return known;
  interned.set(s, s);
  return s;
}

/** Add `v` to `asset`'s balance in `rows` (a new entry at `v` if it has none). */
export function addBalance(rows: AssetBalances, asset: string, v: bigint): void {
  const at = rows.findIndex(([a]) => a === asset);
  if (at >= 0) rows[at] = [rows[at]![0], rows[at]![1] + v];
  else rows.push([intern(asset), v]);
}

/**
 * Rows of `recon.onchain_balances` one process knows, as they stood after run `runId` wrote the
 * table (0: no run has written it since `recon.onchain_balance_state` exists): for each known
 * address, every asset row it has (none: it has no row).
 */
export type DepositBalanceMemory = BalanceMemory;

/** A process's copy of a running table's rows of one chain, as they stood after run `runId`. */
export type BalanceMemory = {
  runId: number;
  /** Every address of the chain is known: one not listed has no row. */
  complete: boolean;
  rows: Map<string, AssetBalances>;
};

/**
 * A memory is built whole (every row of the chain) when the chain has at most this many rows, and
 * dropped above it (~300 bytes an address for each of the two tables).
 */
export const MEMORY_MAX_ROWS = 250_000;

/**
 * Every row of the chain in `table` (address, asset, balance), or null above MEMORY_MAX_ROWS. A
 * filtered read of the addresses a block touched visits nearly every page anyway (they are spread
 * over all of them), so reading them all costs about the same and makes the next runs warm.
 */
export async function loadWholeChain(
  client: PoolClient,
  table: BalanceTable,
  chainId: number,
  assetKey: (asset: string) => string = (asset) => asset,
): Promise<Map<string, AssetBalances> | null> {
  const r = await client.query<{ address: string; asset: string; balance: bigint }>(
    `SELECT address, asset, balance FROM ${table} WHERE chain_id = $1 LIMIT ${MEMORY_MAX_ROWS + 1}`,
    [chainId],
  );
  if (r.rows.length > MEMORY_MAX_ROWS) return null;
  const rows = new Map<string, AssetBalances>();
  for (const row of r.rows) {
    const list = rows.get(row.address) ?? [];
    rows.set(row.address, list);
    list.push([intern(assetKey(row.asset)), row.balance]);
  }
  return rows;
}

/** The running tables of (address, asset, balance) rows per chain that a process keeps a memory of. */
export type BalanceTable = "recon.onchain_balances" | "recon.expected_fact_balances";

/**
 * The memory of `table` that knows every address of `read`: the caller's `memory` when it stands
 * at `runId` (the run the table stands at in this snapshot), else a new one at `runId`, the whole
 * chain when there is anything to read (`loadWholeChain`); then the rows of the addresses it does
 * not know yet (an address without a row is known to have none). Rows are keyed by
 * `assetKey(asset)` (the table's `asset` column).
 */
export async function balanceMemoryFor(
  client: PoolClient,
  args: {
    table: BalanceTable;
    chainId: number;
    runId: number;
    memory: BalanceMemory | undefined;
    read: readonly string[];
    assetKey: (asset: string) => string;
  },
): Promise<BalanceMemory> {
  const { table, chainId, runId, read, assetKey } = args;
  let memory = args.memory?.runId === runId ? args.memory : undefined;
  if (memory === undefined) {
    const whole = read.length > 0 ? await loadWholeChain(client, table, chainId, assetKey) : null;
    memory = { runId, complete: whole !== null, rows: whole ?? new Map() };
  }
  const known = memory;
  const unknown = known.complete ? [] : read.filter((a) => !known.rows.has(a));
  if (unknown.length > 0) {
    const r = await client.query<{ address: string; asset: string; balance: bigint }>(
      `SELECT address, asset, balance FROM ${table}
        WHERE chain_id = $1 AND address = ANY($2::text[])`,
      [chainId, unknown],
    );
    for (const a of unknown) memory.rows.set(a, []);
    for (const row of r.rows)
      memory.rows.get(row.address)!.push([intern(assetKey(row.asset)), row.balance]);
  }
  return memory;
}

/**
 * What the deposit addresses not read this run hold, per asset id, by their cached balances:
 * the stored total minus the cached balances of the addresses that were read. Takes `memory` (the
 * caller's, from its previous run) when the table still stands at its run, and returns the memory
 * as of this snapshot with every read address known, for `storeDepositBalances`.
 */
export async function unreadDepositBalances(
  client: PoolClient,
  args: { chainId: number; read: readonly string[]; memory?: DepositBalanceMemory | undefined },
): Promise<{ unread: Map<string, bigint>; memory: DepositBalanceMemory }> {
  const { chainId } = args;
  const out = new Map<string, bigint>();
  const totals = await client.query<{ asset: string | null; total: bigint | null; run_id: string }>(
    `SELECT t.asset, t.total, COALESCE(s.run_id, 0)::text AS run_id
       FROM (SELECT $1::bigint AS chain_id) c
       LEFT JOIN recon.onchain_balance_state s ON s.chain_id = c.chain_id
       LEFT JOIN recon.deposit_balance_totals t ON t.chain_id = c.chain_id`,
    [chainId],
  );
  const runId = Number(totals.rows[0]!.run_id);
  for (const r of totals.rows) if (r.asset !== null) out.set(`${chainId}:${r.asset}`, r.total!);
  const memory = await balanceMemoryFor(client, {
    table: "recon.onchain_balances",
    chainId,
    runId,
    memory: args.memory,
    read: args.read,
    assetKey: (asset) => asset,
  });
  if (out.size === 0 || args.read.length === 0) return { unread: out, memory };
  for (const a of args.read)
    for (const [asset, balance] of memory.rows.get(a) ?? []) {
      const k = `${chainId}:${asset}`;
      out.set(k, (out.get(k) ?? 0n) - balance);
    }
  return { unread: out, memory };
}

/**
 * Keep the deposit balances read at `block` (only where nothing newer is stored) and move the
 * totals by the difference, in the caller's transaction; one writer per chain at a time. Returns
 * `memory` moved to `runId` when it stood where the table stood (no other writer since the run's
 * snapshot), else undefined (the next run reads the table).
 */
export async function storeDepositBalances(
  client: PoolClient,
  args: {
    chainId: number;
    runId: number;
    block: number;
    balances: readonly OnchainBalance[];
    memory?: DepositBalanceMemory | undefined;
  },
): Promise<DepositBalanceMemory | undefined> {
  const { chainId, block } = args;
  const deposits = args.balances.filter((b) => b.kind === "deposit");
  if (deposits.length === 0) return args.memory;
  await client.query(
    "SELECT pg_advisory_xact_lock(hashtextextended('recon.onchain_balances:' || $1::text, 0))",
    [chainId],
  );
  // max_block: the highest block of the chain's rows (selectInflowAddresses). Taken from the rows
  // themselves when the state row has none yet: the chain's first, or one a revision before the
  // column (migration 0013) wrote during a rolling deploy (NULL: unknown, runs read as if above).
  const state = await client.query<{ run_id: string }>(
    `WITH before AS (SELECT run_id, max_block FROM recon.onchain_balance_state WHERE chain_id = $1)
     INSERT INTO recon.onchain_balance_state (chain_id, run_id, max_block)
     SELECT $1, $2, CASE WHEN (SELECT max_block FROM before) IS NOT NULL THEN $3
       ELSE GREATEST($3, (SELECT max(block_number) FROM recon.onchain_balances WHERE chain_id = $1)) END
     ON CONFLICT (chain_id) DO UPDATE SET run_id = excluded.run_id,
       max_block = GREATEST(recon.onchain_balance_state.max_block, excluded.max_block)
     RETURNING (SELECT COALESCE((SELECT run_id FROM before), 0))::text AS run_id`,
    [chainId, args.runId, block],
  );
  const memory =
    args.memory !== undefined && args.memory.runId === Number(state.rows[0]!.run_id)
      ? args.memory
      : undefined;
  const prefix = `${chainId}:`;
  // Rows left alone because a newer read is stored (a run at a lower block than an earlier one).
  // The old rows are looked up one key at a time (LATERAL ... LIMIT 1): as a plain join the
  // planner hashed every row of the chain (100,000 at 10M; EXPLAIN, warm: 418-441 ms and 10,136
  // buffers against 115-165 ms for 10,000 probes, load ~4).
  const skipped = new Set<string>();
  for (let i = 0; i < deposits.length; i += STORE_CHUNK) {
    const chunk = deposits.slice(i, i + STORE_CHUNK);
    const r = await client.query<{ address: string }>(
      `WITH input AS (
         SELECT * FROM unnest($2::text[], $3::text[], $4::numeric[]) AS i(address, asset, balance)),
       joined AS (
         SELECT i.address, i.asset, i.balance, b.balance AS old_balance,
                b.block_number IS NULL OR b.block_number <= $5 AS older
           FROM input i LEFT JOIN LATERAL (
             SELECT o.balance, o.block_number FROM recon.onchain_balances o
              WHERE o.chain_id = $1 AND o.address = i.address AND o.asset = i.asset LIMIT 1) b ON true),
       old AS (SELECT * FROM joined WHERE older),
       kept AS (
         INSERT INTO recon.onchain_balances (chain_id, address, asset, balance, block_number)
         SELECT $1, address, asset, balance, $5 FROM old
         ON CONFLICT (chain_id, address, asset) DO UPDATE
           SET balance = excluded.balance, block_number = excluded.block_number),
       moved AS (
         INSERT INTO recon.deposit_balance_totals (chain_id, asset, total)
         SELECT $1, asset, sum(balance - COALESCE(old_balance, 0)) FROM old GROUP BY asset
         ON CONFLICT (chain_id, asset) DO UPDATE
           SET total = recon.deposit_balance_totals.total + excluded.total)
       SELECT address FROM joined WHERE NOT older`,
      [
        chainId,
        chunk.map((b) => b.address),
        chunk.map((b) => b.assetId.slice(prefix.length)),
        chunk.map((b) => b.balance.toString()),
        block,
      ],
    );
    for (const row of r.rows) skipped.add(row.address);
  }
  if (memory === undefined) return undefined;
  // The memory follows the table: written rows replace their asset's row; an address with a row
  // left alone is forgotten (read again when needed).
  for (const b of deposits) {
    if (skipped.has(b.address)) {
      memory.rows.delete(b.address);
      memory.complete = false;
      continue;
    }
    const rows = memory.rows.get(b.address) ?? (memory.complete ? [] : undefined);
    if (rows === undefined) continue;
    memory.rows.set(b.address, rows);
    const asset = b.assetId.slice(prefix.length);
    const at = rows.findIndex(([a]) => a === asset);
    if (at >= 0) rows[at] = [rows[at]![0], b.balance];
    else rows.push([intern(asset), b.balance]);
  }
  memory.runId = args.runId;
  return memory;
}
