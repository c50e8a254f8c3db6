import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  admin,
  dropOrphanedTestDatabases,
  TEST_PG_ADMIN_URL,
  testDatabaseOwner,
} from "./database.js";

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
