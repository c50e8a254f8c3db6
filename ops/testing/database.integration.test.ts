import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { MODULE_MIGRATIONS, migrate } from "../migrate.js";
import {
  admin,
  createTestDatabase,
  dropOrphanedTestDatabases,
  dropTestDatabasesOf,
  migratedTemplate,
  migrationsTemplateName,
  TEST_PG_ADMIN_URL,
  type TestDatabase,
  testDatabaseOwner,
} from "./database.js";
import { testRunPid } from "./run.js";

const exists = (name: string) =>
  admin(
    async (c) =>
      (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1,
  );

// A pid that belonged to a process that has exited.
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(r.stdout.toString());
}

describe("leftover test databases", () => {
  const hex = () => randomBytes(4).toString("hex");
  const dead = deadPid();
  const orphan = `custody_test_9_${dead}_${hex()}`;
  const orphanSim = `custody_sim_${dead}_t${hex()}_0`;
  const mine = `custody_test_9_${process.pid}_${hex()}`;
  const other = `custody_bench_${dead}_${hex()}`;
  const all = [orphan, orphanSim, mine, other];

  afterAll(() =>
    admin(async (c) => {
      for (const name of all) await c.query(`DROP DATABASE IF EXISTS "${name}"`);
    }),
  );

  it("reads the owner pid from the names tests and simulations use", () => {
    expect(testDatabaseOwner("custody_test_3_4242_0a1b2c3d")).toBe(4242);
    expect(testDatabaseOwner("custody_test_fresh_4242_0a1b2c3d")).toBe(4242);
    expect(testDatabaseOwner("custody_sim_4242_seed7_3")).toBe(4242);
    expect(testDatabaseOwner("custody_bench_scale")).toBeNull();
    expect(testDatabaseOwner("custody_test_3_4242_notahex!")).toBeNull();
  });

  it("drops those of dead processes, keeps a live process's, other names and connected ones", async () => {
    await admin(async (c) => {
      for (const name of all) await c.query(`CREATE DATABASE "${name}"`);
    });
    const connectedName = `custody_test_9_${dead}_${hex()}`;
    all.push(connectedName);
    await admin((c) => c.query(`CREATE DATABASE "${connectedName}"`));
    const u = new URL(TEST_PG_ADMIN_URL);
    u.pathname = `/${connectedName}`;
    const held = new pg.Client({ connectionString: u.toString() });
    await held.connect();
    try {
      const dropped = await dropOrphanedTestDatabases();
      expect(dropped).toEqual(expect.arrayContaining([orphan, orphanSim]));
      expect(dropped).not.toContain(mine);
      expect(dropped).not.toContain(connectedName);
      expect(await exists(orphan)).toBe(false);
      expect(await exists(orphanSim)).toBe(false);
      expect(await exists(mine)).toBe(true);
      expect(await exists(other)).toBe(true);
      expect(await exists(connectedName)).toBe(true);
    } finally {
      await held.end();
    }
  });

  it("does nothing against a server on another machine (a pid there means nothing here)", async () => {
    const u = new URL(TEST_PG_ADMIN_URL);
    u.hostname = "db.example.internal";
    expect(await dropOrphanedTestDatabases(u.toString())).toEqual([]);
  });
});

describe("a run's test databases", () => {
  const hex = () => randomBytes(4).toString("hex");
  const ended = deadPid(); // stands for a run's pid: nothing else names databases for it
  const runs = [`custody_test_1_${ended}_${hex()}`, `custody_test_2_${ended}_${hex()}`];
  const others = [`custody_test_1_${process.pid}_${hex()}`, `custody_sim_${ended}_t${hex()}_0`];
  afterAll(() =>
    admin(async (c) => {
      for (const name of [...runs, ...others]) await c.query(`DROP DATABASE IF EXISTS "${name}"`);
    }),
  );

  it("are named for the run; a file's drop closes its own and leaves the DROP to the run's end", async () => {
    // before the fix: expected false to be true (drop() dropped it at once, waiting for a
    // checkpoint), and it was named for the worker process (expected 1957 to be undefined)
    const db = await createTestDatabase({ migrate: false });
    await db.drop();
    expect(await exists(db.name)).toBe(true);
    expect(testRunPid()).toBeDefined();
    expect(testDatabaseOwner(db.name)).toBe(testRunPid());
    const late = new pg.Client({ connectionString: db.url });
    await expect(late.connect()).rejects.toThrow(/is not currently accepting connections/);
    await late.end().catch(() => {});
  });

  it("are dropped by the run once closed, the rest at its end, and no one else's", async () => {
    // before the fix: TypeError: dropTestDatabasesOf is not a function
    const [closed, open] = runs as [string, string];
    await admin(async (c) => {
      for (const name of [...runs, ...others]) await c.query(`CREATE DATABASE "${name}"`);
      await c.query(`ALTER DATABASE "${closed}" WITH ALLOW_CONNECTIONS false`);
    });
    expect(await dropTestDatabasesOf(ended, { closed: true })).toEqual([closed]);
    expect(await exists(closed)).toBe(false);
    expect(await exists(open)).toBe(true);
    expect(await dropTestDatabasesOf(ended)).toEqual([open]);
    expect(await exists(open)).toBe(false);
    for (const name of others) expect(await exists(name), name).toBe(true);
  });
});

/** Every module schema's columns, indexes, recorded migrations and row counts. */
async function schemaDump(pool: Pool) {
  const schemas = MODULE_MIGRATIONS.map((m) => m.schema);
  const columns = await pool.query(
    `SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = ANY($1) ORDER BY 1, 2, 3`,
    [schemas],
  );
  const indexes = await pool.query(
    "SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY($1) ORDER BY 1, 2",
    [schemas],
  );
  const tables = await pool.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' ORDER BY 1, 2`,
    [schemas],
  );
  const rows: Record<string, number> = {};
  for (const { schema, name } of tables.rows)
    rows[`${schema}.${name}`] = (
      await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."${name}"`)
    ).rows[0]!.n;
  const applied: Record<string, string[]> = {};
  for (const schema of schemas)
    applied[schema] = (
      await pool.query<{ name: string }>(
        `SELECT name FROM "${schema}".schema_migrations ORDER BY run_on, id`,
      )
    ).rows.map((r) => r.name);
  return { columns: columns.rows, indexes: indexes.rows, rows, applied };
}

describe("migrated test databases (cloned from a template)", () => {
  const dbs: TestDatabase[] = [];
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
  });

  it("equal a database migrated from scratch, and migrating one again applies nothing", async () => {
    const cloned = await createTestDatabase();
    const scratch = await createTestDatabase({ migrate: false });
    dbs.push(cloned, scratch);
    await migrate(scratch.url);
    const dump = await schemaDump(cloned.pool);
    expect(Object.values(dump.applied).flat().length).toBeGreaterThan(MODULE_MIGRATIONS.length);
    expect(dump).toEqual(await schemaDump(scratch.pool));
    expect((await migrate(cloned.url)).flatMap((r) => r.applied)).toEqual([]);
  });

  it("come from one template per set of migrations, closed to connections", async () => {
    const name = await migratedTemplate();
    expect(name).toBe(migrationsTemplateName());
    const { rows } = await admin((c) =>
      c.query<{ datallowconn: boolean }>(
        "SELECT datallowconn FROM pg_database WHERE datname = $1",
        [name],
      ),
    );
    expect(rows).toEqual([{ datallowconn: false }]);
    // Orphan sweeps never take it: its name is no test database's.
    expect(testDatabaseOwner(name)).toBeNull();
    const second = await createTestDatabase();
    dbs.push(second);
    expect(await migratedTemplate()).toBe(name);
  });

  it("name the template by the migrations' contents: an edited or added file makes another", () => {
    const root = mkdtempSync(path.join(tmpdir(), "template-name-"));
    try {
      const dir = "fixture/migrations";
      cpSync(path.join(repoRoot, "ops/testing/fixtures/migrations"), path.join(root, dir), {
        recursive: true,
      });
      const modules = [{ schema: "fixture", dir }];
      const first = migrationsTemplateName(modules, root);
      expect(first).toMatch(/^custody_template_[0-9a-f]{20}$/);
      expect(migrationsTemplateName(modules, root)).toBe(first);
      appendFileSync(path.join(root, dir, "0002_index.sql"), "\n-- edited\n");
      const edited = migrationsTemplateName(modules, root);
      expect(edited).not.toBe(first);
      writeFileSync(path.join(root, dir, "0003_more.sql"), "SELECT 1;\n");
      const added = migrationsTemplateName(modules, root);
      expect(new Set([first, edited, added]).size).toBe(3);
      expect(migrationsTemplateName(MODULE_MIGRATIONS)).not.toBe(added);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
