import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { appendAudit, listAudit, verifyAuditChain } from "../foundation/audit.js";
import { repoRoot } from "../foundation/config.js";
import type { Pool } from "../foundation/db.js";
import { MODULE_MIGRATIONS, migrate } from "./migrate.js";
import { createTestDatabase, type TestDatabase } from "./testing/database.js";

const fixtures = [{ schema: "fixture", dir: "ops/testing/fixtures/migrations" }];

/** Tables, columns, indexes and recorded migrations: what "the same schema" means here. */
async function catalog(pool: Pool, schemas: string[]) {
  const columns = await pool.query(
    `SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = ANY($1)
      ORDER BY 1, 2, 3`,
    [schemas],
  );
  const indexes = await pool.query(
    "SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname = ANY($1) ORDER BY 1, 2",
    [schemas],
  );
  return { columns: columns.rows, indexes: indexes.rows };
}

/** Functions (with their bodies), triggers and sequences of `schemas`. */
async function routines(pool: Pool, schemas: string[]) {
  const functions = await pool.query(
    `SELECT n.nspname || '.' || p.proname AS name, pg_get_functiondef(p.oid) AS def
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = ANY($1) ORDER BY 1`,
    [schemas],
  );
  const triggers = await pool.query(
    `SELECT c.relnamespace::regnamespace::text AS schema, c.relname, t.tgname,
            pg_get_triggerdef(t.oid) AS def
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE NOT t.tgisinternal AND c.relnamespace::regnamespace::text = ANY($1) ORDER BY 1, 2, 3`,
    [schemas],
  );
  const sequences = await pool.query(
    "SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = ANY($1) ORDER BY 1, 2",
    [schemas],
  );
  return { functions: functions.rows, triggers: triggers.rows, sequences: sequences.rows };
}

describe("migrate", () => {
  const dbs: TestDatabase[] = [];
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
  });

  it("applies each module's migrations into its own schema, and a second run changes nothing", async () => {
    const db = await createTestDatabase({ migrate: false });
    dbs.push(db);
    const first = await migrate(db.url, { modules: fixtures });
    expect(first).toEqual([{ schema: "fixture", applied: ["0001_accounts", "0002_index"] }]);
    const before = await catalog(db.pool, ["fixture"]);
    expect(before.columns.map((c) => `${c.table_name}.${c.column_name}`)).toEqual(
      expect.arrayContaining([
        "fixture_accounts.balance",
        "fixture_accounts.frozen",
        "schema_migrations.name",
      ]),
    );
    const second = await migrate(db.url, { modules: fixtures });
    expect(second).toEqual([{ schema: "fixture", applied: [] }]);
    expect(await catalog(db.pool, ["fixture"])).toEqual(before);
  });

  it("two concurrent runs both succeed and leave the same schema as one run", async () => {
    const [single, parallel] = [
      await createTestDatabase({ migrate: false }),
      await createTestDatabase({ migrate: false }),
    ];
    dbs.push(single, parallel);
    await migrate(single.url, { modules: fixtures });
    const results = await Promise.all([
      migrate(parallel.url, { modules: fixtures }),
      migrate(parallel.url, { modules: fixtures }),
    ]);
    // Exactly one of the two applied the migrations; the other found them applied.
    expect(results.map((r) => r[0]!.applied.length).sort()).toEqual([0, 2]);
    expect(await catalog(parallel.pool, ["fixture"])).toEqual(
      await catalog(single.pool, ["fixture"]),
    );
    const { rows } = await parallel.pool.query(
      "SELECT name FROM fixture.schema_migrations ORDER BY name",
    );
    expect(rows.map((r) => r.name)).toEqual(["0001_accounts", "0002_index"]);
  });

  it("the real module migrations apply twice in parallel with no error and one schema per module", async () => {
    const db = await createTestDatabase({ migrate: false });
    dbs.push(db);
    await Promise.all([migrate(db.url), migrate(db.url)]);
    await migrate(db.url);
    const { rows } = await db.pool.query(
      "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1) ORDER BY 1",
      [MODULE_MIGRATIONS.map((m) => m.schema)],
    );
    expect(rows.map((r) => r.nspname)).toEqual(MODULE_MIGRATIONS.map((m) => m.schema).sort());
  });

  it("a database migrated in the old hand-kept order is up to date and the same as a fresh one", async () => {
    // The list ops/migrate.ts held before discovery (issue 16): existing databases were built so.
    const oldOrder = ["chain", "ledger", "custody", "recon", "attest", "api"];
    const [old, fresh] = [
      await createTestDatabase({ migrate: false }),
      await createTestDatabase({ migrate: false }),
    ];
    dbs.push(old, fresh);
    await migrate(old.url, {
      modules: oldOrder.map((schema) => MODULE_MIGRATIONS.find((m) => m.schema === schema)!),
    });
    const again = await migrate(old.url);
    expect(again.map((r) => r.schema)).toEqual(MODULE_MIGRATIONS.map((m) => m.schema));
    // Only foundation's folder, newer than that list: it names the audit schema api's 0008 moved
    // the audit log into.
    expect(again.flatMap((r) => r.applied)).toEqual(["0001_audit"]);
    await migrate(fresh.url);
    const schemas = [...oldOrder, "audit"];
    expect(await catalog(old.pool, schemas)).toEqual(await catalog(fresh.pool, schemas));
  });

  it("moves an existing api.audit_log into the audit schema with its rows, chain, sequence, triggers and functions", async () => {
    // A database from before the move: every migration but foundation's, api's move and api's
    // later ones (written after the move, they may use the audit schema).
    const move = "0008_audit_log_to_audit.sql";
    const apiFiles = readdirSync(path.join(repoRoot, "api", "migrations")).sort();
    const apiBefore = mkdtempSync(path.join(tmpdir(), "api-migrations-"));
    for (const f of apiFiles)
      if (f < move)
        copyFileSync(path.join(repoRoot, "api", "migrations", f), path.join(apiBefore, f));
    const [existing, fresh] = [
      await createTestDatabase({ migrate: false }),
      await createTestDatabase({ migrate: false }),
    ];
    dbs.push(existing, fresh);
    try {
      await migrate(existing.url, {
        modules: MODULE_MIGRATIONS.filter((m) => m.schema !== "audit").map((m) =>
          m.schema === "api" ? { ...m, dir: apiBefore } : m,
        ),
      });
    } finally {
      rmSync(apiBefore, { recursive: true, force: true });
    }
    for (const i of [1, 2, 3])
      await existing.pool.query(
        "INSERT INTO api.audit_log (actor, action, entity_type, entity_id, details) VALUES ('ops', $1, 't', $2, $3)",
        [`test.step${i}`, `e${i}`, { i }],
      );
    const before = await existing.pool.query(
      "SELECT id::text, seq::text, prev_hash, hash, actor, action, details FROM api.audit_log ORDER BY id",
    );
    expect(before.rows.map((r) => r.seq)).toEqual(["1", "2", "3"]);

    const applied = await migrate(existing.url);
    expect(applied.flatMap((r) => r.applied.map((a) => `${r.schema}/${a}`))).toEqual([
      "audit/0001_audit",
      ...apiFiles.filter((f) => f >= move).map((f) => `api/${f.replace(".sql", "")}`),
    ]);
    const after = await existing.pool.query(
      "SELECT id::text, seq::text, prev_hash, hash, actor, action, details FROM audit.audit_log ORDER BY id",
    );
    expect(after.rows).toEqual(before.rows);
    expect(
      (await existing.pool.query("SELECT to_regclass('api.audit_log') AS t")).rows[0].t,
    ).toBeNull();
    expect(await verifyAuditChain(existing.pool)).toMatchObject({ ok: true, rows: 3 });

    // The moved triggers and functions still chain new rows and refuse edits.
    await appendAudit(existing.pool, {
      actor: "ops",
      action: "test.after",
      entityType: "t",
      entityId: "e4",
    });
    expect(await verifyAuditChain(existing.pool)).toMatchObject({
      ok: true,
      rows: 4,
      head: { seq: 4 },
    });
    expect((await listAudit(existing.pool, { limit: 10 })).map((e) => e.id)).toEqual([
      ...before.rows.map((r) => r.id),
      String(Number(before.rows[2].id) + 1),
    ]);
    await expect(
      existing.pool.query("UPDATE audit.audit_log SET actor = 'x' WHERE seq = 1"),
    ).rejects.toThrow(/audit\.audit_log is append-only/);

    // ... and the result is what a fresh database gets, functions and triggers included.
    await migrate(fresh.url);
    const schemas = ["audit", "api"];
    expect(await catalog(existing.pool, schemas)).toEqual(await catalog(fresh.pool, schemas));
    expect(await routines(existing.pool, schemas)).toEqual(await routines(fresh.pool, schemas));
    expect((await routines(fresh.pool, schemas)).functions.map((f) => f.name)).toEqual([
      // api 0014: numbers each webhook event within its subject (not part of the move)
      "api.webhook_event_sequence",
      "audit.audit_canonical",
      "audit.audit_chain_link",
      "audit.audit_log_append_only",
    ]);
  });
});
