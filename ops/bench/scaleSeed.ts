/**
 * The scale benchmark's data: a database of its own (`custody_bench_scale`), seeded synthetically
 * with COPY once per workload and reused by later runs. A marker row in `bench.seeds` names the
 * workload it holds; a database without the marker (a seed that did not finish, or another
 * workload) is dropped and seeded again. `resetToSeed` removes whatever a run added on top.
 *
 * Per chain: 100,000 deposit addresses and a hot wallet in chain.custody_addresses; facts in
 * blocks of 1,000 native deposits to them (tx hashes spread like keccak outputs); one ledger deposit
 * transfer per fact (the id deposit crediting would give it, the fact as chain reference), with
 * account balances equal to the sums. 1,000,000 customers: customer c has a user account in the
 * native asset of chain c mod 6; the first 100,000 of each chain own its deposit addresses.
 */
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { transferId } from "../../ledger/transferId.js";
import { migrate } from "../migrate.js";
import { TEST_PG_ADMIN_URL } from "../testing/database.js";

export const ZERO = "0x0000000000000000000000000000000000000000";

export type ScaleWorkload = {
  chains: number[];
  factsPerChain: number;
  customers: number;
  depositAddressesPerChain: number;
  factsPerBlock: number;
};

/**
 * SCALE_SMOKE=1: the same shape at 1/100 (a quick check of the bench itself, own database).
 * SCALE_FACTOR=F: the same shape at F (0 < F ≤ 1) in a database of its own; SCALE_DATABASE=NAME
 * picks the database (e.g. one per developer measuring at once).
 */
const SMOKE = process.env.SCALE_SMOKE === "1";
const FACTOR = SMOKE ? 0.01 : Number(process.env.SCALE_FACTOR ?? "1");
if (!(FACTOR > 0 && FACTOR <= 1))
  throw new Error(`SCALE_FACTOR must be a number in (0, 1], got ${process.env.SCALE_FACTOR}`);
const scaled = (n: number) => Math.max(1, Math.round(n * FACTOR));

export const SCALE_WORKLOAD: ScaleWorkload = {
  chains: [910001, 910002, 910003, 910004, 910005, 910006],
  factsPerChain: scaled(1_666_667),
  customers: scaled(1_000_000),
  depositAddressesPerChain: scaled(100_000),
  factsPerBlock: 1_000,
};

/** Bump when the seeded shape changes: a stored seed of another version is replaced. */
const SEED_VERSION = 1;

export function workloadKey(w: ScaleWorkload): string {
  return `v${SEED_VERSION} chains=${w.chains.join(",")} facts/chain=${w.factsPerChain} customers=${w.customers} deposit-addresses/chain=${w.depositAddressesPerChain} facts/block=${w.factsPerBlock}`;
}

export type SeedInfo = {
  /** Highest seeded block per chain (the same for all). */
  tipBlock: number;
  maxSeq: number;
  maxAccountId: number;
  maxFactId: number;
};

export const SCALE_DATABASE =
  process.env.SCALE_DATABASE ??
  (SMOKE
    ? "custody_bench_scale_smoke"
    : FACTOR === 1
      ? "custody_bench_scale"
      : `custody_bench_scale_${String(FACTOR).replace(".", "_")}`);
if (!/^[a-z_][a-z0-9_]*$/.test(SCALE_DATABASE))
  throw new Error(`SCALE_DATABASE must be a lower-case SQL identifier, got ${SCALE_DATABASE}`);

export function scaleDatabaseUrl(): string {
  const u = new URL(TEST_PG_ADMIN_URL);
  u.pathname = `/${SCALE_DATABASE}`;
  return u.toString();
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

/** 32 bits of a splitmix-style mix: tx hashes spread over the key space like keccak outputs. */
function mix32(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

export function txHashOf(chainIndex: number, i: number): string {
  let s = "0x";
  for (let k = 0; k < 8; k++) s += hex(mix32(i * 8 + k + chainIndex * 0x1000_0000 + 1), 8);
  return s;
}

export function depositAddress(chainIndex: number, j: number): string {
  return `0x${hex(0xd0 + chainIndex, 2)}${hex(j, 38)}`;
}

export function hotAddress(chainIndex: number): string {
  return `0x${hex(0xf0 + chainIndex, 2)}${"0".repeat(37)}1`;
}

export const SENDER = `0x${"ee".repeat(20)}`;

/** The customer owning deposit address j of chain index k. */
export const ownerOf = (k: number, j: number, w: ScaleWorkload) => j * w.chains.length + k;

export const blockHashOf = (chainId: number, n: number) => `0x${hex(chainId, 16)}${hex(n, 48)}`;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: scaleDatabaseUrl() });
  await c.connect();
  return c;
}

/** The stored seed of this workload, or null (the database is missing or holds something else). */
async function storedSeed(key: string): Promise<SeedInfo | null> {
  const exists = await admin((c) =>
    c.query("SELECT 1 FROM pg_database WHERE datname = $1", [SCALE_DATABASE]),
  );
  if (exists.rowCount === 0) return null;
  const c = await connect();
  try {
    const r = await c.query<{ info: SeedInfo }>(
      `SELECT info FROM bench.seeds WHERE workload = $1`,
      [key],
    );
    return r.rows[0]?.info ?? null;
  } catch {
    return null; // no bench schema: an unfinished seed
  } finally {
    await c.end();
  }
}

/**
 * Make sure the database holds the workload: reuse it (after applying any new migrations), or
 * drop and seed it. Returns what the seed holds and whether it was seeded now, with timings.
 */
export async function ensureSeed(
  w: ScaleWorkload,
  log: (line: string) => void,
): Promise<{ info: SeedInfo; seededMs: number | null }> {
  const key = workloadKey(w);
  const found = await storedSeed(key);
  if (found) {
    await migrate(scaleDatabaseUrl());
    return { info: found, seededMs: null };
  }
  const t0 = performance.now();
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${SCALE_DATABASE} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${SCALE_DATABASE}`);
  });
  await migrate(scaleDatabaseUrl());
  const info = await seed(w, log);
  const c = await connect();
  try {
    await c.query("CREATE SCHEMA IF NOT EXISTS bench");
    await c.query(
      "CREATE TABLE IF NOT EXISTS bench.seeds (workload TEXT PRIMARY KEY, info JSONB NOT NULL, seeded_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    );
    await c.query("INSERT INTO bench.seeds (workload, info) VALUES ($1, $2)", [key, info]);
  } finally {
    await c.end();
  }
  return { info, seededMs: performance.now() - t0 };
}

/** Secondary indexes of a table (not constraints): dropped for the COPY, rebuilt after. */
async function secondaryIndexes(
  c: pg.Client,
  table: string,
): Promise<{ name: string; def: string }[]> {
  const r = await c.query<{ name: string; def: string }>(
    `SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
       FROM pg_index i
      WHERE i.indrelid = $1::regclass
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)`,
    [table],
  );
  return r.rows;
}

async function copyRows(c: pg.Client, sql: string, rows: () => Generator<string>): Promise<void> {
  async function* chunks() {
    let chunk = "";
    for (const line of rows()) {
      chunk += line;
      if (chunk.length >= 1 << 18) {
        yield chunk;
        chunk = "";
      }
    }
    if (chunk.length > 0) yield chunk;
  }
  await pipeline(chunks(), c.query(copyFrom(sql)));
}

async function seed(w: ScaleWorkload, log: (line: string) => void): Promise<SeedInfo> {
  const chainsN = w.chains.length;
  const tipBlock = Math.ceil(w.factsPerChain / w.factsPerBlock);
  const factsC = await connect();
  const ledgerC = await connect();
  try {
    for (const c of [factsC, ledgerC]) {
      await c.query("SET maintenance_work_mem = '512MB'");
      await c.query("SET synchronous_commit = off");
    }
    const dropped = {
      facts: await secondaryIndexes(factsC, "chain.transfers"),
      entries: await secondaryIndexes(ledgerC, "ledger.transfers"),
    };
    for (const x of dropped.facts) await factsC.query(`DROP INDEX ${x.name}`);
    for (const x of dropped.entries) await ledgerC.query(`DROP INDEX ${x.name}`);

    // Assets, accounts (explicit ids: user c is c + 1, custody:deposits of chain k is customers + 1 + k).
    const assets = w.chains.map((id) => `${id}:${ZERO}`);
    await ledgerC.query(
      `INSERT INTO ledger.assets (id, chain_id, token, symbol, decimals)
       SELECT a, c, $2, 'ETH', 18 FROM unnest($1::text[], $3::bigint[]) AS x(a, c)`,
      [assets, ZERO, w.chains],
    );
    const userCredits = new Float64Array(w.customers);
    const custodyDebits = w.chains.map(() => 0n);
    const amountOf = (i: number) => 1_000_000_000_000 + i;

    const t0 = performance.now();
    const facts = copyRows(
      factsC,
      `COPY chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
         asset, from_address, to_address, amount, status, confirmed_at) FROM STDIN`,
      function* () {
        for (let k = 0; k < chainsN; k++) {
          const chainId = w.chains[k]!;
          for (let i = 0; i < w.factsPerChain; i++) {
            const block = 1 + Math.floor(i / w.factsPerBlock);
            const to = depositAddress(k, i % w.depositAddressesPerChain);
            yield `${chainId}\t${block}\t${blockHashOf(chainId, block)}\t${txHashOf(k, i)}\t${i % w.factsPerBlock}\ttx\tnative\t${ZERO}\t${SENDER}\t${to}\t${amountOf(i)}\tconfirmed\t2026-12-01 00:00:00+00\n`;
          }
        }
      },
    );
    const entries = copyRows(
      ledgerC,
      `COPY ledger.transfers (id, asset_id, debit_account_id, credit_account_id, amount, type,
         posted_delta, pending_delta, kind, chain_id, tx_hash, position) FROM STDIN`,
      function* () {
        for (let k = 0; k < chainsN; k++) {
          const chainId = w.chains[k]!;
          const custody = w.customers + 1 + k;
          let sum = 0n;
          for (let i = 0; i < w.factsPerChain; i++) {
            const tx = txHashOf(k, i);
            const owner = ownerOf(k, i % w.depositAddressesPerChain, w);
            const amount = amountOf(i);
            userCredits[owner]! += amount;
            sum += BigInt(amount);
            yield `${transferId(`deposit:${chainId}:${tx}:tx`)}\t${assets[k]}\t${custody}\t${owner + 1}\t${amount}\tsingle\t${amount}\t0\tdeposit\t${chainId}\t${tx}\ttx\n`;
          }
          custodyDebits[k] = sum;
        }
      },
    );
    await Promise.all([facts, entries]);
    log(
      `seed: COPY of facts and ledger transfers ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );

    const t1 = performance.now();
    await copyRows(
      ledgerC,
      `COPY ledger.accounts (id, asset_id, name, kind, normal, debits_must_not_exceed_credits,
         credits_posted, debits_posted) FROM STDIN`,
      function* () {
        for (let c = 0; c < w.customers; c++)
          yield `${c + 1}\t${assets[c % chainsN]}\tuser:c${c}\tuser\tcredit\ttrue\t${userCredits[c]}\t0\n`;
        for (let k = 0; k < chainsN; k++)
          yield `${w.customers + 1 + k}\t${assets[k]}\tcustody:deposits\tcustody\tdebit\tfalse\t0\t${custodyDebits[k]}\n`;
      },
    );
    await ledgerC.query(
      "SELECT setval(pg_get_serial_sequence('ledger.accounts', 'id'), (SELECT max(id) FROM ledger.accounts))",
    );
    await copyRows(
      factsC,
      "COPY chain.custody_addresses (chain_id, address, kind, owner) FROM STDIN",
      function* () {
        for (let k = 0; k < chainsN; k++) {
          for (let j = 0; j < w.depositAddressesPerChain; j++)
            yield `${w.chains[k]}\t${depositAddress(k, j)}\tdeposit\tc${ownerOf(k, j, w)}\n`;
          yield `${w.chains[k]}\t${hotAddress(k)}\thot\thot-1\n`;
        }
      },
    );
    for (let k = 0; k < chainsN; k++) {
      const chainId = w.chains[k]!;
      await factsC.query(
        `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
         SELECT $1, n, '0x' || lpad(to_hex($1::bigint), 16, '0') || lpad(to_hex(n), 48, '0'),
                '0x' || lpad(to_hex($1::bigint), 16, '0') || lpad(to_hex(n - 1), 48, '0'),
                '2026-12-01'::timestamptz + make_interval(secs => n)
         FROM generate_series(1, $2::bigint) n`,
        [chainId, tipBlock],
      );
      await factsC.query(
        "INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)",
        [chainId, tipBlock, blockHashOf(chainId, tipBlock)],
      );
      await ledgerC.query(
        "INSERT INTO ledger.crediting_watermarks (chain_id, block_number) VALUES ($1, $2)",
        [chainId, tipBlock],
      );
    }
    log(`seed: accounts, addresses, blocks ${((performance.now() - t1) / 1000).toFixed(0)} s`);

    const t2 = performance.now();
    await Promise.all([
      (async () => {
        for (const x of dropped.facts) await factsC.query(x.def);
        await factsC.query("VACUUM ANALYZE chain.transfers");
        await factsC.query("VACUUM ANALYZE chain.custody_addresses");
      })(),
      (async () => {
        for (const x of dropped.entries) await ledgerC.query(x.def);
        await ledgerC.query("VACUUM ANALYZE ledger.transfers");
        await ledgerC.query("VACUUM ANALYZE ledger.accounts");
      })(),
    ]);
    log(`seed: indexes and VACUUM ANALYZE ${((performance.now() - t2) / 1000).toFixed(0)} s`);

    const r = await ledgerC.query<{ seq: string; account: string; fact: string }>(
      `SELECT (SELECT max(seq) FROM ledger.transfers) AS seq,
              (SELECT max(id) FROM ledger.accounts) AS account,
              (SELECT max(id) FROM chain.transfers) AS fact`,
    );
    const row = r.rows[0]!;
    return {
      tipBlock,
      maxSeq: Number(row.seq),
      maxAccountId: Number(row.account),
      maxFactId: Number(row.fact),
    };
  } finally {
    await factsC.end().catch(() => {});
    await ledgerC.end().catch(() => {});
  }
}

/** Tables the seed leaves empty (those that exist in this schema version). */
const SEED_EMPTY_TABLES = [
  "chain.reorgs",
  "chain.halts",
  "ledger.holds",
  "ledger.deposit_credits",
  "ledger.events",
  "ledger.failed_transfers",
  "ledger.parked_deposits",
  "ledger.inflow_credits",
  "recon.break_states",
  "recon.breaks",
  "recon.runs",
  "recon.onchain_balances",
  "recon.deposit_balance_totals",
  "custody.sweep_items",
  "custody.sweeps",
  "custody.sweepable_balances",
];

/**
 * Back to the seeded state: facts, blocks and ledger transfers a run added are removed (account
 * balances lowered by what they posted), and every table the seed leaves empty is emptied.
 */
export async function resetToSeed(info: SeedInfo, w: ScaleWorkload): Promise<void> {
  const c = await connect();
  try {
    await c.query("BEGIN");
    await c.query("DELETE FROM chain.transfers WHERE id > $1", [info.maxFactId]);
    await c.query("DELETE FROM chain.blocks WHERE number > $1", [info.tipBlock]);
    await c.query(
      "UPDATE chain.checkpoints SET block_number = $1, block_hash = '0x' || lpad(to_hex(chain_id), 16, '0') || lpad(to_hex($1::bigint), 48, '0')",
      [info.tipBlock],
    );
    await c.query(
      `CREATE TEMP TABLE gone ON COMMIT DROP AS
       WITH d AS (DELETE FROM ledger.transfers WHERE seq > $1
                  RETURNING debit_account_id, credit_account_id, posted_delta, pending_delta)
       SELECT * FROM d`,
      [info.maxSeq],
    );
    await c.query(
      `UPDATE ledger.accounts a SET debits_posted = a.debits_posted - g.p, debits_pending = a.debits_pending - g.q
         FROM (SELECT debit_account_id AS id, sum(posted_delta) AS p, sum(pending_delta) AS q FROM gone GROUP BY 1) g
        WHERE a.id = g.id`,
    );
    await c.query(
      `UPDATE ledger.accounts a SET credits_posted = a.credits_posted - g.p, credits_pending = a.credits_pending - g.q
         FROM (SELECT credit_account_id AS id, sum(posted_delta) AS p, sum(pending_delta) AS q FROM gone GROUP BY 1) g
        WHERE a.id = g.id`,
    );
    await c.query("DELETE FROM ledger.accounts WHERE id > $1", [info.maxAccountId]);
    await c.query(
      `UPDATE ledger.crediting_watermarks SET block_number = $1, reorg_id = 0 WHERE chain_id = ANY($2::bigint[])`,
      [info.tipBlock, w.chains],
    );
    const empty = await c.query<{ t: string }>(
      "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
      [SEED_EMPTY_TABLES],
    );
    await c.query(`TRUNCATE ${empty.rows.map((r) => r.t).join(", ")} CASCADE`);
    await c.query("COMMIT");
  } catch (error) {
    await c.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await c.end();
  }
}
