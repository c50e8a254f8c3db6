/**
 * The scale benchmark's data: a database of its own (`custody_bench_scale`), seeded synthetically
 * once per workload and reused by later runs. A marker row in `bench.seeds` names the workload it
 * holds; a database without the marker (a seed that did not finish, or another workload) is dropped
 * and seeded again. `resetToSeed` removes whatever a run added on top.
 *
 * Per chain: 100,000 deposit addresses and a hot wallet in chain.custody_addresses; facts in
 * blocks of 1,000 native deposits to them (tx hashes spread like keccak outputs); one ledger deposit
 * transfer per fact (the id deposit crediting gives it, the fact as chain reference) and its
 * ledger.deposit_credits row (what crediting writes beside the transfer), with account balances
 * equal to the sums. 1,000,000 customers: customer c has a user account in the native asset of
 * chain c mod 6; the first 100,000 of each chain own its deposit addresses.
 *
 * How it is fast: every row is generated inside Postgres (INSERT … SELECT over generate_series,
 * with the same deterministic functions as the TypeScript below: sha256 tx hashes, UUID v5 ids from
 * uuid-ossp in a scratch schema), one statement per table and chain, several at once. The big
 * tables are loaded without their keys, indexes and foreign keys, which are built afterwards. The
 * session runs with synchronous_commit off and a large maintenance_work_mem. At the end the schema is compared
 * with the one the migrations created (columns, constraints, indexes, triggers, persistence): a
 * difference fails the seed, and no marker is written.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { LEDGER_NAMESPACE } from "../../ledger/transferId.js";
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

/** SCALE_SEED_JOBS=N: statements the seed runs at once (default 4). */
const JOBS = Number(process.env.SCALE_SEED_JOBS ?? "4");
if (!(Number.isInteger(JOBS) && JOBS >= 1 && JOBS <= 16))
  throw new Error(
    `SCALE_SEED_JOBS must be an integer in [1, 16], got ${process.env.SCALE_SEED_JOBS}`,
  );
/**
 * SCALE_SEED_UNLOGGED=1: load the big tables UNLOGGED and SET LOGGED before the index builds. At
 * full size that was no faster than the default logged load (session 5, same mean load: 693 s
 * against 660 s; the SET LOGGED rewrite, 155 s, ate the 130 s the unlogged load saved).
 */
const UNLOGGED = process.env.SCALE_SEED_UNLOGGED === "1";

export const SCALE_WORKLOAD: ScaleWorkload = {
  chains: [910001, 910002, 910003, 910004, 910005, 910006],
  factsPerChain: scaled(1_666_667),
  customers: scaled(1_000_000),
  depositAddressesPerChain: scaled(100_000),
  factsPerBlock: 1_000,
};

/**
 * Bump when the seeded shape changes: a stored seed of another version is replaced.
 * v2: sha256 tx hashes (generated in SQL), ledger.deposit_credits seeded.
 */
const SEED_VERSION = 2;

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
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/*
 * The generators, twice: in TypeScript (what the bench writes on top of the seed) and in SQL (what
 * the seed writes). The seed checks that both agree before it loads (checkGenerators).
 */

/** Fact i of chain index k: its tx hash (64 hex digits spread like keccak outputs). */
export function txHashOf(chainIndex: number, i: number): string {
  return `0x${sha256(`${chainIndex}:${i}`)}`;
}
// text::bytea reads backslash escapes; these strings have none (and it is faster than convert_to).
const TX_SQL = (k: string, i: string) =>
  `('0x' || encode(sha256((${k} || ':' || ${i})::bytea), 'hex'))`;

export function depositAddress(chainIndex: number, j: number): string {
  return `0x${hex(0xd0 + chainIndex, 2)}${hex(j, 38)}`;
}
const ADDRESS_SQL = (k: string, j: string) =>
  `('0x' || to_hex(208 + ${k}) || lpad(to_hex(${j}::bigint), 38, '0'))`;

export function hotAddress(chainIndex: number): string {
  return `0x${hex(0xf0 + chainIndex, 2)}${"0".repeat(37)}1`;
}

export const SENDER = `0x${"ee".repeat(20)}`;

/** The customer owning deposit address j of chain index k. */
export const ownerOf = (k: number, j: number, w: ScaleWorkload) => j * w.chains.length + k;

export const blockHashOf = (chainId: number, n: number) => `0x${hex(chainId, 16)}${hex(n, 48)}`;
const BLOCK_HASH_SQL = (chainId: string, n: string) =>
  `('0x' || lpad(to_hex(${chainId}::bigint), 16, '0') || lpad(to_hex(${n}::bigint), 48, '0'))`;

/** Amount of fact i (any chain). */
export const amountOf = (i: number) => 1_000_000_000_000 + i;

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
    await c.query(
      "CREATE TABLE IF NOT EXISTS bench.seeds (workload TEXT PRIMARY KEY, info JSONB NOT NULL, seeded_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    );
    await c.query("INSERT INTO bench.seeds (workload, info) VALUES ($1, $2)", [key, info]);
  } finally {
    await c.end();
  }
  return { info, seededMs: performance.now() - t0 };
}

/** The module schemas whose shape the seed must leave as the migrations made it. */
const MODULE_SCHEMAS = ["chain", "ledger", "custody", "recon", "attest", "api"];

/** The tables the seed fills in bulk: loaded bare, keys and indexes built afterwards. */
const BULK_TABLES = [
  "chain.transfers",
  "chain.custody_addresses",
  "chain.blocks",
  "ledger.transfers",
  "ledger.accounts",
  "ledger.deposit_credits",
];

/** Small tables the seed writes and resetToSeed restores (a copy is kept in schema bench). */
const STATE_TABLES = ["chain.checkpoints", "ledger.crediting_watermarks", "ledger.assets"];

/**
 * The shape of the module schemas, one line per item: columns (type, null, default), constraints
 * (definition, validated), indexes, triggers (enabled), table persistence. Sequences' values and
 * row counts are not shape.
 */
async function schemaShape(c: pg.Client): Promise<string[]> {
  const r = await c.query<{ line: string }>(
    `SELECT 'column ' || n.nspname || '.' || t.relname || '.' || a.attname || ' ' ||
            format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
            coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') ||
            CASE WHEN a.attidentity::text <> '' THEN ' identity ' || a.attidentity::text ELSE '' END AS line
       FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE n.nspname = ANY($1) AND t.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
     UNION ALL
     SELECT 'constraint ' || n.nspname || '.' || t.relname || '.' || k.conname || ' ' ||
            pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE ' NOT VALIDATED' END
       FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = ANY($1)
     UNION ALL
     SELECT 'index ' || schemaname || '.' || indexname || ' ' || indexdef
       FROM pg_indexes WHERE schemaname = ANY($1)
     UNION ALL
     SELECT 'trigger ' || n.nspname || '.' || t.relname || '.' || g.tgname || ' ' || g.tgenabled::text || ' ' ||
            pg_get_triggerdef(g.oid)
       FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = ANY($1) AND NOT g.tgisinternal
     UNION ALL
     SELECT 'table ' || n.nspname || '.' || t.relname || ' persistence ' || t.relpersistence::text
       FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE n.nspname = ANY($1) AND t.relkind IN ('r', 'S')
     ORDER BY 1`,
    [MODULE_SCHEMAS],
  );
  return r.rows.map((x) => x.line);
}

/** Fails loudly when the seeded schema is not the migrated one. */
export function compareShapes(migrated: string[], seeded: string[]): void {
  const a = new Set(migrated);
  const b = new Set(seeded);
  const missing = migrated.filter((x) => !b.has(x));
  const extra = seeded.filter((x) => !a.has(x));
  if (missing.length > 0 || extra.length > 0)
    throw new Error(
      `the seeded schema differs from the migrated one:\n${[
        ...missing.map((x) => `  missing: ${x}`),
        ...extra.map((x) => `  extra:   ${x}`),
      ].join("\n")}`,
    );
}

type Deferred = {
  /** Foreign keys on or pointing at a bulk table: dropped first, added last. */
  fks: { table: string; name: string; def: string }[];
  /** Primary keys and unique constraints of the bulk tables. */
  keys: { table: string; name: string; def: string }[];
  /** Indexes that back no constraint. */
  indexes: { table: string; name: string; def: string }[];
};

async function deferredObjects(c: pg.Client): Promise<Deferred> {
  const fks = await c.query<{ table: string; name: string; def: string }>(
    `SELECT conrelid::regclass::text AS table, conname AS name, pg_get_constraintdef(oid) AS def
       FROM pg_constraint
      WHERE contype = 'f' AND (conrelid = ANY($1::regclass[]) OR confrelid = ANY($1::regclass[]))`,
    [BULK_TABLES],
  );
  const keys = await c.query<{ table: string; name: string; def: string }>(
    `SELECT conrelid::regclass::text AS table, conname AS name, pg_get_constraintdef(oid) AS def
       FROM pg_constraint
      WHERE contype IN ('p', 'u', 'x') AND conrelid = ANY($1::regclass[])`,
    [BULK_TABLES],
  );
  const indexes = await c.query<{ table: string; name: string; def: string }>(
    `SELECT i.indrelid::regclass::text AS table, i.indexrelid::regclass::text AS name,
            pg_get_indexdef(i.indexrelid) AS def
       FROM pg_index i
      WHERE i.indrelid = ANY($1::regclass[])
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)`,
    [BULK_TABLES],
  );
  return { fks: fks.rows, keys: keys.rows, indexes: indexes.rows };
}

/** Runs the statements `JOBS` at a time, each on a connection of its own; returns each one's ms. */
async function runJobs(
  jobs: { name: string; sql: string; params?: unknown[] }[],
  log: (line: string) => void,
): Promise<void> {
  const queue = [...jobs];
  const worker = async () => {
    const c = await connect();
    try {
      await sessionSettings(c);
      for (let job = queue.shift(); job; job = queue.shift()) {
        const t = performance.now();
        await c.query(job.sql, job.params);
        if (process.env.SCALE_SEED_VERBOSE === "1")
          log(`seeding step ${job.name}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      }
    } finally {
      await c.end().catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: Math.min(JOBS, jobs.length) }, worker));
}

async function sessionSettings(c: pg.Client) {
  await c.query("SET synchronous_commit = off");
  await c.query("SET maintenance_work_mem = '1GB'");
  await c.query("SET work_mem = '256MB'");
  await c.query("SET search_path = public, bench_seed");
}

/**
 * Per chain index k, the rows of fact i in 0 … factsPerChain − 1, in SQL: its chain id, block,
 * tx hash, recipient (deposit address j = i mod addresses), owner and amount.
 */
function factRowsSql(w: ScaleWorkload, k: number): string {
  const chainId = w.chains[k]!;
  return `SELECT ${chainId}::bigint AS chain_id, i,
       1 + i / ${w.factsPerBlock} AS block_number,
       ${TX_SQL(String(k), "i")} AS tx,
       ${ADDRESS_SQL(String(k), `i % ${w.depositAddressesPerChain}`)} AS to_address,
       (i % ${w.depositAddressesPerChain}) * ${w.chains.length} + ${k} AS owner,
       (1000000000000 + i)::numeric AS amount
     FROM generate_series(0::bigint, ${w.factsPerChain - 1}) AS i`;
}

async function seed(w: ScaleWorkload, log: (line: string) => void): Promise<SeedInfo> {
  const chainsN = w.chains.length;
  const tipBlock = Math.ceil(w.factsPerChain / w.factsPerBlock);
  const c = await connect();
  try {
    await sessionSettings(c);
    const migrated = await schemaShape(c);
    await c.query("CREATE SCHEMA bench");
    await c.query("CREATE SCHEMA bench_seed");
    await c.query('CREATE EXTENSION IF NOT EXISTS "uuid-ossp" SCHEMA bench_seed');
    await checkGenerators(c, w);

    // Bare tables: no foreign keys, keys, indexes or user triggers while loading.
    const t0 = performance.now();
    const deferred = await deferredObjects(c);
    for (const f of deferred.fks) await c.query(`ALTER TABLE ${f.table} DROP CONSTRAINT ${f.name}`);
    for (const k of deferred.keys)
      await c.query(`ALTER TABLE ${k.table} DROP CONSTRAINT ${k.name}`);
    for (const x of deferred.indexes) await c.query(`DROP INDEX ${x.name}`);
    for (const t of BULK_TABLES) {
      await c.query(`ALTER TABLE ${t} DISABLE TRIGGER USER`);
      if (UNLOGGED) await c.query(`ALTER TABLE ${t} SET UNLOGGED`);
    }

    // Assets and the small tables; ids: user c is c + 1, custody:deposits of chain k is customers + 1 + k.
    const assets = w.chains.map((id) => `${id}:${ZERO}`);
    await c.query(
      `INSERT INTO ledger.assets (id, chain_id, token, symbol, decimals)
       SELECT a, c, $2, 'ETH', 18 FROM unnest($1::text[], $3::bigint[]) AS x(a, c)`,
      [assets, ZERO, w.chains],
    );
    for (const chainId of w.chains) {
      await c.query(
        "INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)",
        [chainId, tipBlock, blockHashOf(chainId, tipBlock)],
      );
      await c.query(
        "INSERT INTO ledger.crediting_watermarks (chain_id, block_number) VALUES ($1, $2)",
        [chainId, tipBlock],
      );
    }

    const F = w.factsPerChain;
    const D = w.depositAddressesPerChain;
    const jobs: { name: string; sql: string; params?: unknown[] }[] = [];
    for (let k = 0; k < chainsN; k++) {
      const chainId = w.chains[k]!;
      const custody = w.customers + 1 + k;
      jobs.push({
        name: `chain.transfers ${chainId}`,
        sql: `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
                kind, asset, from_address, to_address, amount, status, confirmed_at)
              SELECT chain_id, block_number, ${BLOCK_HASH_SQL("chain_id", "block_number")}, tx,
                     (i % ${w.factsPerBlock})::int, 'tx', 'native', '${ZERO}', '${SENDER}', to_address,
                     amount, 'confirmed', '2026-12-01 00:00:00+00'
                FROM (${factRowsSql(w, k)}) f`,
      });
      jobs.push({
        name: `ledger.transfers ${chainId}`,
        sql: `INSERT INTO ledger.transfers (id, asset_id, debit_account_id, credit_account_id, amount, type,
                posted_delta, pending_delta, kind, chain_id, tx_hash, position)
              SELECT uuid_generate_v5('${LEDGER_NAMESPACE}', 'deposit:' || chain_id || ':' || tx || ':tx'),
                     '${assets[k]}', ${custody}, owner + 1, amount, 'single', amount, 0, 'deposit',
                     chain_id, tx, 'tx'
                FROM (${factRowsSql(w, k)}) f`,
      });
      jobs.push({
        name: `ledger.deposit_credits ${chainId}`,
        sql: `INSERT INTO ledger.deposit_credits (credit_id, chain_id, tx_hash, position, to_address, asset,
                amount, owner, block_number, block_hash)
              SELECT uuid_generate_v5('${LEDGER_NAMESPACE}', 'deposit:' || chain_id || ':' || tx || ':tx'),
                     chain_id, tx, 'tx', to_address, '${ZERO}', amount, 'c' || owner, block_number,
                     ${BLOCK_HASH_SQL("chain_id", "block_number")}
                FROM (${factRowsSql(w, k)}) f`,
      });
    }
    // Balances in closed form: deposit address j of a chain receives facts i = j + mD (m < M),
    // M = ⌊(F − 1 − j) / D⌋ + 1, in total M(10¹² + j) + D·M(M − 1)/2.
    jobs.push({
      name: "ledger.accounts",
      sql: `INSERT INTO ledger.accounts (id, asset_id, name, kind, normal, debits_must_not_exceed_credits,
              credits_posted, debits_posted)
            SELECT c + 1, ($1::text[])[c % ${chainsN} + 1], 'user:c' || c, 'user', 'credit', true,
                   CASE WHEN j < ${Math.min(D, F)}
                        THEN m * (1000000000000 + j) + ${D}::numeric * m * (m - 1) / 2 ELSE 0 END, 0
              FROM generate_series(0::bigint, ${w.customers - 1}) AS c,
                   LATERAL (SELECT c / ${chainsN} AS j) jj,
                   LATERAL (SELECT ((${F} - 1 - j) / ${D} + 1)::numeric AS m) mm
            UNION ALL
            SELECT ${w.customers + 1} + k, ($1::text[])[k + 1], 'custody:deposits', 'custody', 'debit', false,
                   0, ${F}::numeric * 1000000000000 + ${F}::numeric * (${F} - 1) / 2
              FROM generate_series(0, ${chainsN - 1}) AS k`,
      params: [assets],
    });
    jobs.push({
      name: "chain.custody_addresses",
      sql: `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
            SELECT ($1::bigint[])[k + 1], ${ADDRESS_SQL("k", "j")}, 'deposit', 'c' || (j * ${chainsN} + k)
              FROM generate_series(0, ${chainsN - 1}) AS k, generate_series(0::bigint, ${D - 1}) AS j
            UNION ALL
            SELECT ($1::bigint[])[k + 1], '0x' || to_hex(240 + k) || repeat('0', 37) || '1', 'hot', 'hot-1'
              FROM generate_series(0, ${chainsN - 1}) AS k`,
      params: [w.chains],
    });
    jobs.push({
      name: "chain.blocks",
      sql: `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
            SELECT c, n, ${BLOCK_HASH_SQL("c", "n")}, ${BLOCK_HASH_SQL("c", "n - 1")},
                   '2026-12-01'::timestamptz + make_interval(secs => n)
              FROM unnest($1::bigint[]) AS c, generate_series(1::bigint, ${tipBlock}) AS n`,
      params: [w.chains],
    });
    await runJobs(jobs, log);
    log(`seeding, rows generated in Postgres: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    await c.query(
      "SELECT setval(pg_get_serial_sequence('ledger.accounts', 'id'), (SELECT max(id) FROM ledger.accounts))",
    );

    const t1 = performance.now();
    if (UNLOGGED) {
      await runJobs(
        BULK_TABLES.map((t) => ({ name: `SET LOGGED ${t}`, sql: `ALTER TABLE ${t} SET LOGGED` })),
        log,
      );
      log(`seeding, SET LOGGED: ${((performance.now() - t1) / 1000).toFixed(0)} s`);
    }
    const t2 = performance.now();
    // Keys first (an index may be built on them), then indexes, then foreign keys; biggest first.
    const builds = [
      ...deferred.keys.map((k) => ({
        name: `${k.table} ${k.name}`,
        sql: `ALTER TABLE ${k.table} ADD CONSTRAINT ${k.name} ${k.def}`,
      })),
      ...deferred.indexes.map((x) => ({ name: x.name, sql: x.def })),
    ];
    await runJobs(builds, log);
    await runJobs(
      deferred.fks.map((f) => ({
        name: `${f.table} ${f.name}`,
        sql: `ALTER TABLE ${f.table} ADD CONSTRAINT ${f.name} ${f.def}`,
      })),
      log,
    );
    for (const t of BULK_TABLES) await c.query(`ALTER TABLE ${t} ENABLE TRIGGER USER`);
    log(
      `seeding, keys, indexes and foreign keys built: ${((performance.now() - t2) / 1000).toFixed(0)} s`,
    );

    // VACUUM sets the visibility map (index-only scans, as autovacuum would in production) and
    // ANALYZE gives the planner the seeded distribution.
    const t3 = performance.now();
    await runJobs(
      BULK_TABLES.map((t) => ({ name: `VACUUM ANALYZE ${t}`, sql: `VACUUM (ANALYZE) ${t}` })),
      log,
    );
    log(`seeding, VACUUM ANALYZE: ${((performance.now() - t3) / 1000).toFixed(0)} s`);

    await c.query("DROP SCHEMA bench_seed CASCADE");
    compareShapes(migrated, await schemaShape(c));
    for (const t of STATE_TABLES)
      await c.query(`CREATE TABLE bench.${t.replace(".", "__")} AS TABLE ${t}`);

    const r = await c.query<{ seq: string; account: string; fact: string }>(
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
    await c.end().catch(() => {});
  }
}

/**
 * The SQL generators must produce exactly what the TypeScript ones do (the bench writes new rows
 * with the TypeScript ones, and crediting derives ids with transferId): checked on a few samples.
 */
async function checkGenerators(c: pg.Client, w: ScaleWorkload): Promise<void> {
  const { transferId } = await import("../../ledger/transferId.js");
  const samples = [0, 1, 999, 123_456, w.factsPerChain - 1].filter((i) => i < w.factsPerChain);
  for (let k = 0; k < w.chains.length; k += 5) {
    const r = await c.query<{ i: string; tx: string; to_address: string; id: string; bh: string }>(
      `SELECT i::text, tx, to_address,
              bench_seed.uuid_generate_v5('${LEDGER_NAMESPACE}', 'deposit:' || chain_id || ':' || tx || ':tx')::text AS id,
              ${BLOCK_HASH_SQL("chain_id", "block_number")} AS bh
         FROM (${factRowsSql(w, k).replace(/FROM generate_series\([^)]*\) AS i/, "FROM unnest($1::bigint[]) AS i")}) f`,
      [samples],
    );
    for (const x of r.rows) {
      const i = Number(x.i);
      const chainId = w.chains[k]!;
      const want = {
        tx: txHashOf(k, i),
        to_address: depositAddress(k, i % w.depositAddressesPerChain),
        id: transferId(`deposit:${chainId}:${txHashOf(k, i)}:tx`),
        bh: blockHashOf(chainId, 1 + Math.floor(i / w.factsPerBlock)),
      };
      for (const [field, value] of Object.entries(want))
        if (x[field as keyof typeof x] !== value)
          throw new Error(
            `seed generators disagree for chain index ${k} fact ${i}: ${field} is ${x[field as keyof typeof x]} in SQL, ${value} in TypeScript`,
          );
    }
  }
}

/**
 * Back to the seeded state: facts, blocks, ledger transfers and deposit credits a run added are
 * removed (account balances lowered by what they posted), the small tables the seed writes
 * (checkpoints, crediting watermarks with their catch-up cursor, assets) are restored from the
 * copy the seed kept, and every other table of the module schemas (empty when seeded) is emptied.
 */
export async function resetToSeed(info: SeedInfo, w: ScaleWorkload): Promise<void> {
  const c = await connect();
  try {
    await c.query("BEGIN");
    await c.query("DELETE FROM chain.transfers WHERE id > $1", [info.maxFactId]);
    await c.query("DELETE FROM chain.blocks WHERE number > $1", [info.tipBlock]);
    // The tip a run stored as its node's block (scale.ts storeNodeBlock), seeded again.
    await c.query(
      `DELETE FROM chain.blocks b USING unnest($1::bigint[]) AS x(c)
        WHERE b.chain_id = x.c AND b.number = $2 AND b.hash <> ${BLOCK_HASH_SQL("x.c", "$2::bigint")}`,
      [w.chains, info.tipBlock],
    );
    await c.query(
      `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
       SELECT c, $2::bigint, ${BLOCK_HASH_SQL("c", "$2::bigint")}, ${BLOCK_HASH_SQL("c", "$2::bigint - 1")},
              '2026-12-01'::timestamptz + make_interval(secs => $2::int)
         FROM unnest($1::bigint[]) AS c
       ON CONFLICT DO NOTHING`,
      [w.chains, info.tipBlock],
    );
    await c.query(
      `CREATE TEMP TABLE gone ON COMMIT DROP AS
       WITH d AS (DELETE FROM ledger.transfers WHERE seq > $1
                  RETURNING id, debit_account_id, credit_account_id, posted_delta, pending_delta)
       SELECT * FROM d`,
      [info.maxSeq],
    );
    await c.query("DELETE FROM ledger.deposit_credits d USING gone g WHERE d.credit_id = g.id");
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
    // Seeded credits a run held (a reorg hold) are credited again; by the partial index on held
    // credits, not a scan of every credit. (The bench reorgs nothing; 'final' is not undone.)
    await c.query(
      `UPDATE ledger.deposit_credits SET state = 'credited', orphaned_block = NULL, hold_id = NULL,
              hold_amount = NULL, shortfall_id = NULL, shortfall_amount = NULL, holds_placed = 0
        WHERE state = 'held'`,
    );
    for (const t of STATE_TABLES) {
      // Upsert by primary key (rows are referenced, e.g. assets by accounts); columns a later
      // migration added keep their defaults.
      const snap = `bench.${t.replace(".", "__")}`;
      const cols = await c.query<{ name: string; key: boolean }>(
        `SELECT a.attname AS name,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
                          AND a.attnum = ANY(i.indkey)) AS key
           FROM pg_attribute a
          WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
            AND EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = $2::regclass AND b.attname = a.attname)`,
        [t, snap],
      );
      const q = (n: string) => `"${n}"`;
      const all = cols.rows.map((x) => q(x.name));
      const key = cols.rows.filter((x) => x.key).map((x) => q(x.name));
      const rest = cols.rows
        .filter((x) => !x.key)
        .map((x) => `${q(x.name)} = EXCLUDED.${q(x.name)}`);
      if (key.length === 0) throw new Error(`${t} has no primary key to restore it by`);
      await c.query(
        `DELETE FROM ${t} WHERE (${key.join(", ")}) NOT IN (SELECT ${key.join(", ")} FROM ${snap})`,
      );
      await c.query(
        `INSERT INTO ${t} (${all.join(", ")}) SELECT ${all.join(", ")} FROM ${snap}
         ON CONFLICT (${key.join(", ")}) DO ${rest.length > 0 ? `UPDATE SET ${rest.join(", ")}` : "NOTHING"}`,
      );
    }
    const others = await c.query<{ t: string }>(
      `SELECT n.nspname || '.' || t.relname AS t
         FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = ANY($1) AND t.relkind = 'r' AND t.relname <> 'schema_migrations'
          AND NOT (n.nspname || '.' || t.relname = ANY($2))`,
      [MODULE_SCHEMAS, [...BULK_TABLES, ...STATE_TABLES]],
    );
    const nonEmpty: string[] = [];
    for (const { t } of others.rows) {
      const r = await c.query(`SELECT 1 FROM ${t} LIMIT 1`);
      if (r.rowCount) nonEmpty.push(t);
    }
    if (nonEmpty.length > 0) await c.query(`TRUNCATE ${nonEmpty.join(", ")} CASCADE`);
    await c.query("COMMIT");
  } catch (error) {
    await c.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await c.end();
  }
}

/**
 * VACUUM (ANALYZE) the module tables holding many dead rows. A reused database piles them up when
 * the server runs without autovacuum (this CI server does): every run's `resetToSeed` deletes what
 * it added, and the measurements would walk the dead versions and index entries production's
 * autovacuum removes. Only tables over `minDead` dead rows; returns what was vacuumed.
 */
export async function vacuumDeadRows(
  log: (line: string) => void,
  minDead = 10_000,
): Promise<{ table: string; dead: number; ms: number }[]> {
  const c = await connect();
  try {
    const { rows } = await c.query<{ t: string; dead: string }>(
      `SELECT schemaname || '.' || relname AS t, n_dead_tup::text AS dead FROM pg_stat_user_tables
        WHERE schemaname = ANY($1) AND n_dead_tup >= $2 ORDER BY n_dead_tup DESC`,
      [MODULE_SCHEMAS, minDead],
    );
    const out: { table: string; dead: number; ms: number }[] = [];
    for (const { t, dead } of rows) {
      const t0 = performance.now();
      await c.query(`VACUUM (ANALYZE) ${t}`);
      const ms = performance.now() - t0;
      out.push({ table: t, dead: Number(dead), ms });
      log(
        `vacuumed ${t}: ${Number(dead).toLocaleString("en-US")} dead rows, ${(ms / 1000).toFixed(1)} s`,
      );
    }
    return out;
  } finally {
    await c.end();
  }
}
