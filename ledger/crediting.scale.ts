/**
 * Scale measurement of deposit crediting (issue 15), for the scale bench (ops/bench/scale.ts) on
 * its seeded database: the time the `chain-facts` doorbell handler takes to credit a new block of
 * `deposits` confirmed deposits (crediting.sweep with the block's range: holds, the range, the
 * watermark, parked retries, final holds), as the worker runs it. Each run writes one new block of
 * native deposits to the chain's existing deposit addresses above everything stored, then measures
 * its floor (the same rows written again by one plain statement, WRITE_FLOOR); the bench's
 * resetToSeed removes both (facts, ledger transfers, deposit_credits) afterwards.
 *
 * The sweepable-balance trigger (custody.sweepable_balances) only does work for addresses in
 * chain.deposit_addresses; when the seed has none, the run registers the chain's deposit
 * addresses there first (marked by a factory of its own) and removes them at the end, so the
 * figure includes that work as production would.
 */
import { createHash } from "node:crypto";
import type { Common } from "../foundation/common.js";
import { type Pool, withTransaction } from "../foundation/db.js";
import { createLedger } from "./createLedger.js";
import { createDepositCrediting } from "./depositCrediting.js";
import { assetIdOf, transferId } from "./transferId.js";

const ZERO = "0x0000000000000000000000000000000000000000";
/** Factory of the forwarders this measurement registers (removed at the end). */
export const SCALE_FACTORY = `0x${"5c".repeat(20)}`;

export type CreditBlockMeasurement = {
  /** Median over the runs (ms). */
  ms: number;
  runsMs: number[];
  /**
   * Of each run, the time spent waiting for Postgres: the sum of its statements' round trips
   * (execution, the commit's WAL flush, the socket), on the same work. The rest is ours (building
   * the transfers, the ledger's decisions, serialising the arrays). A block cannot be credited
   * faster than this share with the statements crediting sends.
   */
  postgresMs: number[];
  /** Median of postgresMs. */
  postgresMedianMs: number;
  /** Credits created per run (must equal `deposits`). */
  credited: number[];
  deposits: number;
  /** Confirmed facts of the chain when measured. */
  facts: number;
  /**
   * Of each run, the floor measured right after it: the rows crediting that block writes (its
   * transfers, their accounts' balances, its credits with the sweepable-balance trigger, its
   * events), written by one statement with no reads, locks, decisions or checks (WRITE_FLOOR), in
   * a transaction committed like crediting's. What Postgres costs for the block's rows on this
   * database, whatever code sends them.
   */
  floorMs: number[];
  /** Median of floorMs. */
  floorMedianMs: number;
  /** Median over the runs of runsMs[i] / floorMs[i] (each run against the floor beside it). */
  vsFloor: number;
  /**
   * Median of the periodic pass with nothing new (crediting.sweep of the chain): what every 5 s
   * costs between blocks (was a full anti-join scan of chain.transfers × ledger.transfers).
   */
  idleMs: number;
  /**
   * Median of ledger.createTransfers alone for a batch of `deposits` deposit transfers (with chain
   * references) on the same database: the ledger's write, which crediting a block cannot avoid.
   */
  ledgerWriteMs: number;
};

/** Register the chain's deposit addresses as forwarders when none are; returns how many were added. */
export async function registerScaleForwarders(pool: Pool, chainId: number): Promise<number> {
  const { rows } = await pool.query<{ any: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM chain.deposit_addresses WHERE chain_id = $1) AS any",
    [chainId],
  );
  if (rows[0]?.any) return 0;
  const r = await pool.query(
    `INSERT INTO chain.deposit_addresses (chain_id, customer_id, address, salt, factory)
     SELECT chain_id, owner, address, '0x' || lpad(substr(address, 3), 64, '0'), $2
       FROM chain.custody_addresses WHERE chain_id = $1 AND kind = 'deposit'
     ON CONFLICT DO NOTHING`,
    [chainId, SCALE_FACTORY],
  );
  // Statistics for the 100,000 rows just written, as autovacuum's analyze gives production: the
  // sweepable-balance trigger's lookups are planned with them.
  await pool.query("ANALYZE chain.deposit_addresses");
  return r.rowCount ?? 0;
}

/**
 * Remove the forwarders registerScaleForwarders added, and vacuum them away: every bench run
 * registers and deletes 100,000 rows, and on a server with autovacuum off (this machine's) the
 * dead rows piled up (2.8 million in a copy of the 10M database, session 6), so each credit's
 * trigger lookup walked dead versions production never keeps.
 */
export async function unregisterScaleForwarders(pool: Pool, chainId: number): Promise<void> {
  await pool.query("DELETE FROM chain.deposit_addresses WHERE chain_id = $1 AND factory = $2", [
    chainId,
    SCALE_FACTORY,
  ]);
  await pool.query("VACUUM chain.deposit_addresses");
}

/**
 * Sums the round trips of every statement sent on `pool`'s clients while `on` is true (clients
 * are wrapped when checked out; a measurement's statements run one at a time).
 */
function statementClock(pool: Pool) {
  const clock = { on: false, ms: 0 };
  const wrapped = new WeakSet<object>();
  pool.on("acquire", (client) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const result = query(...args);
      if (!clock.on || !(result instanceof Promise)) return result;
      const t = performance.now();
      return result.finally(() => {
        clock.ms += performance.now() - t;
      });
    };
  });
  return clock;
}

// The floor (see floorMs): a block's rows as crediting writes them, ids and tx hashes made up
// (random, as UUID v5 and tx hashes are), no facts. The bench's resetToSeed removes them like any
// run's: transfers above the seeded seq with their credits, the balances they posted, the events.
const WRITE_FLOOR = `
WITH u AS MATERIALIZED (
  SELECT gen_random_uuid() AS id, account_id, address, owner, 1000 + i AS amount,
    '0x' || md5(random()::text) || md5(random()::text) AS tx_hash
  FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS x(account_id, address, owner, i)
), transfers AS (
  INSERT INTO ledger.transfers (id, asset_id, debit_account_id, credit_account_id, amount, type,
    posted_delta, pending_delta, kind, chain_id, tx_hash, position)
  SELECT id, $4, $5, account_id, amount, 'single', amount, 0, 'deposit', $6, tx_hash, 'tx' FROM u
), credited AS (
  UPDATE ledger.accounts a SET credits_posted = a.credits_posted + s.amount
  FROM (SELECT account_id, sum(amount) AS amount FROM u GROUP BY account_id) s
  WHERE a.id = s.account_id
), debited AS (
  UPDATE ledger.accounts SET debits_posted = debits_posted + (SELECT sum(amount) FROM u) WHERE id = $5
), credits AS (
  INSERT INTO ledger.deposit_credits (credit_id, chain_id, tx_hash, position, to_address, asset, amount,
    owner, block_number, block_hash)
  SELECT id, $6, tx_hash, 'tx', address, $7, amount, owner, $8, $9 FROM u
)
INSERT INTO ledger.events (type, transfer_id, payload)
SELECT 'deposit.credited', id, jsonb_build_object('chain_id', $6::bigint, 'tx_hash', tx_hash,
  'position', 'tx', 'to_address', address, 'amount', amount::text, 'owner', owner)
FROM u`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function measureCreditBlock({
  common,
  pool,
  chainId,
  deposits = 1_000,
  runs = 5,
}: {
  common: Common;
  pool: Pool;
  chainId: number;
  deposits?: number;
  runs?: number;
}): Promise<CreditBlockMeasurement> {
  const clock = statementClock(pool);
  const ledger = createLedger({ common, pool });
  const crediting = createDepositCrediting({ common, pool, ledger });
  const registered = await registerScaleForwarders(pool, chainId);
  try {
    await ledger.ensureAsset({ chainId, token: ZERO, symbol: "ETH", decimals: 18 });
    const { rows: addrs } = await pool.query<{ address: string }>(
      `SELECT address FROM chain.custody_addresses WHERE chain_id = $1 AND kind = 'deposit'
        ORDER BY address LIMIT $2`,
      [chainId, deposits],
    );
    if (addrs.length === 0) throw new Error(`chain ${chainId} has no deposit addresses`);
    // The floor's accounts: the same customers the blocks credit, and the chain's deposit account.
    const { rows: floorRows } = await pool.query<{
      account_id: string;
      address: string;
      owner: string;
    }>(
      `SELECT a.id::text AS account_id, c.address, c.owner
         FROM chain.custody_addresses c
         JOIN ledger.accounts a ON a.asset_id = $2 AND a.name = 'user:' || c.owner
        WHERE c.chain_id = $1 AND c.address = ANY($3::text[])`,
      [chainId, assetIdOf(chainId, ZERO), addrs.map((a) => a.address)],
    );
    const { rows: debitRows } = await pool.query<{ id: string }>(
      "SELECT id::text FROM ledger.accounts WHERE asset_id = $1 AND name = 'custody:deposits'",
      [assetIdOf(chainId, ZERO)],
    );
    if (floorRows.length !== addrs.length || debitRows.length !== 1)
      throw new Error(`chain ${chainId}: the floor's accounts are missing`);
    // Timed as crediting's pass is: from taking a client to the commit, one attempt.
    const floorBlock = async (block: number, blockHash: string) => {
      const t = performance.now();
      const written = await withTransaction(
        pool,
        (client) =>
          client.query(WRITE_FLOOR, [
            floorRows.map((r) => r.account_id),
            floorRows.map((r) => r.address),
            floorRows.map((r) => r.owner),
            assetIdOf(chainId, ZERO),
            debitRows[0]!.id,
            chainId,
            ZERO,
            block,
            blockHash,
          ]),
        { attempts: 1 },
      );
      const ms = performance.now() - t;
      // Its count is its events, one per transfer and credit: fewer would measure less than a block.
      if (written.rowCount !== floorRows.length)
        throw new Error(`the floor wrote ${written.rowCount} of ${floorRows.length} rows`);
      return ms;
    };
    // Everything stored so far is credited (the seed sets the watermark at its tip): the first
    // pass only catches the watermark up, as a running worker would have.
    await crediting.sweep({ chainId });
    const runsMs: number[] = [];
    const postgresMs: number[] = [];
    const credited: number[] = [];
    const floorMs: number[] = [];
    for (let run = 0; run < runs; run++) {
      const { rows } = await pool.query<{ next: string }>(
        "SELECT (coalesce(max(block_number), 0) + 1)::text AS next FROM chain.transfers WHERE chain_id = $1",
        [chainId],
      );
      const block = Number(rows[0]!.next);
      const blockHash = `0x${"5c".repeat(8)}${block.toString(16).padStart(48, "0")}`;
      await pool.query(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
           kind, asset, from_address, to_address, amount, status, confirmed_at)
         SELECT $1, $2, $3, '0x' || md5($3 || i) || md5(i || $3), i, 'tx', 'native', $4, $5,
           ($6::text[])[1 + i % cardinality($6::text[])], 1000 + i, 'confirmed', now()
         FROM generate_series(0, $7 - 1) AS i`,
        [
          chainId,
          block,
          blockHash,
          ZERO,
          `0x${"ee".repeat(20)}`,
          addrs.map((a) => a.address),
          deposits,
        ],
      );
      clock.ms = 0;
      clock.on = true;
      const t = performance.now();
      const r = await crediting.sweep({ chainId, fromBlock: block, toBlock: block });
      runsMs.push(performance.now() - t);
      clock.on = false;
      postgresMs.push(clock.ms);
      credited.push(r.credited);
      floorMs.push(await floorBlock(block, blockHash));
    }
    const idle: number[] = [];
    for (let run = 0; run < runs; run++) {
      const t = performance.now();
      await crediting.sweep({ chainId });
      idle.push(performance.now() - t);
    }
    // The ledger's own cost for the same batch (ids of their own; the bench's reset removes them).
    const { rows: owners } = await pool.query<{ owner: string }>(
      `SELECT owner FROM chain.custody_addresses WHERE chain_id = $1 AND kind = 'deposit'
        ORDER BY address LIMIT $2`,
      [chainId, deposits],
    );
    const ledgerRuns: number[] = [];
    for (let run = 0; run < runs; run++) {
      const stamp = `${Date.now()}:${run}`;
      const transfers = Array.from({ length: deposits }, (_, i) => ({
        id: transferId(`scale-ledger-write:${chainId}:${stamp}:${i}`),
        assetId: assetIdOf(chainId, ZERO),
        debit: "custody:deposits",
        credit: `user:${owners[i % owners.length]!.owner}`,
        amount: 1n,
        kind: "deposit" as const,
        // As a credit carries it: the ledger indexes a transfer's chain reference.
        chainRef: {
          chainId,
          txHash: `0x${createHash("sha256").update(`${stamp}:${i}`).digest("hex")}`,
          position: "tx",
        },
      }));
      const t = performance.now();
      await ledger.createTransfers(transfers);
      ledgerRuns.push(performance.now() - t);
    }
    const { rows: n } = await pool.query<{ n: string }>(
      "SELECT count(*)::text AS n FROM chain.transfers WHERE chain_id = $1 AND status = 'confirmed'",
      [chainId],
    );
    return {
      ms: median(runsMs),
      runsMs,
      postgresMs,
      postgresMedianMs: median(postgresMs),
      credited,
      floorMs,
      floorMedianMs: median(floorMs),
      vsFloor: median(runsMs.map((ms, i) => ms / floorMs[i]!)),
      deposits,
      facts: Number(n[0]!.n),
      idleMs: median(idle),
      ledgerWriteMs: median(ledgerRuns),
    };
  } finally {
    if (registered > 0) await unregisterScaleForwarders(pool, chainId);
    await ledger.close();
  }
}
