/**
 * The migrations layout rule (ops/migrate.ts's header): discovery order, one schema per folder,
 * numbers unique in a folder, no migrations folder where discovery does not look.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
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
