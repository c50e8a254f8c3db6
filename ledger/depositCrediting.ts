/**
 * Deposit crediting: turns the indexer's confirmed deposit facts into ledger transfers, exactly
 * once each, and follows every credit until its block is final (DESIGN "Money flows"):
 *
 * - a confirmed fact with no standing credit of the same deposit is credited;
 * - a credited deposit whose fact a reorg orphaned gets a **reorg hold** (pending transfer
 *   `user:<id>` → `custody:deposits`), so the money is no longer available; what the customer's
 *   available balance cannot cover is held on `receivable:reorg:<id>`, the customer's withdrawals
 *   are blocked, and an alert fires;
 * - the same deposit confirming again voids the hold (no second credit);
 * - the orphaned block's height becoming final without the deposit posts the hold;
 * - the deposit coming back as another fact of its transaction (the same signed tx re-executed
 *   on the new branch's state: another Transfer before it moves its ordinal), or after its hold
 *   was posted, is its **return** (pairReturns, settleReturn): the fact that came back is credited
 *   at its own identity (reconciliation pairs one transfer with each fact), and in the same
 *   transaction the old credit is closed against it: its hold posted, the shortfall it booked on
 *   `receivable:reorg:<id>` paid out of the return (no more than is still owed on it), its
 *   withdrawal block lifted, state `final` with `returned_credit_id`. The customer ends with one
 *   deposit and owes nothing.
 *
 * "The same deposit" is the fact's identity (chain, tx hash, position: `tx`, `transfer:<n>`,
 * `trace:<path>`) AND its recipient, asset and amount, never the position alone: a replacement
 * (another tx, or the same tx paying another amount) is a new deposit. A return is the same tx
 * hash, sender, recipient, asset, amount and owner at any position, matched one to one (a tx
 * paying a customer the same amount twice returns each credit once). Runs from the `chain-facts`
 * doorbell and from a periodic sweep (doorbells can be lost); both are idempotent because every id
 * derives from the fact or the credit, and rows are claimed with SKIP LOCKED.
 *
 * Incremental (issue 15): a per-chain watermark (ledger.crediting_watermarks) marks the blocks whose
 * confirmed facts are all credited or parked, so a pass reads only the blocks above it (an index
 * range on the facts' table), never the history; it goes back to the common ancestor of each reorg
 * the indexer records. A deposit the ledger refuses is parked (ledger.parked_deposits, with the
 * ledger's code) and retried with backoff, so crediting never stalls behind it.
 *
 * The indexer's data is read through the views it publishes (indexers/migrations, "published
 * views"): chain.facts, chain.watched_deposit_addresses, chain.reorg_log. Plain projections, inlined
 * by Postgres, so each statement plans as on the tables. Statements that lock a fact read
 * chain.facts (a locking clause on chain.deposit_facts would lock the address's row too).
 */
import type { QueryResultRow } from "pg";
import { formatAmount } from "../foundation/amounts.js";
import { appendAudit } from "../foundation/audit.js";
import type { Common } from "../foundation/common.js";
import { afterCommit, type Pool, type PoolClient, withTransaction } from "../foundation/db.js";
import { counterOnce, gaugeOnce } from "../foundation/metrics.js";
import { readFinalized } from "../indexers/index.js";
import type { Ledger } from "./createLedger.js";
import { ParkedRetryInputError } from "./errors.js";
import {
  clearSettledShortfallBlocks,
  coverReorgHold,
  REORG_LOSS_ACCOUNT,
  recordReorgShortfall,
  recordWriteOffReversal,
  reorgShortfallCounter,
  SETTLED_BY_RECEIVABLE,
  writeOffReversal,
} from "./reorgShortfall.js";
import type { Queryable } from "./runBatch.js";
import { assetIdOf, depositTransferName, transferId } from "./transferId.js";
import type { NewTransfer, ResolveTransfer, TransferInput, TransferResult } from "./types.js";
import { clearCreditBlock } from "./withdrawalBlocks.js";

/** Which facts to look at: a chain, and optionally a block range (a doorbell's). */
export type CreditScope = { chainId?: number; fromBlock?: number; toBlock?: number };

export type SweepResult = {
  credited: number;
  /** Reorg holds placed on credited deposits whose fact was orphaned. */
  held: number;
  /** Holds voided because the same deposit confirmed again. */
  restored: number;
  /** Holds posted because the orphaned block became final without the deposit. */
  finalized: number;
};

/** A confirmed deposit the ledger refused, parked for retry. */
export type ParkedDeposit = {
  factId: string;
  chainId: number;
  blockNumber: bigint;
  txHash: string;
  position: string;
  toAddress: string;
  asset: string;
  amount: bigint;
  owner: string;
  /** The ledger's refusal (e.g. LEDGER_UNKNOWN_ASSET) at the last attempt. */
  code: string;
  detail: string | null;
  attempts: number;
  nextAttemptAt: Date;
  parkedAt: Date;
};

export type DepositCrediting = {
  /** Credit confirmed, uncredited deposit facts of a block range (or all); returns how many credits were created. */
  creditConfirmed: (options?: CreditScope & { limit?: number }) => Promise<number>;
  /** One step of the chain's crediting watermark; `done` once it has reached what is confirmed. */
  creditNew: (options: {
    chainId: number;
    limit?: number;
    maxBlocks?: number;
  }) => Promise<{ credited: number; done: boolean }>;
  /** Retry the chain's parked deposits that are due; returns how many were credited and tried. */
  retryParked: (options: {
    chainId: number;
    limit?: number;
  }) => Promise<{ credited: number; tried: number }>;
  /**
   * One step of the chain's catch-up pass below the watermark (a bounded block window, rotating);
   * returns how many credits it created and the blocks it covered.
   */
  catchUp: (options: {
    chainId: number;
    maxBlocks?: number;
    maxFacts?: number;
    limit?: number;
  }) => Promise<{ credited: number; from: bigint; to: bigint }>;
  /** Parked (refused) deposits, oldest first. */
  parked: (options?: { chainId?: number; limit?: number }) => Promise<ParkedDeposit[]>;
  /** Place reorg holds on credits whose facts were orphaned; returns how many. */
  holdOrphaned: (options?: { chainId?: number; limit?: number }) => Promise<number>;
  /** Void the holds of deposits that confirmed again; returns how many. */
  restoreReconfirmed: (options?: { chainId?: number; limit?: number }) => Promise<number>;
  /** Post the holds whose orphaned block is final without the deposit; returns how many. */
  finalizeHolds: (options?: { chainId?: number; limit?: number }) => Promise<number>;
  /**
   * Apply blocked customers' available balances to the reorg receivables their final reorg holds
   * left, lifting the blocks of those paid in full; returns how many customers paid something.
   */
  repayReceivables: (options?: { chainId?: number }) => Promise<number>;
  /** All of the above until nothing is left. */
  sweep: (options?: CreditScope) => Promise<SweepResult>;
};

/** Blocks below the crediting watermark the catch-up pass re-reads per step (chain config `creditingCatchupBlocks`). */
export const DEFAULT_CATCHUP_BLOCKS = 1_000;
/** Facts (of any kind) the catch-up pass reads per step at most, whatever the block window. */
export const DEFAULT_CATCHUP_FACTS = 2_000;

/**
 * The name of the reorg hold's transfers for a credit; `n` counts earlier holds of it. `settle`:
 * the customer pays the shortfall out of the deposit's return (once per credit: it returns once);
 * `writeoff`: the write-off of that shortfall reversed before it (reorgShortfall.ts writeOffReversal).
 */
export function reorgHoldName(
  creditId: string,
  part: "hold" | "shortfall" | "settle" | "writeoff",
  n = 0,
): string {
  const base = `reorg-${part}:${creditId}`;
  return n === 0 ? base : `${base}:${n}`;
}

/**
 * The name of a repayment of `receivable:reorg:<owner>` out of the customer's balance: `paid` is
 * what had been paid into the receivable before it (its credits posted, read under its row lock),
 * so a retry of the same repayment has the same id and the next one another.
 */
export function reorgRepayName(assetId: string, owner: string, paid: bigint): string {
  return `reorg-repay:${assetId}:${owner}:${paid}`;
}

// A standing credit of the same deposit: same identity, recipient, asset and amount, and not
// reversed by a final reorg hold (nor compensated under the old rule).
const SAME_DEPOSIT = `d.chain_id = f.chain_id AND d.tx_hash = f.tx_hash AND d.position = f.position
  AND d.to_address = f.to_address AND d.asset = f.asset AND d.amount = f.amount`;

// The credits of fact f's identity: how many (the next credit's id counts them) and how many of them
// stand for the same deposit. Reached through the ledger's index of chain references and the
// credit's key (migration 0008: a credit's id is its deposit transfer's id, with the same chain
// reference), one probe per fact.
const FACT_CREDITS = `LATERAL (
  SELECT count(*)::int AS credits,
    count(*) FILTER (WHERE d.to_address = f.to_address AND d.asset = f.asset AND d.amount = f.amount
      AND d.state IN ('credited', 'held'))::int AS standing
  FROM ledger.transfers t JOIN ledger.deposit_credits d ON d.credit_id = t.id
  WHERE t.chain_id = f.chain_id AND t.tx_hash = f.tx_hash AND t.position = f.position
    AND t.kind = 'deposit') c`;

// Confirmed facts into deposit addresses with no standing credit of the same deposit, in a block
// range (a doorbell's, or the watermark's next step), leaving parked ones to their retry. FOR SHARE
// holds the fact's row (through chain.facts, that row only) until we commit, so the indexer cannot
// orphan it between our read and our credit: a fact orphaned before crediting is never credited.
const UNCREDITED = `
SELECT f.id::text AS fact_id, f.chain_id::int AS chain_id, f.block_hash, f.block_number::text, f.tx_hash,
  f.position, f.asset, f.from_address, f.to_address, f.amount, ca.owner, c.credits
FROM chain.facts f
JOIN chain.watched_deposit_addresses ca ON ca.chain_id = f.chain_id AND ca.address = f.to_address
CROSS JOIN ${FACT_CREDITS}
WHERE f.status = 'confirmed' AND f.kind IN ('native', 'erc20', 'internal') AND f.amount > 0
  AND ($1::bigint IS NULL OR f.chain_id = $1)
  AND ($3::bigint IS NULL OR f.block_number >= $3) AND ($4::bigint IS NULL OR f.block_number <= $4)
  AND c.standing = 0
  AND NOT EXISTS (SELECT 1 FROM ledger.parked_deposits p WHERE p.fact_id = f.id)
ORDER BY f.chain_id, f.block_number, f.tx_index, f.id
LIMIT $2
FOR SHARE OF f`;

// The same facts of a new block range taken as first credits (credits = 0), without the probe of
// each fact's credits: one descent of the ledger's chain-reference index per fact, to the page the
// credit's own insertion then reads again. creditNew books these with ledger.createNewTransfers, which creates every first
// credit's id or writes nothing; then (and only then) it reads UNCREDITED and credits the checked
// way. Sound because a standing credit of a deposit implies that its identity's first credit
// transfer (`deposit:<chain>:<tx>:<position>`, n = 0) exists: the n-th credit of an identity is
// named after how many credits it has, the first is n = 0, and transfers are never deleted. So
// when every n = 0 id is new, no fact of the page has any credit: the page UNCREDITED would read
// (its first `limit` rows; the row past the page can only be earlier, which moves the watermark
// less far). A concurrent credit of the same fact is found the same way (its id exists).
const UNCREDITED_FIRST = `
SELECT f.id::text AS fact_id, f.chain_id::int AS chain_id, f.block_hash, f.block_number::text, f.tx_hash,
  f.position, f.asset, f.from_address, f.to_address, f.amount, ca.owner, 0 AS credits
FROM chain.facts f
JOIN chain.watched_deposit_addresses ca ON ca.chain_id = f.chain_id AND ca.address = f.to_address
WHERE f.status = 'confirmed' AND f.kind IN ('native', 'erc20', 'internal') AND f.amount > 0
  AND ($1::bigint IS NULL OR f.chain_id = $1)
  AND ($3::bigint IS NULL OR f.block_number >= $3) AND ($4::bigint IS NULL OR f.block_number <= $4)
  AND NOT EXISTS (SELECT 1 FROM ledger.parked_deposits p WHERE p.fact_id = f.id)
ORDER BY f.chain_id, f.block_number, f.tx_index, f.id
LIMIT $2
FOR SHARE OF f`;

// Parked deposits due for another try, with what crediting needs of their fact (which may have
// been orphaned, or credited another way, meanwhile).
const PARKED_DUE = `
SELECT f.id::text AS fact_id, f.chain_id::int AS chain_id, f.block_hash, f.block_number::text, f.tx_hash,
  f.position, f.asset, f.from_address, f.to_address, f.amount, p.owner, p.attempts, c.credits,
  (f.status = 'confirmed' AND c.standing = 0) AS owed
FROM ledger.parked_deposits p
JOIN chain.facts f ON f.id = p.fact_id
CROSS JOIN ${FACT_CREDITS}
WHERE p.chain_id = $1 AND p.next_attempt_at <= now()
ORDER BY p.next_attempt_at
LIMIT $2
FOR UPDATE OF p SKIP LOCKED FOR SHARE OF f`;

// A refused deposit is parked (or its attempt counted); the next try waits base * 2^attempts,
// at most an hour.
const PARK = `
INSERT INTO ledger.parked_deposits (fact_id, chain_id, block_number, tx_hash, position, to_address, asset,
  amount, owner, code, detail, next_attempt_at)
SELECT fact_id, chain_id, block_number, tx_hash, position, to_address, asset, amount, owner, code, detail,
  now() + make_interval(secs => $13::double precision / 1000)
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
  $8::numeric[], $9::text[], $10::text[], $11::text[])
  AS u(fact_id, chain_id, block_number, tx_hash, position, to_address, asset, amount, owner, code, detail)
ON CONFLICT (fact_id) DO UPDATE SET code = EXCLUDED.code, detail = EXCLUDED.detail,
  attempts = ledger.parked_deposits.attempts + 1, updated_at = now(),
  next_attempt_at = now() + make_interval(secs => least(3600,
    $13::double precision / 1000 * power(2, least(ledger.parked_deposits.attempts, $12::int))))`;

// The watermark (locked: one pass per chain at a time), rewound to the common ancestor of every
// reorg recorded since, and how far it may move: to the highest confirmed fact, but not past a
// block still holding a fact below the confirmation rule.
const WATERMARK_STEP = `
SELECT w.block_number::text AS watermark, r.reorg_id::text, r.ancestor::text,
  (SELECT max(block_number) FROM chain.facts WHERE chain_id = $1 AND status = 'confirmed')::text AS confirmed,
  (SELECT min(block_number) FROM chain.facts WHERE chain_id = $1 AND status = 'seen'
     AND block_number > least(w.block_number, coalesce(r.ancestor, w.block_number)))::text AS seen
FROM ledger.crediting_watermarks w,
LATERAL (SELECT coalesce(max(id), w.reorg_id) AS reorg_id, min(common_ancestor) AS ancestor
           FROM chain.reorg_log WHERE chain_id = $1 AND id > w.reorg_id) r
WHERE w.chain_id = $1
FOR UPDATE OF w`;

// The catch-up window's cut: the block of its (maxFacts + 1)-th fact, if it has that many (an index
// range of transfers_block, whatever the facts' kinds).
const CATCHUP_CUT = `
SELECT block_number::text AS cut FROM chain.facts
WHERE chain_id = $1 AND block_number > $2 AND block_number <= $3
ORDER BY block_number OFFSET $4 LIMIT 1`;

const PARKED_LIST = `
SELECT fact_id::text, chain_id::int AS chain_id, block_number::text, tx_hash, position, to_address, asset,
  amount, owner, code, detail, attempts, next_attempt_at, parked_at
FROM ledger.parked_deposits WHERE ($1::bigint IS NULL OR chain_id = $1)
ORDER BY parked_at, fact_id LIMIT $2`;

type ParkedRow = {
  fact_id: string;
  chain_id: number;
  block_number: string;
  tx_hash: string;
  position: string;
  to_address: string;
  asset: string;
  amount: bigint;
  owner: string;
  code: string;
  detail: string | null;
  attempts: number;
  next_attempt_at: Date;
  parked_at: Date;
};

// The credits of booked facts, and the deposit.credited event of each transfer created now (its
// payload as factPayload builds it: chain_id a number, block_number and amount strings; the
// ::text casts below make those JSON strings, they are not reads).
const INSERT_CREDITS = `
WITH u AS (
  SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::numeric[], $8::text[], $9::bigint[], $10::text[], $11::boolean[], $12::text[], $13::text[])
    WITH ORDINALITY AS u(credit_id, chain_id, tx_hash, position, to_address, asset, amount, owner,
      block_number, block_hash, created, fact_tx_hash, asset_id, ord)
), credits AS (
  INSERT INTO ledger.deposit_credits (credit_id, chain_id, tx_hash, position, to_address, asset, amount,
    owner, block_number, block_hash)
  SELECT credit_id, chain_id, tx_hash, position, to_address, asset, amount, owner, block_number, block_hash
  FROM u
  ON CONFLICT (credit_id) DO NOTHING
)
INSERT INTO ledger.events (type, transfer_id, payload)
SELECT 'deposit.credited', credit_id, jsonb_build_object('chain_id', chain_id, 'tx_hash', fact_tx_hash,
  'position', position, 'block_hash', block_hash, 'block_number', block_number::text,
  'to_address', to_address, 'asset_id', asset_id, 'amount', amount::text, 'owner', owner)
FROM u WHERE created
ORDER BY ord`;

const CREDIT_COLUMNS = `d.credit_id::text, d.chain_id::int AS chain_id, d.tx_hash, d.position, d.to_address,
  d.asset, d.amount, d.owner, d.block_number::text, d.block_hash, d.holds_placed, d.orphaned_block::text,
  d.hold_id::text, d.hold_amount, d.shortfall_id::text, d.shortfall_amount`;

// The reorg-hold pass's watermark (locked: one pass per chain at a time) and the reorgs recorded
// after it: their newest id and lowest common ancestor (every fact they orphaned is above it).
const HOLDS_STEP = `
SELECT r.reorg_id::text, r.ancestor::text
FROM ledger.crediting_watermarks w,
LATERAL (SELECT coalesce(max(id), w.holds_reorg_id) AS reorg_id, min(common_ancestor) AS ancestor
           FROM chain.reorg_log WHERE chain_id = $1 AND id > w.holds_reorg_id) r
WHERE w.chain_id = $1
FOR UPDATE OF w`;

// Standing credits of an identity that has an orphaned fact above a block (the lowest common
// ancestor of the reorgs not yet handled: the partial index on orphaned facts, never the chain's
// whole reorg history) and no confirmed fact of the same deposit. No SKIP LOCKED: the pass moves
// its watermark past what it read, so it must not step over a row another transaction holds.
const ORPHANED_CREDITS = `
WITH o AS (
  SELECT chain_id, tx_hash, position, max(block_number) AS orphaned_block FROM chain.facts
  WHERE chain_id = $1 AND status = 'orphaned' AND block_number > $3
  GROUP BY chain_id, tx_hash, position)
SELECT ${CREDIT_COLUMNS}, o.orphaned_block::text AS new_orphaned_block
FROM o
JOIN ledger.transfers t ON t.chain_id = o.chain_id AND t.tx_hash = o.tx_hash AND t.position = o.position
  AND t.kind = 'deposit'
JOIN ledger.deposit_credits d ON d.credit_id = t.id
WHERE d.state = 'credited'
  AND NOT EXISTS (SELECT 1 FROM chain.facts f WHERE ${SAME_DEPOSIT} AND f.status = 'confirmed')
ORDER BY d.created_at
LIMIT $2
FOR UPDATE OF d`;

// Held credits whose deposit is confirmed again (in any block). The confirmed fact is locked as
// crediting locks the facts it credits: a reorg orphaning it waits for the restore to commit, so the
// hold pass that follows that reorg finds the credit standing and holds it again. Unlocked, the hold
// pass could run while the restore was open, skip the credit as still held, and move past the
// reorg: the restore then left a credit standing for a deposit no longer on the chain.
const RECONFIRMED = `
SELECT ${CREDIT_COLUMNS}, c.block_number::text AS new_block, c.block_hash AS new_block_hash
FROM ledger.deposit_credits d
JOIN LATERAL (SELECT f.block_number, f.block_hash FROM chain.facts f
  WHERE ${SAME_DEPOSIT} AND f.status = 'confirmed' ORDER BY f.block_number DESC LIMIT 1
  FOR SHARE OF f) c ON true
WHERE d.state = 'held' AND ($1::bigint IS NULL OR d.chain_id = $1)
ORDER BY d.updated_at
LIMIT $2
FOR UPDATE OF d SKIP LOCKED`;

// Held credits whose orphaned height is final and whose deposit is nowhere canonical (a re-mined
// copy still waiting for confirmations is given its chance).
const FINAL_HOLDS = `
SELECT ${CREDIT_COLUMNS}
FROM ledger.deposit_credits d
WHERE d.state = 'held' AND d.chain_id = $1 AND d.orphaned_block <= $2
  AND NOT EXISTS (SELECT 1 FROM chain.facts f WHERE ${SAME_DEPOSIT} AND f.status <> 'orphaned')
ORDER BY d.orphaned_block
LIMIT $3
FOR UPDATE OF d SKIP LOCKED`;

// Reorged credits (held, or final: hold posted) of a page's transactions that no fact has come back
// as yet: a page's fact may be the return of one (pairReturns). A held credit whose own fact is
// canonical again, or re-mined and waiting for its confirmations, is restoreReconfirmed's (or
// finalizeHolds'). Locked before any account, as the hold passes lock (credit rows, then accounts):
// a concurrent crediting pass waits here and then finds the credit returned. No SKIP LOCKED: a
// skipped credit would be credited a second time. `from_address`: the sender of the fact it
// credited (NULL if that row cannot be read: then it is no match; missing data is no evidence).
const RETURNABLE = `
SELECT ${CREDIT_COLUMNS}, d.state, o.from_address
FROM ledger.deposit_credits d
LEFT JOIN LATERAL (SELECT o.from_address FROM chain.facts o WHERE o.chain_id = d.chain_id
  AND o.tx_hash = d.tx_hash AND o.position = d.position AND o.block_hash = d.block_hash LIMIT 1) o
  ON true
WHERE (d.chain_id, d.tx_hash) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
  AND d.state IN ('held', 'final') AND d.returned_credit_id IS NULL
  AND NOT (d.state = 'held' AND EXISTS (SELECT 1 FROM chain.facts f WHERE ${SAME_DEPOSIT}
    AND f.status <> 'orphaned'))
ORDER BY d.chain_id, d.tx_hash, d.created_at, d.credit_id
FOR UPDATE OF d`;

// The accounts a page of credits' holds touch, resolved to ids without a lock (ids never change),
// then locked by id in id order, the ledger's lock order (runBatch.ts), before the first credit's
// hold: taken credit by credit (oldest first), a token credit older than a native one locked the
// token's accounts before the native ones' lower ids, and a batch locking both in id order
// (crediting new deposits, another worker's pass) deadlocked with it, one of them aborted and run
// again after Postgres' deadlock timeout.
const CREDIT_ACCOUNT_IDS = `
SELECT a.id::text FROM ledger.accounts a
JOIN unnest($1::text[], $2::text[]) AS u(asset_id, name) ON a.asset_id = u.asset_id AND a.name = u.name`;

const LOCK_ACCOUNT_IDS = `
SELECT 1 FROM ledger.accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`;

// Customers (and asset) with an open block a posted shortfall caused (reorgShortfall.ts
// SETTLED_BY_RECEIVABLE: a final credit's, or a withdrawal's undone failure's): what it booked on
// the receivable is owed for good (a final deposit can no longer confirm again; its return settles
// by itself). Only those with something to do: money available on an unfrozen balance to repay
// with, or nothing owed any more (the blocks to lift). A blocked customer who owes and has nothing
// available (the usual case, for weeks) costs each pass two index probes, not a transaction
// locking their rows. Read without locks through the open-blocks index; each is locked and read
// again before paying.
const REPAYABLE = `
SELECT DISTINCT s.chain_id, s.asset, s.owner
  FROM (${SETTLED_BY_RECEIVABLE}) s
  JOIN ledger.accounts r ON r.asset_id = s.chain_id || ':' || lower(s.asset)
   AND r.name = 'receivable:reorg:' || s.owner
  LEFT JOIN ledger.accounts u ON u.asset_id = r.asset_id AND u.name = 'user:' || s.owner
 WHERE ($1::bigint IS NULL OR s.chain_id = $1)
   AND (r.debits_posted <= r.credits_posted
        OR (NOT u.frozen AND u.credits_posted - u.debits_posted - u.debits_pending > 0))`;

const DEPOSIT_CHAINS = `SELECT DISTINCT chain_id::int AS chain_id FROM chain.watched_deposit_addresses`;

const HELD_CHAINS = `SELECT DISTINCT chain_id::int AS chain_id FROM ledger.deposit_credits WHERE state = 'held'`;

// What a chain's pass owes besides new blocks, read in one statement without locks: reorgs the
// reorg-hold pass has not handled (or no watermark row yet), held credits (to void or post), parked
// deposits due. A pass skips the steps this says have nothing to do: each would read the same and
// find nothing, and the reorg-hold step would lock (and so commit, with a WAL flush) the watermark
// row on every block. Something recorded after this read is the next pass's, as it would be if the
// step had run a moment earlier. Index probes only (the reorg log's key, deposit_credits_held,
// parked_deposits_due).
const CHAIN_DUE = `
SELECT (w.chain_id IS NULL OR EXISTS (
          SELECT 1 FROM chain.reorg_log r WHERE r.chain_id = $1 AND r.id > w.holds_reorg_id)) AS reorged,
  EXISTS (SELECT 1 FROM ledger.deposit_credits d WHERE d.chain_id = $1 AND d.state = 'held') AS held,
  EXISTS (SELECT 1 FROM ledger.parked_deposits p WHERE p.chain_id = $1 AND p.next_attempt_at <= now())
    AS parked
FROM (SELECT $1::bigint AS chain_id) c
LEFT JOIN ledger.crediting_watermarks w ON w.chain_id = c.chain_id`;

const INSERT_EVENTS = `
INSERT INTO ledger.events (type, transfer_id, payload)
SELECT $1, * FROM unnest($2::uuid[], $3::jsonb[])`;

// Amounts (NUMERIC) arrive as bigints (foundation/db.ts' PG_TYPES); block numbers and ids are int8,
// which pg gives as strings, so they are read as text and BigInt()ed where arithmetic needs them.
type FactRow = {
  fact_id: string;
  chain_id: number;
  block_hash: string;
  block_number: string;
  tx_hash: string;
  position: string;
  asset: string;
  from_address: string;
  to_address: string;
  amount: bigint;
  owner: string;
  credits: number;
};

type CreditRow = {
  credit_id: string;
  chain_id: number;
  tx_hash: string;
  position: string;
  to_address: string;
  asset: string;
  amount: bigint;
  owner: string;
  block_number: string;
  /** The block of the fact the credit stands (or stood) for: the orphaned one while held. */
  block_hash: string;
  holds_placed: number;
  orphaned_block: string | null;
  hold_id: string | null;
  hold_amount: bigint | null;
  shortfall_id: string | null;
  shortfall_amount: bigint | null;
};

type Event = { transferId: string; payload: Record<string, unknown> };

async function insertEvents(client: Queryable, type: string, events: Event[]) {
  if (events.length === 0) return;
  await client.query(INSERT_EVENTS, [
    type,
    events.map((e) => e.transferId),
    events.map((e) => JSON.stringify(e.payload)),
  ]);
}

function factPayload(f: FactRow, assetId: string) {
  return {
    chain_id: f.chain_id,
    tx_hash: f.tx_hash,
    position: f.position,
    block_hash: f.block_hash,
    block_number: f.block_number,
    to_address: f.to_address,
    asset_id: assetId,
    amount: formatAmount(f.amount),
    owner: f.owner,
  };
}

/** A parked deposit's retries wait parkedRetryMs * 2^attempts, doubling at most this often (≤ 1 h). */
const PARKED_MAX_DOUBLINGS = 12;

function creditPayload(c: CreditRow) {
  return {
    credit_id: c.credit_id,
    chain_id: c.chain_id,
    tx_hash: c.tx_hash,
    position: c.position,
    to_address: c.to_address,
    asset_id: assetIdOf(c.chain_id, c.asset),
    amount: formatAmount(c.amount),
    owner: c.owner,
  };
}

function reorgMetrics(common: Common) {
  const registry = common.metrics.registry;
  const holds = counterOnce(registry, {
    name: "custody_ledger_reorg_holds_total",
    help: "Reorg holds on credited deposits, by chain and action (placed, voided, posted, returned: closed against the deposit's return)",
    labelNames: ["chain_id", "action"],
  });
  const shortfalls = reorgShortfallCounter(registry);
  const repaid = counterOnce(registry, {
    name: "custody_ledger_reorg_receivable_repaid_total",
    help: "Repayments of reorg receivables out of the customer's available balance (crediting's repayReceivables), by chain",
    labelNames: ["chain_id"],
  });
  const parked = gaugeOnce(registry, {
    name: "custody_ledger_parked_deposits",
    help: "Confirmed deposits the ledger refused to credit, parked for retry (custody-node ledger parked-deposits), by chain",
    labelNames: ["chain_id"],
  });
  const catchupCredits = counterOnce(registry, {
    name: "custody_crediting_catchup_credits_total",
    help: "Deposits the catch-up pass credited below the crediting watermark (something upstream skipped them), by chain",
    labelNames: ["chain_id"],
  });
  // ReorgHoldShortfall is increase() > 0: a series first exported at 1 shows no increase, so
  // each chain's starts at 0 (the first shortfall must fire).
  for (const chain of common.config.chains) shortfalls.inc({ chain_id: String(chain.chainId) }, 0);
  return { holds, shortfalls, repaid, parked, catchupCredits };
}

/** Parked (refused) deposits, oldest first (operators: `custody-node ledger parked-deposits`). */
export async function listParkedDeposits(
  pool: Pick<Pool, "query">,
  { chainId, limit = 100 }: { chainId?: number; limit?: number } = {},
): Promise<ParkedDeposit[]> {
  const { rows } = await pool.query<ParkedRow>(PARKED_LIST, [chainId ?? null, limit]);
  return rows.map((r) => ({
    factId: r.fact_id,
    chainId: r.chain_id,
    blockNumber: BigInt(r.block_number),
    txHash: r.tx_hash,
    position: r.position,
    toAddress: r.to_address,
    asset: r.asset,
    amount: r.amount,
    owner: r.owner,
    code: r.code,
    detail: r.detail,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    parkedAt: r.parked_at,
  }));
}

// Due now: the next crediting pass of the chain (every worker's, each few seconds) retries them.
// Attempts stay counted: a deposit still refused waits its full backoff again.
const PARKED_DUE_NOW = `
UPDATE ledger.parked_deposits SET next_attempt_at = now(), updated_at = now()
WHERE chain_id = $1 AND ($2::text IS NULL OR (tx_hash = $2 AND position = $3))
RETURNING tx_hash, position`;

/**
 * An operator who fixed a parked deposit's cause makes it due now instead of waiting for its next
 * retry (up to an hour): one deposit (`fact`), or every parked deposit of the chain. Who and why
 * are required and audited in the same transaction. Returns the deposits made due.
 */
export async function makeParkedDepositsDue(
  pool: Pool,
  args: {
    chainId: number;
    fact?: { txHash: string; position: string };
    by: string;
    reason: string;
  },
): Promise<{ txHash: string; position: string }[]> {
  const by = args.by.trim();
  const reason = args.reason.trim();
  if (by === "") throw new ParkedRetryInputError(args.chainId, "by");
  if (reason === "") throw new ParkedRetryInputError(args.chainId, "reason");
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ tx_hash: string; position: string }>(PARKED_DUE_NOW, [
      args.chainId,
      args.fact?.txHash.toLowerCase() ?? null,
      args.fact?.position ?? null,
    ]);
    if (rows.length > 0)
      await appendAudit(client, {
        actor: by,
        action: "ledger.parked_deposits.due_now",
        entityType: "chain",
        entityId: String(args.chainId),
        details: { reason, deposits: rows.map((r) => `${r.tx_hash}:${r.position}`).sort() },
      });
    return rows.map((r) => ({ txHash: r.tx_hash, position: r.position }));
  });
}

/**
 * Lock the accounts the holds of these credits touch (user, custody:deposits, receivable, and the
 * loss account a return's write-off reversal credits: settleReturn), in id order.
 */
async function lockCreditAccounts(
  client: PoolClient,
  credits: Pick<CreditRow, "chain_id" | "asset" | "owner">[],
) {
  if (credits.length === 0) return;
  const assets: string[] = [];
  const names: string[] = [];
  for (const c of credits)
    for (const name of [
      `user:${c.owner}`,
      "custody:deposits",
      `receivable:reorg:${c.owner}`,
      REORG_LOSS_ACCOUNT,
    ]) {
      assets.push(assetIdOf(c.chain_id, c.asset));
      names.push(name);
    }
  const ids = await client.query<{ id: string }>(CREDIT_ACCOUNT_IDS, [assets, names]);
  await client.query(LOCK_ACCOUNT_IDS, [ids.rows.map((r) => r.id)]);
}

type ReturnableRow = CreditRow & { state: "held" | "final"; from_address: string | null };

const byPosition = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });

/**
 * Which fact of a page is the return of which reorged credit, one to one: the same deposit (chain,
 * tx hash, sender, recipient, asset, amount, owner) at any position of the transaction. A credit
 * back at its own position (after its hold was posted) pairs with that fact first; the rest pair in
 * position order (transfer:1 before transfer:2), so a transaction paying the same customer the same
 * amount twice returns each credit once, the same way on every pass. Returns fact index → credit.
 */
function pairReturns(facts: FactRow[], credits: ReturnableRow[]): Map<number, ReturnableRow> {
  const out = new Map<number, ReturnableRow>();
  if (credits.length === 0) return out;
  const key = (x: {
    chain_id: number;
    tx_hash: string;
    to_address: string;
    asset: string;
    amount: bigint;
    owner: string;
  }) => [x.chain_id, x.tx_hash.toLowerCase(), x.to_address, x.asset, x.amount, x.owner].join("|");
  const waiting = new Map<string, ReturnableRow[]>();
  for (const c of [...credits].sort((a, b) => byPosition(a.position, b.position))) {
    if (c.from_address === null) continue;
    const k = `${key(c)}|${c.from_address}`;
    waiting.set(k, [...(waiting.get(k) ?? []), c]);
  }
  const groups = new Map<string, number[]>();
  facts.forEach((f, i) => {
    const k = `${key(f)}|${f.from_address}`;
    if (waiting.has(k)) groups.set(k, [...(groups.get(k) ?? []), i]);
  });
  for (const [k, indexes] of groups) {
    const left = waiting.get(k)!;
    const rest: number[] = [];
    for (const i of indexes.sort((a, b) => byPosition(facts[a]!.position, facts[b]!.position))) {
      const same = left.findIndex((c) => c.position === facts[i]!.position);
      if (same === -1) rest.push(i);
      else out.set(i, left.splice(same, 1)[0]!);
    }
    for (const i of rest) {
      const c = left.shift();
      if (c === undefined) break;
      out.set(i, c);
    }
  }
  return out;
}

export function createDepositCrediting({
  common,
  pool,
  ledger,
  finalizedHeight = async (chainId) => (await readFinalized(pool, chainId))?.number ?? null,
  parkedRetryMs = 5_000,
  catchupBlocks = () => DEFAULT_CATCHUP_BLOCKS,
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  /** The chain's published finalized height (default: the indexer's, shared contract 1). */
  finalizedHeight?: (chainId: number) => Promise<bigint | null>;
  /** First retry of a parked (refused) deposit after this long; each retry doubles it, up to 1 h. */
  parkedRetryMs?: number;
  /** Blocks per catch-up step of a chain (default DEFAULT_CATCHUP_BLOCKS). */
  catchupBlocks?: (chainId: number) => number;
}): DepositCrediting {
  const log = common.logger.child({ component: "deposit-crediting" });
  const metrics = reorgMetrics(common);
  /** Each chain's parked gauge as this process last set it, and chains that parked a deposit since. */
  const parkedCounted = new Map<number, number>();
  const parkedSince = new Set<number>();
  // Every worker sweeps every chain and exports its own gauge (the alert reads the highest): one
  // that counted parked deposits counts again each pass until it reads 0, because another worker
  // may credit or drop them without this one trying anything.
  const parkedGaugeStale = (chainId: number) => {
    const counted = parkedCounted.get(chainId);
    return counted === undefined || counted > 0 || parkedSince.has(chainId);
  };

  async function countParked(chainId: number) {
    parkedSince.delete(chainId);
    const { rows } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger.parked_deposits WHERE chain_id = $1",
      [chainId],
    );
    const n = rows[0]?.n ?? 0;
    metrics.parked.set({ chain_id: String(chainId) }, n);
    parkedCounted.set(chainId, n);
  }

  /** Apply in the caller's transaction; a refused transfer is logged and reported as false. */
  async function apply(
    client: PoolClient,
    transfers: TransferInput[],
    what: string,
    fields: Record<string, unknown>,
  ): Promise<boolean> {
    if (transfers.length === 0) return true;
    const results = await ledger.createTransfers(transfers, { client });
    const failed = results.filter((r): r is Extract<TransferResult, { status: "failed" }> => {
      return r.status === "failed";
    });
    if (failed.length === 0) return true;
    log.error({
      msg: `${what} refused`,
      codes: failed.map((f) => f.code),
      details: failed.map((f) => f.detail),
      ...fields,
    });
    return false;
  }

  /**
   * Credit these facts in the caller's transaction; the ones the ledger refuses are parked (or their
   * attempt counted) so crediting moves on past them. Returns how many credits were created.
   */
  async function creditFacts(
    client: PoolClient,
    facts: FactRow[],
  ): Promise<{ credited: number; refused: Set<string> }>;
  async function creditFacts(
    client: PoolClient,
    facts: FactRow[],
    mode: "first credits",
  ): Promise<{ credited: number; refused: Set<string> } | null>;
  /**
   * In "first credits" mode (facts read by UNCREDITED_FIRST), every fact's first credit is created
   * or nothing is written and the answer is null.
   */
  async function creditFacts(
    client: PoolClient,
    facts: FactRow[],
    mode?: "first credits",
  ): Promise<{ credited: number; refused: Set<string> } | null> {
    if (facts.length === 0) return { credited: 0, refused: new Set() };
    const transfers: NewTransfer[] = facts.map((f) => ({
      id: transferId(depositTransferName(f.chain_id, f.tx_hash, f.position, f.credits)),
      assetId: assetIdOf(f.chain_id, f.asset),
      debit: "custody:deposits",
      credit: `user:${f.owner}`,
      amount: f.amount,
      kind: "deposit",
      chainRef: { chainId: f.chain_id, txHash: f.tx_hash.toLowerCase(), position: f.position },
    }));
    // A fact that is the return of a reorged credit is credited like any other (reconciliation
    // pairs one transfer with each fact), and that credit is closed against it (settleReturn). Its
    // row, then every account of the page, in id order, are locked first: the credits' batch and the
    // settlements then take no lock out of the ledger's order.
    const returns = pairReturns(
      facts,
      (
        await client.query<ReturnableRow>(RETURNABLE, [
          facts.map((f) => f.chain_id),
          facts.map((f) => f.tx_hash.toLowerCase()),
        ])
      ).rows,
    );
    if (returns.size > 0) await lockCreditAccounts(client, facts);
    // Facts with no standing credit almost never have a ledger transfer yet: the ledger skips
    // reading the ids first, and redoes the batch the ordinary way if one exists after all.
    const results =
      mode === "first credits"
        ? await ledger.createNewTransfers(transfers, { client })
        : await ledger.createTransfers(transfers, { client, expectNew: true });
    if (results === null) return null;
    const booked: FactRow[] = [];
    const bookedIds: string[] = [];
    const created: boolean[] = [];
    const refused: { f: FactRow; code: string; detail: string | null }[] = [];
    results.forEach((r: TransferResult, i) => {
      const f = facts[i] as FactRow;
      if (r.status === "failed") refused.push({ f, code: r.code, detail: r.detail ?? null });
      else {
        booked.push(f);
        bookedIds.push(r.id);
        created.push(r.status === "created");
      }
    });
    // The credits and, for the transfers created now, their deposit.credited events (payload
    // built in SQL: one round trip, no JSON to serialise per fact).
    if (booked.length > 0)
      await client.query(INSERT_CREDITS, [
        bookedIds,
        booked.map((f) => f.chain_id),
        booked.map((f) => f.tx_hash.toLowerCase()),
        booked.map((f) => f.position),
        booked.map((f) => f.to_address),
        booked.map((f) => f.asset),
        booked.map((f) => f.amount),
        booked.map((f) => f.owner),
        booked.map((f) => f.block_number),
        booked.map((f) => f.block_hash),
        created,
        booked.map((f) => f.tx_hash),
        booked.map((f) => assetIdOf(f.chain_id, f.asset)),
      ]);
    for (const [i, c] of returns) {
      const r = results[i]!;
      if (r.status === "created") await settleReturn(client, c, facts[i]!, r.id);
    }
    if (refused.length > 0) {
      // Parked, not dropped: the fact stays uncredited (reconciliation shows a missing credit),
      // is listed for operators with the ledger's reason, and is tried again with backoff.
      await client.query(PARK, [
        refused.map((x) => x.f.fact_id),
        refused.map((x) => x.f.chain_id),
        refused.map((x) => x.f.block_number),
        refused.map((x) => x.f.tx_hash.toLowerCase()),
        refused.map((x) => x.f.position),
        refused.map((x) => x.f.to_address),
        refused.map((x) => x.f.asset),
        refused.map((x) => x.f.amount),
        refused.map((x) => x.f.owner),
        refused.map((x) => x.code),
        refused.map((x) => x.detail),
        PARKED_MAX_DOUBLINGS,
        parkedRetryMs,
      ]);
      for (const x of refused) parkedSince.add(x.f.chain_id);
      // Told once committed (as every log line and metric of a change here): a retried attempt
      // (serialization failure, deadlock) or a later step failing would tell it again, or of
      // nothing.
      afterCommit(client, () => {
        for (const { f, code, detail } of refused.slice(0, 20))
          log.error({
            msg: "deposit credit refused: parked",
            code,
            detail,
            fact_id: f.fact_id,
            ...factPayload(f, assetIdOf(f.chain_id, f.asset)),
          });
        if (refused.length > 20)
          log.error({ msg: "deposit credits refused: parked", more: refused.length - 20 });
      });
    }
    let credited = 0;
    const logged = log.isLevelEnabled("info");
    booked.forEach((f, i) => {
      if (!created[i]) return;
      credited++;
      // A retried attempt would otherwise log one credit twice: read as a double credit.
      if (logged)
        afterCommit(client, () =>
          log.info({
            msg: "deposit credited",
            transfer_id: bookedIds[i],
            ...factPayload(f, assetIdOf(f.chain_id, f.asset)),
          }),
        );
    });
    return { credited, refused: new Set(refused.map((x) => x.f.fact_id)) };
  }

  /** Credit the confirmed facts of a block range (a doorbell's), or of every block. */
  async function creditConfirmed({
    chainId,
    fromBlock,
    toBlock,
    limit = 1_000,
  }: CreditScope & { limit?: number } = {}) {
    return withTransaction(pool, async (client) => {
      const facts = await client.query<FactRow>(UNCREDITED, [
        chainId ?? null,
        limit,
        fromBlock ?? null,
        toBlock ?? null,
      ]);
      return (await creditFacts(client, facts.rows)).credited;
    });
  }

  /**
   * One step of the chain's watermark: credit the confirmed facts above it (at most `limit`, over at
   * most `maxBlocks` blocks) and move it past them. Reads only new blocks, never the history.
   */
  async function creditNew({
    chainId,
    limit = 1_000,
    maxBlocks = 10_000,
  }: {
    chainId: number;
    limit?: number;
    maxBlocks?: number;
  }): Promise<{ credited: number; done: boolean }> {
    return withTransaction(pool, async (client) => {
      const step = await lockWatermark<{
        watermark: string;
        reorg_id: string;
        ancestor: string | null;
        confirmed: string | null;
        seen: string | null;
      }>(client, WATERMARK_STEP, chainId);
      let from = BigInt(step.watermark);
      if (step.ancestor !== null && BigInt(step.ancestor) < from) {
        log.info({
          msg: "crediting watermark rewound to a reorg's common ancestor",
          chain_id: chainId,
          from: step.watermark,
          to: step.ancestor,
        });
        from = BigInt(step.ancestor);
      }
      let reachable = step.confirmed === null ? from : BigInt(step.confirmed);
      if (step.seen !== null && BigInt(step.seen) - 1n < reachable)
        reachable = BigInt(step.seen) - 1n;
      const to = reachable > from + BigInt(maxBlocks) ? from + BigInt(maxBlocks) : reachable;
      let credited = 0;
      let reached = from;
      if (to > from) {
        // One row past the page says whether the range is exhausted: a block of exactly `limit`
        // deposits is done in one step, not re-read by a second one.
        const range = [chainId, limit + 1, (from + 1n).toString(), to.toString()];
        const page = (rows: FactRow[]) => (rows.length > limit ? rows.slice(0, limit) : rows);
        // New blocks' facts as first credits (UNCREDITED_FIRST says why that is safe); if any has
        // a credit or is refused, nothing was written and the facts are read the checked way.
        let rows = (await client.query<FactRow>(UNCREDITED_FIRST, range)).rows;
        const first = await creditFacts(client, page(rows), "first credits");
        if (first !== null) credited = first.credited;
        else {
          rows = (await client.query<FactRow>(UNCREDITED, range)).rows;
          credited = (await creditFacts(client, page(rows))).credited;
        }
        // A full page stops below the block of the first fact it left out (what was credited in
        // that block is skipped next time by the standing-credit check).
        reached = rows.length > limit ? BigInt(rows[limit]!.block_number) - 1n : to;
        if (reached < from) reached = from;
      }
      await client.query(
        `UPDATE ledger.crediting_watermarks SET block_number = $2, reorg_id = $3, updated_at = now()
          WHERE chain_id = $1`,
        [chainId, reached.toString(), step.reorg_id],
      );
      return { credited, done: reached >= reachable };
    });
  }

  /**
   * Try the parked deposits that are due again: credit what the ledger now accepts, count another
   * attempt for what it still refuses, and drop the ones whose fact no longer needs a credit.
   */
  async function retryParked({ chainId, limit = 500 }: { chainId: number; limit?: number }) {
    const out = await withTransaction(pool, async (client) => {
      const rows = (
        await client.query<FactRow & { attempts: number; owed: boolean }>(PARKED_DUE, [
          chainId,
          limit,
        ])
      ).rows;
      const gone = rows.filter((r) => !r.owed).map((r) => r.fact_id);
      const owed = rows.filter((r) => r.owed);
      // Unpark first: creditFacts parks again (attempts + 1) what is still refused.
      if (rows.length > 0)
        await client.query(
          "DELETE FROM ledger.parked_deposits WHERE fact_id = ANY($1::bigint[]) AND fact_id <> ALL($2::bigint[])",
          [rows.map((r) => r.fact_id), owed.map((r) => r.fact_id)],
        );
      if (gone.length > 0)
        log.info({
          msg: "parked deposits need no credit any more",
          chain_id: chainId,
          fact_ids: gone,
        });
      const { credited, refused } = await creditFacts(client, owed);
      const booked = owed.filter((r) => !refused.has(r.fact_id)).map((r) => r.fact_id);
      if (booked.length > 0)
        await client.query("DELETE FROM ledger.parked_deposits WHERE fact_id = ANY($1::bigint[])", [
          booked,
        ]);
      return { credited, tried: rows.length };
    });
    // The gauge changes only when something was parked or tried, or while it is above 0.
    if (out.tried > 0 || parkedGaugeStale(chainId)) await countParked(chainId);
    return out;
  }

  /**
   * Place reorg holds on the credits whose fact the reorgs recorded since the pass's watermark
   * orphaned. Reads only orphaned facts above those reorgs' lowest common ancestor; the watermark
   * moves past them once every credit found there is held (or needs no hold): a refused hold, or
   * a full page, is read again next pass.
   */
  async function holdOrphaned({ chainId, limit = 200 }: { chainId?: number; limit?: number } = {}) {
    const chains =
      chainId !== undefined
        ? [chainId]
        : (await pool.query<{ chain_id: number }>(DEPOSIT_CHAINS)).rows.map((r) => r.chain_id);
    let held = 0;
    for (const id of chains) held += await holdOrphanedChain(id, limit);
    return held;
  }

  async function holdOrphanedChain(chainId: number, limit: number) {
    return withTransaction(pool, async (client) => {
      const step = await lockWatermark<{ reorg_id: string; ancestor: string | null }>(
        client,
        HOLDS_STEP,
        chainId,
      );
      if (step.ancestor === null) return 0; // no reorg since: nothing new is orphaned
      const rows = await client.query<CreditRow & { new_orphaned_block: string }>(
        ORPHANED_CREDITS,
        [chainId, limit, step.ancestor],
      );
      await lockCreditAccounts(client, rows.rows);
      let held = 0;
      for (const c of rows.rows) if (await placeHold(client, c, c.new_orphaned_block)) held++;
      if (rows.rows.length < limit && held === rows.rows.length)
        await client.query(
          `UPDATE ledger.crediting_watermarks SET holds_reorg_id = $2, updated_at = now()
            WHERE chain_id = $1`,
          [chainId, step.reorg_id],
        );
      else if (held < rows.rows.length)
        log.warn({
          msg: "reorg holds refused: the reorg-hold pass reads these reorgs again",
          chain_id: chainId,
          refused: rows.rows.length - held,
          ancestor: step.ancestor,
        });
      return held;
    });
  }

  /**
   * Run a query that locks the chain's watermark row (`$1` = chain id) and return its row; a chain
   * without one gets it first, in the same transaction (no round trip of its own on every pass).
   */
  async function lockWatermark<T extends QueryResultRow>(
    client: PoolClient,
    sql: string,
    chainId: number,
  ): Promise<T> {
    const first = (await client.query<T>(sql, [chainId])).rows[0];
    if (first !== undefined) return first;
    await client.query(
      "INSERT INTO ledger.crediting_watermarks (chain_id) VALUES ($1) ON CONFLICT DO NOTHING",
      [chainId],
    );
    const row = (await client.query<T>(sql, [chainId])).rows[0];
    if (row === undefined) throw new Error(`no crediting watermark for chain ${chainId}`);
    return row;
  }

  /**
   * One step of the chain's catch-up pass: a rotation cursor walking the blocks below the crediting
   * watermark, at most `maxBlocks` (and `limit` facts) per step, crediting any confirmed deposit
   * fact with no standing credit that is not parked (same check and ids as creditNew, so never a
   * second credit). Such a fact means something upstream skipped it (a late writer into an old
   * block): warned and counted. Past the watermark, the cursor starts again at the bottom. The
   * window is also cut before the block holding its `maxFacts`-th fact (but never below one block),
   * so a step reads a bounded index range however dense the blocks are.
   */
  async function catchUp({
    chainId,
    maxBlocks = DEFAULT_CATCHUP_BLOCKS,
    maxFacts = DEFAULT_CATCHUP_FACTS,
    limit = 1_000,
  }: {
    chainId: number;
    maxBlocks?: number;
    maxFacts?: number;
    limit?: number;
  }): Promise<{ credited: number; from: bigint; to: bigint }> {
    for (const [name, value] of [
      ["maxBlocks", maxBlocks],
      ["maxFacts", maxFacts],
      ["limit", limit],
    ] as const)
      if (!Number.isSafeInteger(value) || value < 1)
        throw new Error(`catch-up ${name} must be a positive integer, got ${value}`);
    const out = await withTransaction(pool, async (client) => {
      const w = await lockWatermark<{ watermark: string; cursor: string }>(
        client,
        `SELECT block_number::text AS watermark, catchup_block::text AS cursor
           FROM ledger.crediting_watermarks WHERE chain_id = $1 FOR UPDATE`,
        chainId,
      );
      const watermark = BigInt(w.watermark);
      let from = BigInt(w.cursor);
      if (from >= watermark) from = -1n; // a full turn (or the watermark went back): start again
      let to = from + BigInt(maxBlocks) < watermark ? from + BigInt(maxBlocks) : watermark;
      if (to <= from) return { credited: 0, facts: [] as FactRow[], from, to };
      const dense = (
        await client.query<{ cut: string }>(CATCHUP_CUT, [
          chainId,
          from.toString(),
          to.toString(),
          maxFacts,
        ])
      ).rows[0];
      if (dense !== undefined) {
        const cut = BigInt(dense.cut);
        to = cut - 1n > from ? cut - 1n : cut;
      }
      const facts = (
        await client.query<FactRow>(UNCREDITED, [
          chainId,
          limit,
          (from + 1n).toString(),
          to.toString(),
        ])
      ).rows;
      const { credited } = await creditFacts(client, facts);
      // A full page may end inside a block: stop before it (as creditNew).
      let reached = facts.length < limit ? to : BigInt(facts[facts.length - 1]!.block_number) - 1n;
      if (reached < from) reached = from;
      await client.query(
        `UPDATE ledger.crediting_watermarks SET catchup_block = $2, updated_at = now()
          WHERE chain_id = $1`,
        [chainId, reached.toString()],
      );
      return { credited, facts, from: from + 1n, to: reached };
    });
    if (out.credited > 0) {
      metrics.catchupCredits.inc({ chain_id: String(chainId) }, out.credited);
      log.warn({
        msg: "catch-up pass credited deposits below the crediting watermark: something upstream skipped them",
        chain_id: chainId,
        credited: out.credited,
        from_block: out.from.toString(),
        to_block: out.to.toString(),
        facts: out.facts.slice(0, 20).map((f) => ({
          fact_id: f.fact_id,
          block_number: f.block_number,
          tx_hash: f.tx_hash,
          position: f.position,
        })),
      });
    }
    return { credited: out.credited, from: out.from, to: out.to };
  }

  /** One hold, in a savepoint so a refused hold leaves the others of the batch standing. */
  async function placeHold(client: PoolClient, c: CreditRow, orphanedBlock: string) {
    const assetId = assetIdOf(c.chain_id, c.asset);
    const user = `user:${c.owner}`;
    // The user's row lock (taken with custody:deposits in id order, the ledger's lock order): a
    // withdrawal hold placed concurrently is either seen here or sees ours.
    const { covered: holdAmount, shortfall } = await coverReorgHold(client, {
      assetId,
      owner: c.owner,
      counterparty: "custody:deposits",
      amount: c.amount,
    });
    const chainRef = { chainId: c.chain_id, txHash: c.tx_hash, position: c.position };
    // A failed id stays failed (docs/errors.md: use a new id): a hold refused before reorg holds
    // were exempt from freezing would be refused under its name on every pass. Take the next name.
    const names = (n: number) => [
      transferId(reorgHoldName(c.credit_id, "hold", n)),
      transferId(reorgHoldName(c.credit_id, "shortfall", n)),
    ];
    let n = c.holds_placed;
    while (
      (
        await client.query("SELECT 1 FROM ledger.failed_transfers WHERE id = ANY($1::uuid[])", [
          names(n),
        ])
      ).rows.length > 0
    )
      n++;
    const [holdId, shortfallId] = names(n) as [string, string];
    const transfers: NewTransfer[] = [];
    if (holdAmount > 0n)
      transfers.push({
        id: holdId,
        type: "pending",
        assetId,
        debit: user,
        credit: "custody:deposits",
        amount: holdAmount,
        kind: "reorg_hold",
        reverses: c.credit_id,
        chainRef,
        memo: "deposit orphaned by a reorg: held until it confirms again or its block is final",
      });
    if (shortfall > 0n)
      transfers.push({
        id: shortfallId,
        type: "pending",
        assetId,
        debit: `receivable:reorg:${c.owner}`,
        credit: "custody:deposits",
        amount: shortfall,
        kind: "reorg_hold",
        reverses: c.credit_id,
        chainRef,
        memo: "deposit orphaned by a reorg after the customer spent it",
      });
    if (transfers.length === 2) transfers[0] = { ...transfers[0]!, linked: true };
    // block_hash names the orphaned fact the hold is for (the deposit's id to webhook receivers).
    const fields = { ...creditPayload(c), block_hash: c.block_hash, orphaned_block: orphanedBlock };
    if (!(await apply(client, transfers, "reorg hold", fields))) return false;
    await client.query(
      `UPDATE ledger.deposit_credits SET state = 'held', orphaned_block = $2, hold_id = $3,
         hold_amount = $4, shortfall_id = $5, shortfall_amount = $6, holds_placed = $7,
         updated_at = now()
       WHERE credit_id = $1`,
      [
        c.credit_id,
        orphanedBlock,
        holdAmount > 0n ? holdId : null,
        holdAmount.toString(),
        shortfall > 0n ? shortfallId : null,
        shortfall.toString(),
        n + 1,
      ],
    );
    const payload = {
      ...fields,
      hold_id: holdAmount > 0n ? holdId : null,
      hold_amount: holdAmount.toString(),
      shortfall_id: shortfall > 0n ? shortfallId : null,
      shortfall_amount: shortfall.toString(),
    };
    await insertEvents(client, "deposit.reorg_held", [{ transferId: c.credit_id, payload }]);
    afterCommit(client, () => {
      metrics.holds.inc({ chain_id: String(c.chain_id), action: "placed" });
      log.warn({ msg: "credited deposit orphaned by a reorg: reorg hold placed", ...payload });
    });
    // The alert: the customer already spent money a reorg removed. Only once it is booked.
    if (shortfall > 0n)
      await recordReorgShortfall(client, {
        owner: c.owner,
        chainId: c.chain_id,
        creditId: c.credit_id,
        details: payload,
        msg: "reorg hold exceeds the customer's available balance: shortfall booked to receivable, withdrawals blocked",
        counter: metrics.shortfalls,
        log,
      });
    return true;
  }

  /** Void (or post) a credit's hold and shortfall; the ids derive from the held transfers. */
  function resolveHolds(c: CreditRow, type: "void" | "post"): ResolveTransfer[] {
    const out: ResolveTransfer[] = [];
    for (const pendingId of [c.hold_id, c.shortfall_id])
      if (pendingId !== null)
        out.push({ type, id: transferId(`reorg-${type}:${pendingId}`), pendingId });
    if (out.length === 2) out[0] = { ...out[0]!, linked: true };
    return out;
  }

  /**
   * Close a reorged credit against the credit of its return (fact `f`, credited as `creditId` in
   * this transaction): post its hold if still pending (the deposit is the new credit's now), pay the
   * shortfall it booked on `receivable:reorg:<owner>` out of the returned amount (no more than is
   * still owed on that receivable: part of it may have been paid down meanwhile; the part written
   * off is owed again first, its write-off reversed: the deposit is back, so nothing was lost), lift
   * the withdrawal block, mark it `final` and returned. One linked chain with deterministic ids
   * (`reorg-post:<holdId>`, `reorg-writeoff:<creditId>`, `reorg-settle:<creditId>`), so a retry
   * books nothing twice. Refused, the credit is left as it was (its hold follows the usual passes)
   * and the refusal logged.
   */
  async function settleReturn(client: PoolClient, c: ReturnableRow, f: FactRow, creditId: string) {
    const booked = c.shortfall_amount ?? 0n;
    // Paid out of the return up to what is still owed on the receivable, never more: part of it
    // may have been paid down meanwhile (an operator's transfer crediting it), and paying the
    // shortfall in full then would take the customer's money twice and leave the receivable
    // negative. Its row is locked (lockCreditAccounts, before the page's credits), so the balance
    // read here is the one the settlement applies to. A held credit's own shortfall is still
    // pending: posted in this chain first, it is owed too.
    let shortfall = 0n;
    let reversal: NewTransfer | null = null;
    if (booked > 0n) {
      const r = await client.query<{ owed: bigint }>(
        `SELECT debits_posted - credits_posted AS owed FROM ledger.accounts
          WHERE asset_id = $1 AND name = $2`,
        [assetIdOf(c.chain_id, c.asset), `receivable:reorg:${c.owner}`],
      );
      const owed = (r.rows[0]?.owed ?? 0n) + (c.state === "held" ? booked : 0n);
      reversal = await writeOffReversal(client, {
        assetId: assetIdOf(c.chain_id, c.asset),
        owner: c.owner,
        booked,
        owed,
        id: transferId(reorgHoldName(c.credit_id, "writeoff")),
        memo: "reorged deposit came back: the write-off of the shortfall it left reversed",
      });
      const due = owed + (reversal?.amount ?? 0n);
      shortfall = due <= 0n ? 0n : due < booked ? due : booked;
    }
    const transfers: TransferInput[] = c.state === "held" ? resolveHolds(c, "post") : [];
    if (reversal) transfers.push(reversal);
    if (shortfall > 0n)
      transfers.push({
        id: transferId(reorgHoldName(c.credit_id, "settle")),
        assetId: assetIdOf(c.chain_id, c.asset),
        debit: `user:${c.owner}`,
        credit: `receivable:reorg:${c.owner}`,
        amount: shortfall,
        kind: "reorg_hold",
        reverses: c.credit_id,
        chainRef: { chainId: c.chain_id, txHash: c.tx_hash, position: c.position },
        memo: "reorged deposit came back: the shortfall it left is paid out of its return",
      });
    const fields = {
      ...creditPayload(c),
      held_block_hash: c.block_hash,
      block_number: f.block_number,
      block_hash: f.block_hash,
      restored_position: f.position,
      restored_credit_id: creditId,
      was: c.state,
      shortfall_settled: formatAmount(shortfall),
    };
    const linked = transfers.map((t, i) => (i < transfers.length - 1 ? { ...t, linked: true } : t));
    if (!(await apply(client, linked, "reorg return", fields))) return;
    if (reversal)
      await recordWriteOffReversal(client, {
        owner: c.owner,
        reversal,
        actor: "deposit-crediting",
        details: { credit_id: c.credit_id, restored_credit_id: creditId, tx_hash: c.tx_hash },
        log,
      });
    await client.query(
      `UPDATE ledger.deposit_credits SET state = 'final', returned_credit_id = $2, updated_at = now()
        WHERE credit_id = $1`,
      [c.credit_id, creditId],
    );
    await clearCreditBlock(client, c.credit_id, "the deposit came back: shortfall settled");
    // A held credit's hold ends here: told as restored (the deposit is back, carried by the new
    // credit). A posted one was told reversed; the new credit's deposit.credited tells the rest.
    if (c.state === "held")
      await insertEvents(client, "deposit.reorg_restored", [
        { transferId: c.credit_id, payload: fields },
      ]);
    afterCommit(client, () => {
      metrics.holds.inc({ chain_id: String(c.chain_id), action: "returned" });
      log.warn({
        msg: "reorged deposit came back as another credit: old credit closed, shortfall settled",
        ...fields,
        // Less than it booked: the rest was paid down before it came back.
        ...(shortfall < booked ? { shortfall_booked: formatAmount(booked) } : {}),
      });
    });
  }

  async function restoreReconfirmed({
    chainId,
    limit = 200,
  }: {
    chainId?: number;
    limit?: number;
  } = {}) {
    return withTransaction(pool, async (client) => {
      const rows = await client.query<CreditRow & { new_block: string; new_block_hash: string }>(
        RECONFIRMED,
        [chainId ?? null, limit],
      );
      await lockCreditAccounts(client, rows.rows);
      let restored = 0;
      for (const c of rows.rows) {
        // Where the deposit is credited now, and the orphaned fact the hold was for.
        const fields = {
          ...creditPayload(c),
          block_number: c.new_block,
          block_hash: c.new_block_hash,
          held_block_hash: c.block_hash,
        };
        if (!(await apply(client, resolveHolds(c, "void"), "reorg hold void", fields))) continue;
        await client.query(
          `UPDATE ledger.deposit_credits SET state = 'credited', orphaned_block = NULL,
             block_number = $2, block_hash = $3, updated_at = now()
           WHERE credit_id = $1`,
          [c.credit_id, c.new_block, c.new_block_hash],
        );
        await clearCreditBlock(client, c.credit_id, "the deposit confirmed again");
        await insertEvents(client, "deposit.reorg_restored", [
          { transferId: c.credit_id, payload: fields },
        ]);
        afterCommit(client, () => {
          metrics.holds.inc({ chain_id: String(c.chain_id), action: "voided" });
          log.info({ msg: "reorged deposit confirmed again: reorg hold voided", ...fields });
        });
        restored++;
      }
      return restored;
    });
  }

  async function finalizeHolds({
    chainId,
    limit = 200,
  }: {
    chainId?: number;
    limit?: number;
  } = {}) {
    const chains =
      chainId !== undefined
        ? [chainId]
        : (await pool.query<{ chain_id: number }>(HELD_CHAINS)).rows.map((r) => r.chain_id);
    let finalized = 0;
    for (const id of chains) {
      // Missing data is never evidence: no published finalized height, no posting.
      const final = await finalizedHeight(id);
      if (final === null) continue;
      finalized += await withTransaction(pool, async (client) => {
        // The chain's watermark row first, as crediting takes it: a pass crediting new blocks
        // either ran before (and a copy it saw re-mined is seen here too, so the hold stands) or
        // runs after (and finds the credit final, so it credits the copy). Without it, a copy
        // committed after this read was skipped by that pass as still held, and its watermark
        // moved past it: credited only when the catch-up rotation came round.
        await client.query(
          "SELECT 1 FROM ledger.crediting_watermarks WHERE chain_id = $1 FOR UPDATE",
          [id],
        );
        const rows = await client.query<CreditRow>(FINAL_HOLDS, [id, final.toString(), limit]);
        await lockCreditAccounts(client, rows.rows);
        let n = 0;
        for (const c of rows.rows) {
          const fields = {
            ...creditPayload(c),
            block_hash: c.block_hash,
            orphaned_block: c.orphaned_block,
            finalized: final.toString(),
          };
          if (!(await apply(client, resolveHolds(c, "post"), "reorg hold post", fields))) continue;
          await client.query(
            "UPDATE ledger.deposit_credits SET state = 'final', updated_at = now() WHERE credit_id = $1",
            [c.credit_id],
          );
          const payload = {
            ...fields,
            hold_amount: c.hold_amount === null ? null : formatAmount(c.hold_amount),
            shortfall_amount: c.shortfall_amount === null ? null : formatAmount(c.shortfall_amount),
          };
          await insertEvents(client, "deposit.reorg_final", [{ transferId: c.credit_id, payload }]);
          afterCommit(client, () => {
            metrics.holds.inc({ chain_id: String(c.chain_id), action: "posted" });
            if (c.shortfall_amount !== null && c.shortfall_amount > 0n)
              log.error({
                msg: "reorged deposit is final without it: reorg hold posted, the customer owes the shortfall",
                alert: "reorg_shortfall",
                ...payload,
              });
            else
              log.warn({
                msg: "reorged deposit is final without it: reorg hold posted",
                ...payload,
              });
          });
          n++;
        }
        return n;
      });
    }
    return finalized;
  }

  /**
   * Money that comes back to a blocked customer (a withdrawal's hold released: pulled back,
   * rejected, cancelled, failed; a new deposit credited) pays what their posted reorg holds left on
   * `receivable:reorg:<owner>` (DESIGN "Money flows"): one transfer `user:<owner>` →
   * `receivable:reorg:<owner>` of what is available, up to what is owed (deterministic id:
   * reorgRepayName), audited. The receivable may have been booked by a deposit's reorg or by a
   * withdrawal's undone failure (reorgShortfall.ts): once nothing is owed on the asset, the blocks
   * it settles are lifted, those of final credits and of withdrawals (a held credit's block stays:
   * its deposit may still confirm again, so nothing is taken for it while its hold is pending). Without this the money sat on the blocked balance and the
   * receivable stood: an operator clearing the block let the customer withdraw what they owed.
   */
  async function repayReceivables({ chainId }: { chainId?: number } = {}) {
    const { rows } = await pool.query<{ chain_id: number; asset: string; owner: string }>(
      REPAYABLE,
      [chainId ?? null],
    );
    let repaid = 0;
    for (const r of rows) {
      const assetId = assetIdOf(r.chain_id, r.asset);
      const user = `user:${r.owner}`;
      const receivable = `receivable:reorg:${r.owner}`;
      const paid = await withTransaction(pool, async (client) => {
        // Both rows locked in id order (the ledger's lock order) before reading: a withdrawal hold
        // or a reorg hold placed concurrently is either seen here or sees this repayment.
        const ids = await client.query<{ id: string }>(CREDIT_ACCOUNT_IDS, [
          [assetId, assetId],
          [user, receivable],
        ]);
        await client.query(LOCK_ACCOUNT_IDS, [ids.rows.map((x) => x.id)]);
        const acct = await client.query<{
          name: string;
          available: bigint;
          owed: bigint;
          paid: bigint;
          frozen: boolean;
        }>(
          `SELECT name, credits_posted - debits_posted - debits_pending AS available,
                  debits_posted - credits_posted AS owed, credits_posted AS paid, frozen
             FROM ledger.accounts WHERE asset_id = $1 AND name = ANY($2::text[])`,
          [assetId, [user, receivable]],
        );
        const u = acct.rows.find((x) => x.name === user);
        const rec = acct.rows.find((x) => x.name === receivable);
        // A frozen account takes no new debits (an operator's decision). Kind reorg_hold is exempt
        // so that a deposit the chain no longer has is held whatever the state; collecting the
        // receivable is not that, so a frozen balance waits for the unfreeze.
        if (u === undefined || rec === undefined || u.frozen) return false;
        const owed = rec.owed;
        // What is available, up to what is owed (nothing if either is none).
        let amount = owed;
        if (u.available < amount) amount = u.available;
        if (amount < 0n) amount = 0n;
        const id = transferId(reorgRepayName(assetId, r.owner, rec.paid));
        const fields = {
          customer_id: r.owner,
          asset_id: assetId,
          receivable,
          owed: formatAmount(owed),
          amount: formatAmount(amount),
        };
        if (amount > 0n) {
          const ok = await apply(
            client,
            [
              {
                id,
                assetId,
                debit: user,
                credit: receivable,
                amount,
                kind: "reorg_hold",
                memo: "reorg receivable repaid from the customer's available balance",
              },
            ],
            "reorg receivable repayment",
            fields,
          );
          if (!ok) return false;
        }
        const stillOwed = owed - amount;
        const cleared =
          stillOwed <= 0n
            ? await clearSettledShortfallBlocks(client, {
                chainId: r.chain_id,
                asset: r.asset,
                owner: r.owner,
                by: "deposit-crediting",
                reason: "the reorg receivable was repaid from the customer's balance",
              })
            : [];
        if (amount === 0n && cleared.length === 0) return false;
        const details = {
          ...fields,
          transfer_id: amount > 0n ? id : null,
          still_owed: formatAmount(stillOwed > 0n ? stillOwed : 0n),
          blocks_cleared: cleared,
        };
        if (amount > 0n)
          afterCommit(client, () => metrics.repaid.inc({ chain_id: String(r.chain_id) }));
        await appendAudit(client, {
          actor: "deposit-crediting",
          action: "ledger.reorg_receivable.repaid",
          entityType: "customer",
          entityId: r.owner,
          details,
        });
        log.warn({
          msg:
            cleared.length > 0
              ? "reorg receivable repaid from the customer's balance: withdrawals unblocked"
              : "reorg receivable partly repaid from the customer's balance: withdrawals stay blocked",
          ...details,
        });
        return amount > 0n;
      });
      if (paid) repaid++;
    }
    return repaid;
  }

  return {
    creditConfirmed,
    creditNew,
    catchUp,
    retryParked,
    parked: (options = {}) => listParkedDeposits(pool, options),
    holdOrphaned,
    restoreReconfirmed,
    finalizeHolds,
    repayReceivables,
    async sweep(range: CreditScope = {}) {
      const scope = range.chainId === undefined ? {} : { chainId: range.chainId };
      const out: SweepResult = { credited: 0, held: 0, restored: 0, finalized: 0 };
      const drain = async (fn: () => Promise<number>) => {
        let total = 0;
        for (let n = await fn(); n > 0; n = await fn()) total += n;
        return total;
      };
      const chains =
        range.chainId !== undefined
          ? [range.chainId]
          : (await pool.query<{ chain_id: number }>(DEPOSIT_CHAINS)).rows.map((r) => r.chain_id);
      // A chain's pass (the doorbell's and the worker's periodic one) runs only the steps that have
      // something to do; a pass over every chain runs them all.
      const due =
        range.chainId === undefined
          ? { reorged: true, held: true, parked: true }
          : (
              await pool.query<{ reorged: boolean; held: boolean; parked: boolean }>(CHAIN_DUE, [
                range.chainId,
              ])
            ).rows[0]!;
      // Holds first: a credit whose fact is gone stops being available before anything else runs.
      if (due.reorged) out.held = await drain(() => holdOrphaned(scope));
      // A hold placed just now may already be owed its void (the deposit confirmed again).
      const held = due.held || out.held > 0;
      if (held) out.restored = await drain(() => restoreReconfirmed(scope));
      const ranged = range.fromBlock !== undefined || range.toBlock !== undefined;
      if (ranged && range.chainId === undefined)
        out.credited += await drain(() => creditConfirmed({ ...range }));
      for (const chainId of chains) {
        // Caught up (the usual case), one watermark step credits the doorbell's blocks too. Far
        // behind (catching up after an outage), the doorbell's newest blocks go first.
        let step = await creditNew({ chainId });
        out.credited += step.credited;
        if (!step.done && ranged && range.chainId === chainId)
          out.credited += await drain(() => creditConfirmed({ ...range }));
        while (!step.done) {
          step = await creditNew({ chainId });
          out.credited += step.credited;
        }
        // Parked deposits due; else the parked gauge to set (first pass, something parked since,
        // or parked deposits counted that another worker may have credited).
        if (due.parked) out.credited += (await retryParked({ chainId })).credited;
        else if (parkedGaugeStale(chainId)) await countParked(chainId);
        // The periodic sweep (not a doorbell's) also re-reads one bounded window below the watermark.
        if (!ranged)
          out.credited += (await catchUp({ chainId, maxBlocks: catchupBlocks(chainId) })).credited;
      }
      if (held) out.finalized = await drain(() => finalizeHolds(scope));
      // After crediting and posting: a deposit credited or a hold posted in this pass counts.
      await repayReceivables(scope);
      return out;
    },
  };
}
