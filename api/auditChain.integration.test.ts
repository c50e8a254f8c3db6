/**
 * The tamper-evident audit log on real Postgres: rows written by concurrent transactions form one
 * gap-free hash chain; a superuser's edit, deletion, insertion past the trigger, or a cut tail
 * (against a recorded anchor) is found and named by `verifyAuditChain` and by the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit, readAuditHead, verifyAuditChain } from "../foundation/audit.js";
import { withTransaction } from "../foundation/db.js";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { spawnCli } from "../ops/testing/process.js";

let db: TestDatabase;

async function write(n: number, tag: string) {
  // Concurrent writers, each in its own transaction with other work around the insert.
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      withTransaction(db.pool, async (c) => {
        await c.query("SELECT pg_sleep(0.001)");
        await appendAudit(c, {
          actor: `ops-${i % 3}`,
          action: `test.${tag}`,
          entityType: "test",
          entityId: `${tag}-${i}`,
          details: { i, note: "ünïcode ✓", nested: { b: 1, a: [1, "x"] } },
        });
      }),
    ),
  );
}

/** As a superuser would: switch the table's guard off for one statement. */
async function asSuperuser(sql: string, params: unknown[] = []) {
  await withTransaction(db.pool, async (c) => {
    await c.query("ALTER TABLE audit.audit_log DISABLE TRIGGER USER");
    await c.query(sql, params);
    await c.query("ALTER TABLE audit.audit_log ENABLE TRIGGER USER");
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe("audit hash chain", () => {
  it("links every committed row, in one gap-free chain, across concurrent writers", async () => {
    await write(20, "a");
    await appendAudit(db.pool, {
      actor: "solo",
      action: "test.solo",
      entityType: "t",
      entityId: "1",
    });
    const v = await verifyAuditChain(db.pool);
    expect(v.problem).toBeNull();
    expect(v.ok).toBe(true);
    expect(v.rows).toBe(21);
    expect(v.head?.seq).toBe(21);
    expect(await readAuditHead(db.pool)).toEqual(v.head);
    // A rolled-back insert leaves no link behind.
    await expect(
      withTransaction(db.pool, async (c) => {
        await appendAudit(c, {
          actor: "x",
          action: "test.rollback",
          entityType: "t",
          entityId: "2",
        });
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    expect((await verifyAuditChain(db.pool)).ok).toBe(true);
    // The table still refuses ordinary UPDATE/DELETE, including of the link.
    await expect(
      db.pool.query("UPDATE audit.audit_log SET hash = 'x' WHERE seq = 1"),
    ).rejects.toThrow(/append-only/);
  });

  it("finds a row a superuser edited", async () => {
    const row = await db.pool.query<{ id: string }>(
      "SELECT id::text FROM audit.audit_log WHERE seq = 7",
    );
    await asSuperuser(`UPDATE audit.audit_log SET details = details || '{"i": 99}' WHERE seq = 7`);
    const v = await verifyAuditChain(db.pool);
    expect(v.ok).toBe(false);
    expect(v.problem).toMatchObject({ kind: "edited", seq: 7, id: row.rows[0]!.id });

    // Re-hashing the edited row moves the break to its successor, which no longer follows it.
    await asSuperuser(
      `UPDATE audit.audit_log SET hash = encode(sha256(convert_to(prev_hash || audit.audit_canonical(audit_log), 'UTF8')), 'hex') WHERE seq = 7`,
    );
    const again = await verifyAuditChain(db.pool);
    expect(again.problem).toMatchObject({ kind: "deleted", seq: 8 });

    const cli = spawnCli(["audit", "verify"], { DATABASE_URL: db.url, LOG_LEVEL: "silent" });
    const exit = await cli.exited;
    expect(exit.code).toBe(1);
    expect(cli.output()).toMatch(/seq 8/);
  });

  it("finds a deleted row, a row inserted past the trigger, and a cut tail", async () => {
    const fresh = await createTestDatabase();
    try {
      const saved = db;
      db = fresh;
      await write(10, "b");
      expect((await verifyAuditChain(db.pool)).ok).toBe(true);
      const cli = spawnCli(["audit", "verify"], { DATABASE_URL: db.url, LOG_LEVEL: "silent" });
      expect((await cli.exited).code).toBe(0);
      expect(cli.output()).toMatch(/intact: 10 row/);

      const anchor = (await readAuditHead(db.pool))!;
      await asSuperuser("DELETE FROM audit.audit_log WHERE seq = 10");
      // Without an anchor a cut tail looks like a shorter chain; the anchor says otherwise.
      expect((await verifyAuditChain(db.pool)).ok).toBe(true);
      const cut = await verifyAuditChain(db.pool, { anchors: [{ ...anchor, source: "run 1" }] });
      expect(cut.problem).toMatchObject({ kind: "truncated", seq: 10 });

      await asSuperuser("DELETE FROM audit.audit_log WHERE seq = 4");
      expect((await verifyAuditChain(db.pool)).problem).toMatchObject({ kind: "deleted", seq: 4 });
      db = saved;
    } finally {
      await fresh.drop();
    }
    const other = await createTestDatabase();
    try {
      const saved = db;
      db = other;
      await write(3, "c");
      await withTransaction(db.pool, async (c) => {
        await c.query("ALTER TABLE audit.audit_log DISABLE TRIGGER ALL");
        await c.query(
          "INSERT INTO audit.audit_log (actor, action, entity_type, entity_id) VALUES ('mallory', 'test.forged', 't', 'f')",
        );
        await c.query("ALTER TABLE audit.audit_log ENABLE TRIGGER ALL");
      });
      expect((await verifyAuditChain(db.pool)).problem).toMatchObject({ kind: "inserted" });
      db = saved;
    } finally {
      await other.drop();
    }
  });
});
