/**
 * A fresh Postgres database per test file (created, migrated, dropped), so test files run in
 * parallel without seeing each other's rows.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createPool, type Pool } from "../../foundation/db.js";
import { migrate } from "../migrate.js";

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

export async function createTestDatabase(
  options: { migrate?: boolean; poolSize?: number } = {},
): Promise<TestDatabase> {
  const name = `custody_test_${process.env.VITEST_POOL_ID ?? "0"}_${process.pid}_${randomBytes(4).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = withDatabase(TEST_PG_ADMIN_URL, name);
  if (options.migrate ?? true) await migrate(url);
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
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
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
