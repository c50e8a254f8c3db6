/**
 * The indexer's SQL. A batch (blocks, facts, confirmations, checkpoint) is one transaction, so a
 * crash at any instant leaves either the whole batch or none of it; the checkpoint row is locked
 * and compared with the batch's first parent hash inside that transaction.
 */
import { pipeline } from "node:stream/promises";
import { from as copyFrom } from "pg-copy-streams";
import type { PoolClient } from "../foundation/db.js";
import { TipMovedError } from "./errors.js";
import type { BlockHeader, Fact } from "./extractFacts.js";
import type { Tip } from "./tip.js";

export type { Tip } from "./tip.js";

/** Facts whose status changed in a transaction (for the doorbell and metrics). */
export type StatusChange = { count: number; fromBlock: bigint | null; toBlock: bigint | null };

export async function loadTip(
  client: Pick<PoolClient, "query">,
  chainId: number,
): Promise<Tip | null> {
  const { rows } = await client.query<{ block_number: string; block_hash: string }>(
    "SELECT block_number, block_hash FROM chain.checkpoints WHERE chain_id = $1",
    [chainId],
  );
  const row = rows[0];
  return row ? { number: BigInt(row.block_number), hash: row.block_hash } : null;
}

const LOCK_TIP =
  "SELECT block_number, block_hash FROM chain.checkpoints WHERE chain_id = $1 FOR UPDATE";

// The same, first turning off synchronous commit for this transaction: one round trip, not two.
const LOCK_TIP_ASYNC_COMMIT = `
  SELECT c.block_number, c.block_hash
    FROM (SELECT set_config('synchronous_commit', 'off', true)) AS s
    LEFT JOIN LATERAL (
      SELECT block_number, block_hash FROM chain.checkpoints WHERE chain_id = $1 FOR UPDATE
    ) AS c ON true`;

/**
 * Lock the checkpoint row and check it is `expected` (another writer or a lost race otherwise).
 * `asyncCommit`: the transaction commits without waiting for its WAL flush (an ingest batch:
 * losing it in a Postgres crash loses nothing, see commitRange).
 */
export async function lockTip(
  client: PoolClient,
  chainId: number,
  expected: Tip | null,
  { asyncCommit = false }: { asyncCommit?: boolean } = {},
): Promise<void> {
  const { rows } = await client.query<{ block_number: string | null; block_hash: string | null }>(
    asyncCommit ? LOCK_TIP_ASYNC_COMMIT : LOCK_TIP,
    [chainId],
  );
  const row = rows[0];
  const actual =
    row?.block_number != null && row.block_hash != null
      ? { number: BigInt(row.block_number), hash: row.block_hash }
      : null;
  if (actual?.hash !== expected?.hash || actual?.number !== expected?.number)
    throw new TipMovedError(expected, actual);
}

/**
 * Hold off the indexer's writes of `chainId`'s facts until the caller's transaction ends: every
 * transaction that stores, revives or orphans facts (a batch, a reorg, a resume) locks the
 * checkpoint row first (lockTip), and this share lock conflicts with that. For a module above that
 * decides from facts being absent or all orphaned (the treasury's `unbook`): read after this, no
 * fact the indexer is storing meanwhile is missed (it commits first, and is read, or waits for the
 * caller). Take it before any other lock of the transaction: the indexer takes it first too.
 * Without a checkpoint row (nothing indexed yet, no finalized height) it locks nothing.
 */
export async function holdFactWrites(
  client: Pick<PoolClient, "query">,
  chainId: number,
): Promise<void> {
  await client.query("SELECT 1 FROM chain.checkpoints WHERE chain_id = $1 FOR SHARE", [chainId]);
}

/** Returns true when every block is new (then none of its facts can exist yet). */
export async function insertBlocks(
  client: PoolClient,
  chainId: number,
  blocks: BlockHeader[],
): Promise<boolean> {
  if (blocks.length === 0) return true;
  // A block seen before (orphaned, then canonical again after a reorg back) becomes canonical again.
  const { rows } = await client.query<{ fresh: boolean }>(
    `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp, canonical)
     SELECT $1, n, h, p, to_timestamp(t), true
       FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[]) AS b(n, h, p, t)
     ON CONFLICT (chain_id, hash) DO UPDATE SET canonical = true
     RETURNING (xmax = 0) AS fresh`,
    [
      chainId,
      blocks.map((b) => b.number.toString()),
      blocks.map((b) => b.hash),
      blocks.map((b) => b.parentHash),
      blocks.map((b) => b.timestamp),
    ],
  );
  return rows.every((r) => r.fresh);
}

// Blocks seen before (a reorg back): a fact may exist already, orphaned, and comes back to life.
const INSERT_FACTS = `
  INSERT INTO chain.transfers
    (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
     from_address, to_address, amount, status, confirmed_at, log_index)
  SELECT $1, bn, bh, th, ti, pos, k, a, fa, ta, amt, st, CASE WHEN st = 'confirmed' THEN now() END, li
    FROM unnest($2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[], $11::numeric[], $12::text[], $13::int[])
         AS f(bn, bh, th, ti, pos, k, a, fa, ta, amt, st, li)`;

const REVIVE_ORPHANED_FACTS = `
  ON CONFLICT (chain_id, block_hash, tx_hash, position) DO UPDATE
    SET status = EXCLUDED.status, confirmed_at = EXCLUDED.confirmed_at, orphaned_at = NULL,
        orphaned_after_confirmation = false
    WHERE chain.transfers.status = 'orphaned'`;

const COPY_FACTS = `COPY chain.transfers
  (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind, asset,
   from_address, to_address, amount, status, confirmed_at, log_index) FROM STDIN`;

/** Text COPY field: hashes, addresses, numbers and our own words never hold these, but be exact. */
function copyField(v: string): string {
  return /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : v;
}
const COPY_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  "\t": "\\t",
  "\n": "\\n",
  "\r": "\\r",
};

/**
 * Facts of blocks that are all new cannot conflict with stored rows, so they go in with COPY: the
 * cheapest write Postgres has (no per-row parameter arrays, no conflict check beyond the unique
 * index). The text goes out in 64 KiB chunks, so memory stays flat.
 */
export async function copyFacts(
  client: PoolClient,
  chainId: number,
  facts: Fact[],
  status: string[],
): Promise<void> {
  const { rows } = await client.query<{ now: string }>("SELECT now()::text AS now");
  const now = rows[0]!.now;
  const chain = String(chainId);
  async function* lines() {
    let chunk = "";
    for (let i = 0; i < facts.length; i++) {
      const f = facts[i]!;
      const confirmed = status[i] === "confirmed";
      chunk += `${chain}\t${f.blockNumber}\t${copyField(f.blockHash)}\t${copyField(f.txHash)}\t${f.txIndex}\t${copyField(f.position)}\t${f.kind}\t${copyField(f.asset)}\t${copyField(f.from)}\t${copyField(f.to)}\t${f.amount}\t${status[i]}\t${confirmed ? now : "\\N"}\t${f.logIndex ?? "\\N"}\n`;
      if (chunk.length >= 1 << 16) {
        yield chunk;
        chunk = "";
      }
    }
    if (chunk.length > 0) yield chunk;
  }
  await pipeline(lines(), client.query(copyFrom(COPY_FACTS)));
}

/**
 * Below this many facts a batch goes in with one INSERT (one round trip) rather than COPY (a
 * savepoint, the clock, the copy and the release: four): following the head, a block holds a few
 * custody facts, and round trips are what its commit costs.
 */
const COPY_MIN_FACTS = 500;

/**
 * Insert facts; those at or below `confirmedUpTo` go in as `confirmed` directly (backfill would
 * otherwise write every row twice). A fact orphaned earlier whose block is canonical again is
 * revived as `seen`/`confirmed`.
 */
export async function insertFacts(
  client: PoolClient,
  chainId: number,
  facts: Fact[],
  confirmedUpTo: bigint | null,
  /** All blocks were new: no conflict can happen, so COPY (the common case, and the fast one). */
  freshBlocks = false,
): Promise<StatusChange> {
  if (facts.length === 0) return { count: 0, fromBlock: null, toBlock: null };
  const status = facts.map((f) =>
    confirmedUpTo !== null && f.blockNumber <= confirmedUpTo ? "confirmed" : "seen",
  );
  // A fresh block's facts exist already only when the block was pruned and comes back (an
  // operator's deep resume): COPY then meets the unique key, and the conflict path takes over.
  let copied = false;
  if (freshBlocks && facts.length >= COPY_MIN_FACTS) {
    await client.query("SAVEPOINT copy_facts");
    try {
      await copyFacts(client, chainId, facts, status);
      await client.query("RELEASE SAVEPOINT copy_facts");
      copied = true;
    } catch (err) {
      if ((err as { code?: string }).code !== "23505") throw err;
      await client.query("ROLLBACK TO SAVEPOINT copy_facts");
    }
  }
  if (!copied)
    await client.query(INSERT_FACTS + REVIVE_ORPHANED_FACTS, [
      chainId,
      facts.map((f) => f.blockNumber.toString()),
      facts.map((f) => f.blockHash),
      facts.map((f) => f.txHash),
      facts.map((f) => f.txIndex),
      facts.map((f) => f.position),
      facts.map((f) => f.kind),
      facts.map((f) => f.asset),
      facts.map((f) => f.from),
      facts.map((f) => f.to),
      facts.map((f) => f.amount.toString()),
      status,
      facts.map((f) => f.logIndex ?? null),
    ]);
  let count = 0;
  let fromBlock: bigint | null = null;
  let toBlock: bigint | null = null;
  facts.forEach((f, i) => {
    if (status[i] !== "confirmed") return;
    count++;
    if (fromBlock === null || f.blockNumber < fromBlock) fromBlock = f.blockNumber;
    if (toBlock === null || f.blockNumber > toBlock) toBlock = f.blockNumber;
  });
  return { count, fromBlock, toBlock };
}

async function statusChange(
  client: PoolClient,
  sql: string,
  params: unknown[],
): Promise<StatusChange & { confirmedBefore: number }> {
  const { rows } = await client.query<{
    n: string;
    lo: string | null;
    hi: string | null;
    c: string;
  }>(sql, params);
  const row = rows[0]!;
  return {
    count: Number(row.n),
    fromBlock: row.lo === null ? null : BigInt(row.lo),
    toBlock: row.hi === null ? null : BigInt(row.hi),
    confirmedBefore: Number(row.c),
  };
}

/** `seen` → `confirmed` for canonical facts at or below `upTo`. */
export async function confirmFacts(
  client: PoolClient,
  chainId: number,
  upTo: bigint,
): Promise<StatusChange> {
  return statusChange(
    client,
    `WITH u AS (
       UPDATE chain.transfers SET status = 'confirmed', confirmed_at = now()
        WHERE chain_id = $1 AND status = 'seen' AND block_number <= $2
       RETURNING block_number)
     SELECT count(*) AS n, min(block_number) AS lo, max(block_number) AS hi, 0 AS c FROM u`,
    [chainId, upTo.toString()],
  );
}

/** Everything above `ancestor` leaves the canonical chain (kept for audit). */
export async function orphanAbove(
  client: PoolClient,
  chainId: number,
  ancestor: bigint,
): Promise<StatusChange & { confirmedBefore: number }> {
  await client.query(
    "UPDATE chain.blocks SET canonical = false WHERE chain_id = $1 AND number > $2 AND canonical",
    [chainId, ancestor.toString()],
  );
  return statusChange(
    client,
    `WITH u AS (
       UPDATE chain.transfers
          SET status = 'orphaned', orphaned_at = now(),
              orphaned_after_confirmation = (status = 'confirmed')
        WHERE chain_id = $1 AND block_number > $2 AND status <> 'orphaned'
       RETURNING block_number, orphaned_after_confirmation)
     SELECT count(*) AS n, min(block_number) AS lo, max(block_number) AS hi,
            count(*) FILTER (WHERE orphaned_after_confirmation) AS c
       FROM u`,
    [chainId, ancestor.toString()],
  );
}

export async function recordReorg(
  client: PoolClient,
  reorg: {
    chainId: number;
    depth: number;
    ancestor: bigint;
    oldTip: Tip;
    newTip: Tip;
    beyondWindow: boolean;
    orphanedConfirmedFacts: number;
  },
): Promise<void> {
  await client.query(
    `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
       new_tip_number, new_tip_hash, beyond_window, orphaned_confirmed_facts)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      reorg.chainId,
      reorg.depth,
      reorg.ancestor.toString(),
      reorg.oldTip.number.toString(),
      reorg.oldTip.hash,
      reorg.newTip.number.toString(),
      reorg.newTip.hash,
      reorg.beyondWindow,
      reorg.orphanedConfirmedFacts,
    ],
  );
}

export async function saveTip(client: PoolClient, chainId: number, tip: Tip | null): Promise<void> {
  if (tip === null) {
    await client.query("DELETE FROM chain.checkpoints WHERE chain_id = $1", [chainId]);
    return;
  }
  await client.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, updated_at)
     VALUES ($1, $2, $3, now())
     ON CONFLICT (chain_id) DO UPDATE
       SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash, updated_at = now()`,
    [chainId, tip.number.toString(), tip.hash],
  );
}

/** Stored canonical block hashes in [from, to], by number. */
export async function canonicalHashes(
  client: Pick<PoolClient, "query">,
  chainId: number,
  from: bigint,
  to: bigint,
): Promise<Map<bigint, string>> {
  const { rows } = await client.query<{ number: string; hash: string }>(
    `SELECT number, hash FROM chain.blocks
      WHERE chain_id = $1 AND canonical AND number BETWEEN $2 AND $3`,
    [chainId, from.toString(), to.toString()],
  );
  return new Map(rows.map((r) => [BigInt(r.number), r.hash]));
}

export async function lowestCanonicalBlock(
  client: Pick<PoolClient, "query">,
  chainId: number,
): Promise<bigint | null> {
  const { rows } = await client.query<{ n: string | null }>(
    "SELECT min(number) AS n FROM chain.blocks WHERE chain_id = $1 AND canonical",
    [chainId],
  );
  return rows[0]?.n == null ? null : BigInt(rows[0].n);
}

/**
 * Delete stored blocks (canonical or orphaned) below `below`, at most `limit` rows: blocks are
 * reorg evidence and an audit trail only while a reorg can still reach them. Facts are never
 * pruned (they reference blocks by hash). Returns how many rows went.
 */
export async function pruneBlocks(
  client: Pick<PoolClient, "query">,
  chainId: number,
  below: bigint,
  limit: number,
): Promise<number> {
  const { rowCount } = await client.query(
    `DELETE FROM chain.blocks WHERE ctid = ANY(ARRAY(
       SELECT ctid FROM chain.blocks WHERE chain_id = $1 AND number < $2 LIMIT $3))`,
    [chainId, below.toString(), limit],
  );
  return rowCount ?? 0;
}
