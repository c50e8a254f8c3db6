/**
 * The move of custody.contracts and custody.deposit_addresses to the chain schema (issue 16) on a
 * database built before it: its rows arrive in chain.contracts and chain.deposit_addresses, the
 * custody tables are gone, and the sweepable-balance triggers (signer/migrations/0103, redefined by
 * the move) still track credits to deposit addresses only. A fresh database ends the same.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";
import { MODULE_MIGRATIONS, type ModuleMigrations, migrate } from "../../ops/migrate.js";
import { createTestDatabase, type TestDatabase } from "../../ops/testing/database.js";

const FACTORY = `0x${"f".repeat(40)}`;
const HOT = `0x${"a".repeat(40)}`;
const ALICE = `0x${"1".repeat(40)}`;
const STRANGER = `0x${"2".repeat(40)}`;
const SALT = `0x${"5".repeat(64)}`;
const TX = `0x${"7".repeat(64)}`;
const ETH = `0x${"0".repeat(40)}`;

const tmp: string[] = [];

/** The module migrations as they were before the move: copies of the two folders up to its files. */
function modulesBeforeMove(): ModuleMigrations[] {
  const names: Record<string, string> = {
    chain: "_deposit_addresses.sql",
    custody: "_deposit_addresses_to_chain.sql",
  };
  const copies = mkdtempSync(path.join(tmpdir(), "before-move-"));
  const modules = MODULE_MIGRATIONS.map((m) => {
    const suffix = names[m.schema];
    if (!suffix) return m;
    const files = readdirSync(path.join(repoRoot, m.dir)).sort();
    const cut = files.findIndex((f) => f.endsWith(suffix));
    expect(cut, `${m.dir} has its *${suffix}`).toBeGreaterThan(0);
    const to = path.join(copies, m.schema);
    for (const f of files.slice(0, cut)) cpSync(path.join(repoRoot, m.dir, f), path.join(to, f));
    return { schema: m.schema, dir: to };
  });
  tmp.push(copies);
  return modules;
}

async function creditTo(db: TestDatabase, address: string, amount: string, id: string) {
  await db.pool.query(
    `INSERT INTO ledger.deposit_credits (credit_id, chain_id, tx_hash, position, to_address, asset,
       amount, owner, block_number, block_hash)
     VALUES ($1, 31337, $2, 'tx', $3, $4, $5, 'alice', 1, $2)`,
    [id, TX, address, ETH, amount],
  );
}

describe("the deposit-address tables' move to the chain schema", () => {
  const dbs: TestDatabase[] = [];
  afterAll(async () => {
    await Promise.all(dbs.map((d) => d.drop()));
    for (const t of tmp) rmSync(t, { recursive: true, force: true });
  });

  it("carries an existing database's rows over and keeps the sweepable-balance triggers working", async () => {
    const db = await createTestDatabase({ migrate: false });
    dbs.push(db);
    await migrate(db.url, { modules: modulesBeforeMove() });
    await db.pool.query(
      `INSERT INTO custody.contracts
         (chain_id, name, address, hot_wallet, init_code_hash, deploy_tx_hash, block_number, created_at)
       VALUES (31337, 'ForwarderFactory', $1, $2, $3, $4, 7, '2026-01-02T03:04:05Z')`,
      [FACTORY, HOT, SALT, TX],
    );
    await db.pool.query(
      `INSERT INTO custody.deposit_addresses (chain_id, customer_id, address, salt, factory, created_at)
       VALUES (31337, 'alice', $1, $2, $3, '2026-01-02T03:04:06Z')`,
      [ALICE, SALT, FACTORY],
    );
    await creditTo(db, ALICE, "100", "00000000-0000-4000-8000-000000000001");

    const applied = await migrate(db.url);
    expect(applied.flatMap((r) => r.applied.map((n) => `${r.schema}/${n}`))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^chain\/\d{4}_deposit_addresses$/),
        expect.stringMatching(/^custody\/\d{4}_deposit_addresses_to_chain$/),
      ]),
    );
    const contracts = await db.pool.query(
      "SELECT chain_id::int, name, address, hot_wallet, block_number::int, created_at FROM chain.contracts",
    );
    expect(contracts.rows).toEqual([
      {
        chain_id: 31337,
        name: "ForwarderFactory",
        address: FACTORY,
        hot_wallet: HOT,
        block_number: 7,
        created_at: new Date("2026-01-02T03:04:05Z"),
      },
    ]);
    const addresses = await db.pool.query(
      "SELECT chain_id::int, customer_id, address, salt, factory, created_at FROM chain.deposit_addresses",
    );
    expect(addresses.rows).toEqual([
      {
        chain_id: 31337,
        customer_id: "alice",
        address: ALICE,
        salt: SALT,
        factory: FACTORY,
        created_at: new Date("2026-01-02T03:04:06Z"),
      },
    ]);
    const gone = await db.pool.query(
      `SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'custody' AND table_name IN ('contracts', 'deposit_addresses')`,
    );
    expect(gone.rows).toEqual([]);

    // The triggers read the moved table: a credit to the deposit address counts, one to another
    // address does not, and an update out of `credited` takes it back.
    await creditTo(db, ALICE, "23", "00000000-0000-4000-8000-000000000002");
    await creditTo(db, STRANGER, "5", "00000000-0000-4000-8000-000000000003");
    const sweepable = () =>
      db.pool
        .query("SELECT address, balance FROM custody.sweepable_balances ORDER BY address")
        .then((r) => r.rows);
    expect(await sweepable()).toEqual([{ address: ALICE, balance: 123n }]);
    await db.pool.query(
      "UPDATE ledger.deposit_credits SET state = 'held' WHERE credit_id = '00000000-0000-4000-8000-000000000002'",
    );
    expect(await sweepable()).toEqual([{ address: ALICE, balance: 100n }]);
  });

  it("a fresh database has the tables and the published view in chain only", async () => {
    const db = await createTestDatabase();
    dbs.push(db);
    const { rows } = await db.pool.query(
      `SELECT table_schema, table_name, table_type FROM information_schema.tables
        WHERE table_name IN ('contracts', 'deposit_addresses', 'deposit_forwarders')
        ORDER BY 1, 2`,
    );
    expect(rows).toEqual([
      { table_schema: "chain", table_name: "contracts", table_type: "BASE TABLE" },
      { table_schema: "chain", table_name: "deposit_addresses", table_type: "BASE TABLE" },
      { table_schema: "chain", table_name: "deposit_forwarders", table_type: "VIEW" },
    ]);
  });
});
