/**
 * The migrations layout rule (ops/migrate.ts's header): discovery order, one schema per folder,
 * numbers unique in a folder, no migrations folder where discovery does not look. And the rolling
 * deployment rule (docs/deploy.md, "Schema changes during a deployment"): a migration the previous
 * revision cannot run on is listed there.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import { discoverMigrations, MigrationLayoutError, MODULE_MIGRATIONS } from "./migrate.js";

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A source tree holding the given files (paths relative to its root; empty SQL). */
function tree(files: string[]): string {
  const root = mkdtempSync(path.join(tmpdir(), "migrations-layout-"));
  roots.push(root);
  for (const f of files) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    writeFileSync(path.join(root, f), "SELECT 1;\n");
  }
  return root;
}

function problems(root: string): string[] {
  try {
    discoverMigrations(root);
  } catch (error) {
    expect(error).toBeInstanceOf(MigrationLayoutError);
    expect((error as MigrationLayoutError).code).toBe("MIGRATIONS_LAYOUT");
    return (error as MigrationLayoutError).problems;
  }
  throw new Error("expected a MigrationLayoutError");
}

describe("discoverMigrations", () => {
  it("finds this repository's schemas in layering order, with the names applied databases hold", () => {
    expect(MODULE_MIGRATIONS).toEqual([
      { schema: "audit", dir: "foundation/migrations" },
      { schema: "chain", dir: "indexers/migrations" },
      { schema: "ledger", dir: "ledger/migrations" },
      { schema: "attest", dir: "ledger/attest/migrations" },
      { schema: "recon", dir: "ledger/recon/migrations" },
      { schema: "custody", dir: "signer/migrations" },
      { schema: "api", dir: "api/migrations" },
    ]);
  });

  it("orders modules by layer, a module's own folder before its sub-folders (by name), and skips test support", () => {
    const root = tree([
      "api/migrations/0001_api.sql",
      "signer/zeta/migrations/0001_zeta.sql",
      "signer/migrations/0001_custody.sql",
      "signer/migrations/0100_more.sql",
      "ledger/recon/migrations/0001_recon.sql",
      "ledger/attest/migrations/0001_attest.sql",
      "ledger/migrations/0001_ledger.sql",
      "ledger/testing/migrations/0001_scratch.sql",
      "indexers/migrations/0001_chain.sql",
      "foundation/migrations/0001_base.sql",
      "ops/testing/fixtures/migrations/0001_accounts.sql",
      "indexers/fixtures/migrations/0001_fixture.sql",
    ]);
    expect(discoverMigrations(root)).toEqual([
      { schema: "base", dir: "foundation/migrations" },
      { schema: "chain", dir: "indexers/migrations" },
      { schema: "ledger", dir: "ledger/migrations" },
      { schema: "attest", dir: "ledger/attest/migrations" },
      { schema: "recon", dir: "ledger/recon/migrations" },
      { schema: "custody", dir: "signer/migrations" },
      { schema: "zeta", dir: "signer/zeta/migrations" },
      { schema: "api", dir: "api/migrations" },
    ]);
  });

  it("the first (lowest-numbered) file names the schema, whatever the first number is", () => {
    const root = tree(["api/migrations/0200_more.sql", "api/migrations/0100_api.sql"]);
    expect(discoverMigrations(root)).toEqual([{ schema: "api", dir: "api/migrations" }]);
  });

  it("fails when two folders claim one schema", () => {
    const root = tree([
      "signer/migrations/0001_custody.sql",
      "signer/sweeps/migrations/0001_custody.sql",
    ]);
    expect(problems(root)).toEqual([
      "schema custody is claimed by signer/migrations and signer/sweeps/migrations",
    ]);
  });

  it("fails when two files of one folder share a number", () => {
    const root = tree([
      "ledger/migrations/0001_ledger.sql",
      "ledger/migrations/0002_holds.sql",
      "ledger/migrations/0002_treasury.sql",
    ]);
    expect(problems(root)).toEqual([
      "ledger/migrations: 0002_holds.sql and 0002_treasury.sql share number 0002",
    ]);
  });

  it("fails on a file not named NNNN_<name>.sql and ignores dotfiles", () => {
    const root = tree([
      "api/migrations/0001_api.sql",
      "api/migrations/2_short.sql",
      "api/migrations/0003_Upper.sql",
      "api/migrations/README.md",
      "api/migrations/.gitkeep",
    ]);
    expect(problems(root)).toEqual([
      "api/migrations/0003_Upper.sql: not named NNNN_<name>.sql",
      "api/migrations/2_short.sql: not named NNNN_<name>.sql",
      "api/migrations/README.md: not named NNNN_<name>.sql",
    ]);
  });

  it("fails on a migrations folder discovery would not see, and lists every problem at once", () => {
    const root = tree([
      "chains/migrations/0001_chains.sql",
      "ops/migrations/0001_ops.sql",
      "signer/deposit-addresses/forwarders/migrations/0001_forwarders.sql",
      "api/migrations/0001_api.sql",
      "api/migrations/0001_again.sql",
    ]);
    const found = problems(root);
    expect(found).toHaveLength(4);
    expect(found[0]).toBe("api/migrations: 0001_again.sql and 0001_api.sql share number 0001");
    expect(found.slice(1).map((p) => p.split(":")[0])).toEqual([
      "chains/migrations",
      "ops/migrations",
      "signer/deposit-addresses/forwarders/migrations",
    ]);
  });
});

// Statements that leave a schema the previous revision may not run on: what it reads or writes is
// gone, renamed, moved, retyped or newly required (SET NOT NULL here; a new NOT NULL column with no
// default in requiredNewColumn). Widening a check (DROP CONSTRAINT, then ADD), dropping an index, a
// default or NOT NULL are not among them; a new or narrower CHECK is not seen (say so in the doc).
const CONTRACTING = [
  /\bDROP (TABLE|VIEW|MATERIALIZED VIEW|FUNCTION|PROCEDURE|TYPE|SCHEMA|SEQUENCE)\b/i,
  /\bALTER TABLE\b.*\bDROP (COLUMN )?(?!CONSTRAINT\b|NOT NULL\b|DEFAULT\b|IDENTITY\b|EXPRESSION\b)\w/i,
  /\bRENAME\b/i,
  /\bSET SCHEMA\b/i,
  /\bSET NOT NULL\b/i,
  /\bALTER COLUMN \w+ (SET DATA )?TYPE\b/i,
];

/** A statement's parts between commas outside parentheses (an ALTER TABLE's actions). */
function topLevelParts(statement: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < statement.length; i++) {
    const c = statement[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(statement.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(statement.slice(start));
  return parts.map((p) => p.trim());
}

/** A new column the previous revision's inserts leave out, and that refuses them: NOT NULL, no default. */
function requiredNewColumn(statement: string): boolean {
  return topLevelParts(statement).some(
    (part) =>
      /\bADD COLUMN\b/i.test(part) &&
      /\bNOT NULL\b/i.test(part) &&
      !/\b(DEFAULT|GENERATED)\b/i.test(part),
  );
}

/** The statements of a migration's SQL that CONTRACTING matches (comments removed, spaces folded). */
function contractingStatements(sql: string): string[] {
  return sql
    .replace(/--[^\n]*/g, "")
    .split(";")
    .map((s) => s.replace(/\s+/g, " ").trim())
    .filter((s) => CONTRACTING.some((re) => re.test(s)) || requiredNewColumn(s));
}

/** The migrations docs/deploy.md lists in "Schema changes during a deployment". */
function listedInDeployDoc(): Set<string> {
  const doc = readFileSync(path.join(repoRoot, "docs", "deploy.md"), "utf8");
  const start = doc.indexOf("## Schema changes during a deployment");
  expect(
    start,
    "docs/deploy.md has a section 'Schema changes during a deployment'",
  ).toBeGreaterThan(-1);
  const end = doc.indexOf("\n## ", start + 3);
  const section = doc.slice(start, end === -1 ? undefined : end);
  return new Set(
    [...section.matchAll(/`([\w/.-]+\/migrations\/\d{4}_\w+\.sql)`/g)].map((m) => m[1]!),
  );
}

describe("migrations during a rolling deployment (docs/deploy.md)", () => {
  it("tells contracting statements from expanding ones", () => {
    expect(
      contractingStatements(`
        DROP TABLE custody.contracts, custody.deposit_addresses;
        ALTER TABLE api.audit_log SET SCHEMA audit;
        ALTER TABLE t ALTER COLUMN a SET NOT NULL, ADD CONSTRAINT c CHECK (a > 0);
        ALTER TABLE t DROP b;
        ALTER TABLE t DROP COLUMN IF EXISTS c;
        ALTER TABLE t RENAME COLUMN d TO e;
        ALTER TABLE t ALTER COLUMN f TYPE NUMERIC(78, 0);
        DROP VIEW chain.facts;
        ALTER TABLE t ADD COLUMN g NUMERIC(78, 0) NOT NULL, ADD COLUMN h TEXT;
      `),
    ).toHaveLength(9);
    expect(
      contractingStatements(`
        -- DROP TABLE in a comment is not a statement
        ALTER TABLE t DROP CONSTRAINT t_status_check;
        ALTER TABLE t ADD CONSTRAINT t_status_check CHECK (status IN ('a', 'b', 'c'));
        ALTER TABLE t ALTER COLUMN a DROP NOT NULL, ADD COLUMN b TEXT, ADD COLUMN c INT NOT NULL DEFAULT 0;
        ALTER TABLE t ADD COLUMN i NUMERIC(78, 0) DEFAULT 0 NOT NULL, ADD COLUMN j BOOLEAN NOT NULL GENERATED ALWAYS AS (i > 0) STORED;
        ALTER TABLE t ALTER COLUMN d DROP DEFAULT;
        DROP INDEX custody.tx_requests_open;
        CREATE INDEX tx_requests_open ON custody.tx_requests (chain_id);
        CREATE OR REPLACE VIEW chain.facts AS SELECT 1;
      `),
    ).toEqual([]);
  });

  it("lists every migration the previous revision cannot run on, and only files that exist", () => {
    const contracting: string[] = [];
    const all = new Set<string>();
    for (const { dir } of MODULE_MIGRATIONS) {
      for (const file of readdirSync(path.join(repoRoot, dir)).filter((f) => f.endsWith(".sql"))) {
        const rel = `${dir}/${file}`;
        all.add(rel);
        if (contractingStatements(readFileSync(path.join(repoRoot, rel), "utf8")).length > 0)
          contracting.push(rel);
      }
    }
    const listed = listedInDeployDoc();
    // The three known ones are seen (the check can fail: it finds what is there).
    expect(contracting).toEqual(
      expect.arrayContaining([
        "signer/migrations/0106_deposit_addresses_to_chain.sql",
        "api/migrations/0007_console_oidc_sessions.sql",
        "api/migrations/0008_audit_log_to_audit.sql",
      ]),
    );
    expect(
      contracting.filter((f) => !listed.has(f)),
      "migrations that break the previous revision: list them in docs/deploy.md with the services to stop",
    ).toEqual([]);
    expect(
      [...listed].filter((f) => !all.has(f)),
      "listed in docs/deploy.md but not a migration",
    ).toEqual([]);
  });
});
