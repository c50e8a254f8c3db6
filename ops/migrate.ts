/**
 * Migrations: raw SQL files per module (node-pg-migrate's SQL loader), one Postgres schema per
 * module, discovered from the source tree (no hand-kept list). A blocking advisory lock makes
 * concurrent `custody-node migrate` runs queue up instead of failing, so two processes starting at
 * once both succeed and leave one schema.
 *
 * The rule (checked by `discoverMigrations`, which runs when this file loads, so `start` and
 * `migrate` fail before touching the database, and in ops/migrate.test.ts):
 * - Where: a module's schema lives in `<module>/migrations/` or `<module>/<sub>/migrations/`
 *   (`testing/`, `fixtures/` and `node_modules/` excluded). A migrations folder anywhere else in
 *   the source folders is an error, so none is silently skipped.
 * - Which schema: a folder owns exactly one schema, named by its first (lowest-numbered) file,
 *   `NNNN_<schema>.sql` (indexers/migrations/0001_chain.sql owns `chain`). Two folders claiming one
 *   schema is an error. The migrations table is `<schema>.schema_migrations`.
 * - Numbering: every file is `NNNN_<name>.sql` (four digits, lowercase words); numbers are per
 *   folder (each schema has its own table, so folders cannot collide), and two files of one folder
 *   sharing a number is an error. A new migration takes the folder's highest number + 1; an
 *   applied file is never renamed or renumbered (the table records names). A new file numbered
 *   below an applied one fails the run (node-pg-migrate's checkOrder).
 * - Order: modules in layering order (MIGRATION_MODULES: foundation, indexers, ledger, signer, api;
 *   chains/ holds no database code, ops/ and subgraphs/ own no schema); within a module its own
 *   folder first, then its sub-folders by name. A migration may reference only schemas migrated
 *   before it (the lower layers), never a later one.
 * - Rolling deployments: the previous revision keeps serving on the schema a new one migrates, so
 *   a migration only adds (tables, nullable or defaulted columns, indexes, wider checks); one that
 *   drops, renames, moves, retypes or makes required is listed in docs/deploy.md ("Schema changes
 *   during a deployment") with the services to stop first (checked in ops/migrate.test.ts).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { runner } from "node-pg-migrate";
import pg from "pg";
import { repoRoot } from "../foundation/config.js";
import { BaseError } from "../foundation/errors.js";

/** Modules that may own a schema, in layering order (a later one may reference an earlier one). */
export const MIGRATION_MODULES = ["foundation", "indexers", "ledger", "signer", "api"] as const;
/** Every source folder searched for misplaced migrations folders. */
const SOURCE_DIRS = ["api", "chains", "foundation", "indexers", "ledger", "ops", "signer"];
const SKIPPED = new Set(["node_modules", "testing", "fixtures"]);
const FILE = /^(\d{4})_([a-z][a-z0-9_]*)\.sql$/;

/** One schema's migrations: `dir` is relative to the source root. */
export type ModuleMigrations = { schema: string; dir: string };

/** The source tree's migrations break the rule in the header; lists every problem at once. */
export class MigrationLayoutError extends BaseError {
  override name = "MigrationLayoutError";
  readonly problems: string[];
  constructor(problems: string[]) {
    super(
      `Migrations break the layout rule (ops/migrate.ts):\n${problems.map((p) => `  - ${p}`).join("\n")}`,
      { code: "MIGRATIONS_LAYOUT", meta: { problems } },
    );
    this.problems = problems;
  }
}

/** The schemas to migrate, in order, found under `root` by the rule in the header. */
export function discoverMigrations(root: string = repoRoot): ModuleMigrations[] {
  const problems: string[] = [];
  const found: ModuleMigrations[] = [];
  const owner = new Map<string, string>();
  for (const mod of MIGRATION_MODULES) {
    const subs = subfolders(path.join(root, mod)).filter((s) => !SKIPPED.has(s));
    const dirs = [`${mod}/migrations`, ...subs.sort().map((s) => `${mod}/${s}/migrations`)];
    for (const dir of dirs) {
      if (!isDirectory(path.join(root, dir))) continue;
      const files = readdirSync(path.join(root, dir))
        .filter((f) => !f.startsWith("."))
        .sort();
      const numbered: { number: string; name: string; file: string }[] = [];
      for (const file of files) {
        const match = FILE.exec(file);
        if (match) numbered.push({ number: match[1]!, name: match[2]!, file });
        else problems.push(`${dir}/${file}: not named NNNN_<name>.sql`);
      }
      for (let i = 1; i < numbered.length; i++)
        if (numbered[i]!.number === numbered[i - 1]!.number)
          problems.push(
            `${dir}: ${numbered[i - 1]!.file} and ${numbered[i]!.file} share number ${numbered[i]!.number}`,
          );
      const first = numbered[0];
      if (!first) {
        problems.push(`${dir}: holds no migration (its first file names the schema it owns)`);
        continue;
      }
      const claimed = owner.get(first.name);
      if (claimed) problems.push(`schema ${first.name} is claimed by ${claimed} and ${dir}`);
      owner.set(first.name, dir);
      found.push({ schema: first.name, dir });
    }
  }
  const discovered = new Set(found.map((m) => m.dir));
  for (const src of SOURCE_DIRS)
    for (const dir of migrationsFolders(root, src))
      if (!discovered.has(dir))
        problems.push(
          `${dir}: not where migrations are discovered (<module>/migrations or <module>/<sub>/migrations of ${MIGRATION_MODULES.join(", ")})`,
        );
  if (problems.length > 0) throw new MigrationLayoutError(problems);
  return found;
}

/** Every module's migrations, in order: discovered when this file loads (see the header). */
export const MODULE_MIGRATIONS: readonly ModuleMigrations[] = discoverMigrations();

function isDirectory(dir: string): boolean {
  return existsSync(dir) && statSync(dir).isDirectory();
}

function subfolders(dir: string): string[] {
  if (!isDirectory(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

/** Folders named `migrations` under `root/src`, relative to root, outside the skipped folders. */
function migrationsFolders(root: string, src: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of subfolders(path.join(root, rel))) {
      if (SKIPPED.has(name)) continue;
      const child = `${rel}/${name}`;
      if (name === "migrations") out.push(child);
      else walk(child);
    }
  };
  walk(src);
  return out;
}

const MIGRATE_LOCK = 0x6375_7374_6f64; // "custod"

export type MigrateResult = { schema: string; applied: string[] }[];

export async function migrate(
  databaseUrl: string,
  options: {
    log?: (msg: string) => void;
    /** Override the module list (tests use fixture folders); dirs are relative to the repo root. */
    modules?: readonly ModuleMigrations[];
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
      const applied = await runner({
        dbClient: client,
        dir: path.resolve(repoRoot, mod.dir),
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
