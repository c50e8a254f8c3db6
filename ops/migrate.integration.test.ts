import { afterAll, describe, expect, it } from "vitest";
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
    expect(again.flatMap((r) => r.applied)).toEqual([]);
    await migrate(fresh.url);
    expect(await catalog(old.pool, oldOrder)).toEqual(await catalog(fresh.pool, oldOrder));
  });
});
