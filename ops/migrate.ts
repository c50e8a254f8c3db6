/**
 * Migrations: raw SQL files per module (node-pg-migrate's SQL loader), one Postgres schema per
 * module. A blocking advisory lock makes concurrent `custody-node migrate` runs queue up instead of
 * failing, so two processes starting at once both succeed and leave one schema.
 */
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { runner } from "node-pg-migrate";
import pg from "pg";
import { repoRoot } from "../foundation/config.js";

/** Order matters: later modules may reference earlier ones. */
export const MODULE_MIGRATIONS = [
  { schema: "chain", dir: "indexers/migrations" },
  { schema: "ledger", dir: "ledger/migrations" },
  { schema: "custody", dir: "signer/migrations" },
  { schema: "recon", dir: "ledger/recon/migrations" },
  { schema: "attest", dir: "ledger/attest/migrations" },
  { schema: "api", dir: "api/migrations" },
] as const;

const MIGRATE_LOCK = 0x6375_7374_6f64; // "custod"

export type MigrateResult = { schema: string; applied: string[] }[];

export async function migrate(
  databaseUrl: string,
  options: {
    log?: (msg: string) => void;
    /** Override the module list (tests use fixture folders); dirs are relative to the repo root. */
    modules?: readonly { schema: string; dir: string }[];
  } = {},
): Promise<MigrateResult> {
  const log = options.log ?? (() => {});
  const client = new pg.Client({
    connectionString: databaseUrl,
    application_name: "custody-node migrate",
  });
  await client.connect();
  try {
    await client.query("SET client_min_messages TO warning");
    await client.query("SELECT pg_advisory_lock($1)", [MIGRATE_LOCK]);
    const results: MigrateResult = [];
    for (const mod of options.modules ?? MODULE_MIGRATIONS) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${mod.schema}`);
      const dir = path.resolve(repoRoot, mod.dir);
      if (!existsSync(dir) || !readdirSync(dir).some((f) => f.endsWith(".sql"))) {
        results.push({ schema: mod.schema, applied: [] });
        continue;
      }
      const applied = await runner({
        dbClient: client,
        dir,
        direction: "up",
        schema: mod.schema,
        migrationsSchema: mod.schema,
        migrationsTable: "schema_migrations",
        noLock: true,
        checkOrder: true,
        singleTransaction: true,
        log: () => {},
        logger: { debug: () => {}, info: () => {}, warn: log, error: log },
      });
      results.push({ schema: mod.schema, applied: applied.map((m) => m.name) });
      for (const m of applied) log(`applied ${mod.schema}/${m.name}`);
    }
    await client.query("SET search_path TO DEFAULT");
    return results;
  } finally {
    await client.query("SELECT pg_advisory_unlock_all()").catch(() => {});
    await client.end();
  }
}
