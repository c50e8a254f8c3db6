/**
 * Unattributed inflows (DESIGN "Finality and bad days"): where a node cannot trace, value sent to a
 * deposit address inside a contract call leaves no chain fact, and would otherwise be swept into
 * custody:deposits with no customer credit. Per deposit address and asset, at the run's final
 * block, the on-chain balance is compared with what explains it:
 *
 *   canonical facts into the address − facts out of it (block ≤ run block)
 *   − booked sweeps out of it that no fact shows (a native sweep without traces)
 *   + unattributed inflows already credited by an operator (measured at ≤ run block)
 *
 * A balance above that is an `unattributed_inflow` break; `creditInflow` (the CLI's
 * `recon credit-inflow`) credits it to the address's customer, audited, exactly once.
 * A run checks the addresses with activity since the previous run, the addresses of its open
 * inflow breaks and of every inflow break still open or acknowledged (whichever run found it), and
 * a rotating slice of all deposit addresses (all of them in a full run).
 */
import type { PoolClient } from "../../foundation/db.js";
import type { OnchainBalance } from "./balances.js";
import { loadFactBalances } from "./expectedBalances.js";
import { DEFAULT_LOOKBACK_MS } from "./load.js";
import type { SweepReader, SweptItem } from "./sources.js";
import type { Break, CustodyKind } from "./types.js";
import type { PreviousRun } from "./watermarks.js";

/** Deposit addresses a run examines beyond those with activity (the slow full rotation). */
export const DEFAULT_INFLOW_ROTATION = 200;

export type InflowSelection = {
  addresses: string[];
  /** The last address of this run's rotation slice (the next run continues after it). */
  cursor: string | null;
};

/**
 * Which deposit addresses to check, in address order. A full run (no previous) checks every
 * deposit address of `custody`; an incremental one reads only the active ones and its rotation
 * slice from Postgres, so it never needs the whole custody set in memory.
 */
export async function selectInflowAddresses(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    previous: PreviousRun | null;
    /** Every custody address of the chain (used by a full run only). */
    custody: ReadonlyMap<string, CustodyKind>;
    /** Booked sweeps (the signer's). */
    sweeps: SweepReader;
    rotation?: number;
    /** How far back before the previous run's snapshot orphaned rows and reorgs count (load.ts). */
    lookbackMs?: number;
  },
): Promise<InflowSelection> {
  const { previous, chainId } = args;
  if (previous === null) {
    const deposits = [...args.custody].filter(([, k]) => k === "deposit").map(([a]) => a);
    return { addresses: deposits.sort(), cursor: null };
  }
  const rotation = args.rotation ?? DEFAULT_INFLOW_ROTATION;
  const picked = new Set<string>();
  // Activity: facts at heights the previous run did not cover, above the common ancestor of a
  // reorg detected since, or orphaned since (runs stand at the confirmation rule's block, and a
  // reorg within the finality rule can replace blocks below the previous run's: an address it
  // touched holds what the new branch says, not the balance read on the old one), booked sweeps
  // and operator credits since its snapshot, its open inflow breaks and every inflow break still
  // open or acknowledged whichever run found it (a CLI run at a higher block is not the run the
  // role's next one continues from when a role run below it came between; a run that did not read
  // the address resolved its break on no evidence: trackBreakStates resolves what a run does not
  // find), the addresses of sweeps it
  // found booked but not yet mined at its block (settled since an earlier snapshot, they are no
  // activity by then, and no fact shows a native sweep without traces), the addresses whose last
  // read is of a block a reorg since undid, and the addresses whose last read is of a block above
  // this run's (a run at a lower block than an earlier one: counted at
  // their last read, they would hold what a later block says). Both ends of a fact come
  // from one read of it (two UNIONed reads of the block range read 10,000 new facts twice).
  const lookbackMs = args.lookbackMs ?? DEFAULT_LOOKBACK_MS;
  // Settled since the lookback before the previous snapshot: the signer stamps `settled_at` when
  // its transaction starts (signer/sweeps/settleSweeps.ts), which may commit after that snapshot;
  // a native sweep without traces has no fact at the address to make it active otherwise.
  const swept = await args.sweeps.sweptAddressesSince(client, {
    chainId,
    since: new Date(previous.snapshotAt.getTime() - lookbackMs),
  });
  // Reorgs since the previous run undid the blocks above their common ancestor: an address whose
  // balance was last read at one of them counts at what the old branch said. No fact of those
  // blocks need name it (a native sweep without traces moves value inside the hot wallet's call,
  // and its reversed booking leaves no settled sweep), so its read is taken again; only when some
  // read is above the ancestor (recon.onchain_balance_state.max_block) is the table looked at.
  const active = await client.query<{ address: string }>(
    `WITH undone AS (
       SELECT min(common_ancestor) AS ancestor FROM chain.reorg_log
        WHERE chain_id = $1 AND (id > $8::bigint OR ($8::bigint IS NULL
          AND detected_at >= $4::timestamptz - make_interval(secs => $7::float8 / 1000))))
     SELECT a.address FROM (
       SELECT unnest(ARRAY[to_address, from_address]) AS address FROM chain.facts
         WHERE chain_id = $1 AND block_number <= $3
           AND block_number > LEAST($2::bigint, (SELECT ancestor FROM undone))
       UNION SELECT unnest(ARRAY[to_address, from_address]) FROM chain.facts
         WHERE chain_id = $1 AND status = 'orphaned' AND block_number <= $3
           AND orphaned_at >= $4::timestamptz - make_interval(secs => $7::float8 / 1000)
       UNION SELECT unnest($6::text[])
       UNION SELECT address FROM ledger.credited_inflows WHERE chain_id = $1 AND created_at >= $4
       UNION SELECT substr(key, 8) FROM recon.breaks WHERE run_id = $5 AND type = 'unattributed_inflow'
       UNION SELECT substr(key, 8) FROM recon.break_states
         WHERE chain_id = $1 AND state IN ('open', 'acknowledged') AND type = 'unattributed_inflow'
       UNION SELECT jsonb_array_elements_text(inputs->'swept_unmined') FROM recon.runs
         WHERE id = $5 AND jsonb_typeof(inputs->'swept_unmined') = 'array'
       UNION SELECT address FROM recon.onchain_balances
         WHERE chain_id = $1 AND block_number > $3 AND NOT EXISTS (
           SELECT 1 FROM recon.onchain_balance_state WHERE chain_id = $1 AND max_block <= $3)
       UNION SELECT address FROM recon.onchain_balances
         WHERE chain_id = $1 AND block_number > (SELECT ancestor FROM undone)
           AND (SELECT ancestor FROM undone) IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM recon.onchain_balance_state
              WHERE chain_id = $1 AND max_block <= (SELECT ancestor FROM undone))
     ) a JOIN chain.watched_addresses c ON c.chain_id = $1 AND c.address = a.address AND c.kind = 'deposit'`,
    [
      chainId,
      previous.block,
      args.block,
      previous.snapshotAt,
      previous.id,
      swept,
      lookbackMs,
      previous.reorgWatermark,
    ],
  );
  for (const r of active.rows) picked.add(r.address);
  const prev = await client.query<{ cursor: string | null }>(
    "SELECT inputs->>'inflow_cursor' AS cursor FROM recon.runs WHERE id = $1",
    [previous.id],
  );
  const after = prev.rows[0]?.cursor ?? "";
  // The slice continues after the previous run's cursor, in address order, wrapping around once.
  const slice = async (op: ">" | "<=", limit: number) =>
    limit <= 0
      ? []
      : (
          await client.query<{ address: string }>(
            `SELECT address FROM chain.watched_addresses
              WHERE chain_id = $1 AND kind = 'deposit' AND address ${op} $2
              ORDER BY address LIMIT $3`,
            [chainId, after, limit],
          )
        ).rows.map((r) => r.address);
  const head = await slice(">", rotation);
  const wrapped = after === "" ? [] : await slice("<=", rotation - head.length);
  const rotated = [...head, ...wrapped];
  for (const a of rotated) picked.add(a);
  return { addresses: [...picked].sort(), cursor: rotated.at(-1) ?? null };
}

const key = (address: string, assetId: string) => `${address}|${assetId}`;

/**
 * What explains each (address, asset) balance at `block`, keyed `address|assetId`, from history.
 * Runs take the facts' part from the running table instead (expectedBalances.ts) and add
 * `loadExpectedAdjustments`.
 */
export async function loadExpectedBalances(
  client: PoolClient,
  args: { chainId: number; block: number; addresses: readonly string[]; sweeps: SweepReader },
): Promise<Map<string, bigint>> {
  const out = await loadFactBalances(client, args);
  for (const [k, v] of await loadExpectedAdjustments(client, args))
    out.set(k, (out.get(k) ?? 0n) + v);
  return out;
}

/**
 * The part of the expected balances that is not chain facts: booked sweeps out of the addresses
 * that no fact shows, and operator inflow credits (both few), keyed `address|assetId`.
 */
export async function loadExpectedAdjustments(
  client: PoolClient,
  args: {
    chainId: number;
    block: number;
    addresses: readonly string[];
    sweeps: SweepReader;
    /**
     * Filled with the items of booked sweeps that no fact shows (a native sweep without traces:
     * booked without a chain reference) and whose tx is not mined at or below the block (settled
     * at the confirmation rule's block, above a run that stays its grace period behind).
     */
    unmined?: SweptItem[];
  },
): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  if (args.addresses.length === 0) return out;
  const add = (address: string, asset: string, v: bigint) => {
    const k = key(address, `${args.chainId}:${asset}`);
    out.set(k, (out.get(k) ?? 0n) + v);
  };
  // Sweeps are the signer's (what the Swept events say moved), read through the injected reader.
  // Counted once their transaction has a canonical fact at or below the block; an item a fact of
  // the same transaction already shows (ERC-20 log, traced internal call) is not counted twice.
  const items = await args.sweeps.bookedSweepItems(client, {
    chainId: args.chainId,
    addresses: args.addresses,
  });
  if (items.length > 0) {
    const facts = await client.query<{
      tx_hash: string;
      from_address: string;
      asset: string;
      block_number: string;
    }>(
      `SELECT tx_hash, from_address, asset, block_number FROM chain.facts
        WHERE chain_id = $1 AND tx_hash = ANY($2::text[]) AND status <> 'orphaned'`,
      [args.chainId, [...new Set(items.map((i) => i.txHash))]],
    );
    const mined = new Set<string>();
    const shown = new Set<string>();
    for (const f of facts.rows) {
      if (Number(f.block_number) <= args.block) mined.add(f.tx_hash);
      shown.add(`${f.tx_hash}|${f.from_address}|${f.asset}`);
    }
    for (const i of items) {
      if (shown.has(`${i.txHash}|${i.address}|${i.asset}`)) continue;
      if (mined.has(i.txHash)) add(i.address, i.asset, -i.swept);
      else args.unmined?.push(i);
    }
  }
  const params = [args.chainId, args.block, args.addresses];
  const credited = await client.query<{ address: string; asset: string; amount: bigint }>(
    `SELECT address, asset, sum(amount) AS amount FROM ledger.credited_inflows
      WHERE chain_id = $1 AND block_number <= $2 AND address = ANY($3::text[])
      GROUP BY address, asset`,
    params,
  );
  for (const r of credited.rows) add(r.address, r.asset, r.amount);
  return out;
}

/** Pure: a break for every checked (address, asset) whose on-chain balance exceeds what explains it. */
export function findUnattributedInflows(args: {
  onchain: readonly OnchainBalance[];
  expected: ReadonlyMap<string, bigint>;
  addresses: readonly string[];
}): Break[] {
  const checked = new Set(args.addresses);
  const breaks: Break[] = [];
  for (const b of args.onchain) {
    if (b.kind !== "deposit" || !checked.has(b.address)) continue;
    const explained = args.expected.get(key(b.address, b.assetId)) ?? 0n;
    const inflow = b.balance - explained;
    if (inflow <= 0n) continue;
    breaks.push({
      type: "unattributed_inflow",
      assetId: b.assetId,
      key: `inflow:${b.address}`,
      direction: "chain_without_ledger",
      facts: [],
      entries: [],
      chainAmount: b.balance,
      ledgerAmount: explained,
      difference: -inflow,
      action: `deposit address ${b.address} holds ${inflow} more than its chain facts, sweeps and credits explain (an internal transfer on a chain without traces, or value sent before allocation): check the sender, then credit it to the address's customer with \`custody-node recon credit-inflow <run>:<n> --by <you> --reason <why>\``,
    });
  }
  return breaks.sort((a, b) =>
    a.key === b.key ? a.assetId.localeCompare(b.assetId) : a.key.localeCompare(b.key),
  );
}
