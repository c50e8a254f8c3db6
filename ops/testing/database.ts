/**
 * A fresh Postgres database per test file (created, migrated, dropped), so test files run in
 * parallel without seeing each other's rows.
 *
 * Migrated databases are cloned (`CREATE DATABASE ... TEMPLATE`, a fraction of a second) from a
 * template migrated once per set of migrations: its name carries a hash of every migration file's
 * path and content, so an edited, added or renumbered migration makes a new template, and worktrees
 * or branches with different migrations sharing one server never use each other's.
 *
 * Inside a vitest run, a file's `drop()` closes its database to connections and leaves the DROP to
 * the run's main process (`dropTestDatabasesOf`, from globalSetup: every few seconds, and the rest
 * at the end): each DROP DATABASE waits for a checkpoint (1.4 s a file beside a loaded run), which
 * the worker then spent waiting, and drops made together share one.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { repoRoot } from "../../foundation/config.js";
import { createPool, type Pool } from "../../foundation/db.js";
import { mapLimit } from "../../foundation/mapLimit.js";
import { MODULE_MIGRATIONS, type ModuleMigrations, migrate } from "../migrate.js";
import { testRunPid } from "./run.js";

export const TEST_PG_ADMIN_URL =
  process.env.TEST_DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export type TestDatabase = { name: string; url: string; pool: Pool; drop: () => Promise<void> };

function withDatabase(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Runs `fn` on a client of the admin database (TEST_DATABASE_ADMIN_URL), closed afterwards. */
export async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * The template's name for this tree's migrations: `custody_template_` and a hash of the migration
 * runner (ops/migrate.ts) and every migration folder's schema, path and files (names and
 * contents), in migration order.
 */
export function migrationsTemplateName(
  modules: readonly ModuleMigrations[] = MODULE_MIGRATIONS,
  root: string = repoRoot,
): string {
  const hash = createHash("sha256");
  hash.update(readFileSync(path.join(repoRoot, "ops", "migrate.ts")));
  for (const { schema, dir } of modules) {
    hash.update(`${schema}\0${dir}\0`);
    for (const file of readdirSync(path.join(root, dir)).sort()) {
      if (!file.endsWith(".sql")) continue;
      hash.update(`${file}\0`);
      hash.update(readFileSync(path.join(root, dir, file)));
      hash.update("\0");
    }
  }
  return `custody_template_${hash.digest("hex").slice(0, 20)}`;
}

const TEMPLATE_LOCK = 0x6375_7374_7470; // "custtp": one builder per server at a time
let template: Promise<string> | undefined;

/**
 * The migrated template for this tree's migrations, built once per server (later runs reuse it).
 * It is migrated under a scratch name (`custody_test_tpl_<pid>_<hex>`, which the orphan sweep
 * drops if the builder dies half-way), renamed only once complete, and closed to connections so
 * nothing can hold it open and block a clone. Concurrent builders queue on an advisory lock.
 */
export function migratedTemplate(): Promise<string> {
  template ??= buildTemplate().catch((error: unknown) => {
    template = undefined;
    throw error;
  });
  return template;
}

async function buildTemplate(): Promise<string> {
  const name = migrationsTemplateName();
  const exists = async (c: pg.Client) =>
    (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1;
  if (await admin(exists)) return name;
  return admin(async (c) => {
    // Session-level: held until unlocked below or this connection ends.
    await c.query("SELECT pg_advisory_lock($1)", [TEMPLATE_LOCK]);
    try {
      if (await exists(c)) return name;
      const scratch = `custody_test_tpl_${process.pid}_${randomBytes(4).toString("hex")}`;
      await c.query(`CREATE DATABASE ${scratch}`);
      try {
        await migrate(withDatabase(TEST_PG_ADMIN_URL, scratch));
        await c.query(`ALTER DATABASE ${scratch} RENAME TO ${name}`);
      } catch (error) {
        await c.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`).catch(() => {});
        throw error;
      }
      await c.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
      return name;
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [TEMPLATE_LOCK]).catch(() => {});
    }
  });
}

export async function createTestDatabase(
  options: { migrate?: boolean; poolSize?: number } = {},
): Promise<TestDatabase> {
  const run = testRunPid();
  const name = `custody_test_${process.env.VITEST_POOL_ID ?? "0"}_${run ?? process.pid}_${randomBytes(4).toString("hex")}`;
  if (options.migrate ?? true) {
    const from = await migratedTemplate();
    await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${from}`)).catch(
      async (error: unknown) => {
        // The template was dropped since this process looked (a tidy-up): build it again, once.
        if ((error as { code?: string }).code !== "3D000") throw error;
        template = undefined;
        const again = await migratedTemplate();
        await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${again}`));
      },
    );
  } else {
    await admin((c) => c.query(`CREATE DATABASE ${name}`));
  }
  const url = withDatabase(TEST_PG_ADMIN_URL, name);
  const pool = createPool(url, { max: options.poolSize ?? 10, applicationName: name });
  let dropped = false;
  return {
    name,
    url,
    pool,
    async drop() {
      if (dropped) return;
      dropped = true;
      await pool.end().catch(() => {});
      await admin((c) =>
        // In a run: closed to new connections (gone to the file), the run's process drops it.
        c.query(
          run === undefined
            ? `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`
            : `ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`,
        ),
      );
    },
  };
}

/** Test databases dropped together: see `droppedTogether`. */
export type DroppedTogether = {
  /** A fresh migrated database; the caller ends its pool when done (`dropAll` drops it). */
  create: () => Promise<TestDatabase>;
  /** Drops every database `create` gave, at once (a file's afterAll). */
  dropAll: () => Promise<void>;
};

/**
 * For a file that makes databases test after test and closes them together when it ends. In a
 * vitest run the run's end drops them (see above); elsewhere they are dropped at once (eight at a
 * time: each holds an admin connection of the server's), so their drops share checkpoints.
 */
export function droppedTogether(): DroppedTogether {
  const made: TestDatabase[] = [];
  return {
    async create() {
      const db = await createTestDatabase();
      made.push(db);
      return db;
    },
    async dropAll() {
      await mapLimit(made.splice(0), 8, (db) => db.drop());
    },
  };
}

/**
 * The pid in a test or simulation database's name (`custody_test_<pool>_<pid>_<hex>`,
 * `custody_test_fresh_<pid>_<hex>`, `custody_sim_<pid>_<tag>_<n>`), or null for any other name.
 */
export function testDatabaseOwner(name: string): number | null {
  const m =
    /^custody_test_[a-z0-9]+_(\d+)_[0-9a-f]{8}$/.exec(name) ?? /^custody_sim_(\d+)_/.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * Drops the test databases `owner` (a vitest run's pid, ops/testing/run.ts) made, connected or not;
 * `closed`: only those their file has closed (`drop()`). Eight at a time: drops made at once share
 * a checkpoint, and each holds an admin connection of the server's. Returns the names dropped.
 */
export async function dropTestDatabasesOf(
  owner: number,
  options: { closed?: boolean } = {},
): Promise<string[]> {
  const { rows } = await admin((c) =>
    c.query<{ datname: string }>(
      `SELECT datname FROM pg_database
        WHERE datname LIKE 'custody\\_test\\_%' AND (NOT $1 OR NOT datallowconn)`,
      [options.closed ?? false],
    ),
  );
  const names = rows.map((r) => r.datname).filter((name) => testDatabaseOwner(name) === owner);
  await mapLimit(names, 8, (name) =>
    admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
  );
  return names;
}

/** Whether a process with this pid exists on this machine (EPERM: it does, owned by another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Drops the test and simulation databases a process that died left behind (a killed run cannot
 * clean up after itself): those whose owner pid is gone and which nobody is connected to. Only
 * when the server is on this machine, where a pid means something; returns the names dropped.
 */
export async function dropOrphanedTestDatabases(adminUrl = TEST_PG_ADMIN_URL): Promise<string[]> {
  const host = new URL(adminUrl).hostname;
  if (!["127.0.0.1", "localhost", "[::1]", "::1", ""].includes(host)) return [];
  return admin(async (c) => {
    const { rows } = await c.query<{ datname: string }>(
      `SELECT datname FROM pg_database d
        WHERE (datname LIKE 'custody\\_test\\_%' OR datname LIKE 'custody\\_sim\\_%')
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)`,
    );
    const dropped: string[] = [];
    for (const { datname } of rows) {
      const pid = testDatabaseOwner(datname);
      if (pid === null || processAlive(pid)) continue;
      // Plain DROP: a session that connected since the check keeps its database.
      await c.query(`DROP DATABASE IF EXISTS "${datname}"`).then(
        () => dropped.push(datname),
        () => {},
      );
    }
    return dropped;
  });
}

/**
 * The pages of `table` ("schema.name") read so far (heap, index and toast, cached or not) and its
 * sequential scans, as Postgres's statistics count them: for tests that a read stays a few pages.
 * `reader` is the one connection whose reads are counted: its statistics are flushed first (they
 * reach the views once its backend goes idle); `db` reads the views.
 */
export async function tablePagesRead(
  reader: Pool,
  db: Pool,
  table: string,
): Promise<{ pages: number; seqScans: number }> {
  const [schema, name] = table.split(".");
  await reader.query("SELECT pg_stat_force_next_flush()");
  await reader.query("SELECT 1"); // flushed once this backend went idle after the one above
  const { rows } = await db.query<{ pages: string; seq_scans: string }>(
    `SELECT (coalesce(s.heap_blks_read, 0) + coalesce(s.heap_blks_hit, 0)
           + coalesce(s.idx_blks_read, 0) + coalesce(s.idx_blks_hit, 0)
           + coalesce(s.toast_blks_read, 0) + coalesce(s.toast_blks_hit, 0))::text AS pages,
            t.seq_scan::text AS seq_scans
       FROM pg_statio_user_tables s JOIN pg_stat_user_tables t USING (relid)
      WHERE s.schemaname = $1 AND s.relname = $2`,
    [schema, name],
  );
  return { pages: Number(rows[0]!.pages), seqScans: Number(rows[0]!.seq_scans) };
}
