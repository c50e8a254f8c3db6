import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { createPool, type Pool, withSnapshotOf, withTransaction } from "./db.js";

let db: TestDatabase;
let pool: Pool;
beforeAll(async () => {
  db = await createTestDatabase({ migrate: false, poolSize: 1 });
  pool = db.pool;
});
afterAll(async () => {
  await db?.drop();
});

// NUMERIC is parsed once, by the connection: every reader gets a bigint (foundation/db.ts, PG_TYPES).
describe("NUMERIC through createPool", () => {
  it("arrives as a bigint, exactly, up to uint256, with sums and NULL", async () => {
    const max = (1n << 256n) - 1n;
    const r = await pool.query<{ a: bigint; b: bigint; s: bigint; n: bigint | null; i: string }>(
      `SELECT $1::numeric(78,0) AS a, (-12)::numeric AS b,
              (SELECT sum(x) FROM (VALUES (9007199254740993::numeric), (1::numeric)) v(x)) AS s,
              NULL::numeric AS n, 5::int8 AS i`,
      [max.toString()],
    );
    expect(r.rows[0]).toEqual({ a: max, b: -12n, s: 9007199254740994n, n: null, i: "5" });
  });

  it("NUMERIC[] arrives as bigint[] (pg's default would give floats and lose digits)", async () => {
    const r = await pool.query<{ xs: (bigint | null)[] }>(
      `SELECT ARRAY[9007199254740993, NULL, -1]::numeric[] AS xs`,
    );
    expect(r.rows[0]?.xs).toEqual([9007199254740993n, null, -1n]);
  });

  it("a fractional NUMERIC fails its query with DB_FRACTIONAL_NUMERIC, and the connection stays usable", async () => {
    await expect(pool.query(`SELECT 1.5::numeric AS x`)).rejects.toMatchObject({
      code: "DB_FRACTIONAL_NUMERIC",
    });
    await expect(pool.query(`SELECT 'NaN'::numeric AS x`)).rejects.toMatchObject({
      code: "DB_FRACTIONAL_NUMERIC",
    });
    const r = await pool.query<{ x: bigint; f: number }>(
      `SELECT 2::numeric AS x, (extract(epoch FROM now()) * 1000)::float8 AS f`,
    );
    expect(r.rows[0]?.x).toBe(2n);
    expect(typeof r.rows[0]?.f).toBe("number");
  });
});

// A transaction's own settings (`settings`): in force for its statements, gone after it, on the
// same pooled connection.
describe("withTransaction settings", () => {
  const mergejoin = async (q: Pick<Pool, "query">) =>
    (await q.query<{ v: string }>("SELECT current_setting('enable_mergejoin') AS v")).rows[0]?.v;

  it("apply to the transaction's statements only, committed or rolled back", async () => {
    expect(await mergejoin(pool)).toBe("on");
    const inside = await withTransaction(pool, (c) => mergejoin(c), {
      isolation: "repeatable read",
      readOnly: true,
      settings: { enable_mergejoin: "off", work_mem: "8MB" },
    });
    expect(inside).toBe("off");
    // poolSize 1: the same connection, and the setting did not outlive its transaction.
    expect(await mergejoin(pool)).toBe("on");
    await expect(
      withTransaction(
        pool,
        async (c) => {
          expect(await mergejoin(c)).toBe("off");
          throw new Error("boom");
        },
        { settings: { enable_mergejoin: "off" } },
      ),
    ).rejects.toThrow("boom");
    expect(await mergejoin(pool)).toBe("on");
  });

  it("refuses a setting name that is not a plain identifier, before connecting", async () => {
    await expect(
      withTransaction(pool, async () => 1, { settings: { "x; DROP TABLE y": "1" } }),
    ).rejects.toThrow(/bad setting name/);
  });
});

// A second connection on an open transaction's snapshot (`withSnapshotOf`): what the full
// reconciliation's stream reads its entries through while it reads the next facts.
describe("withSnapshotOf", () => {
  it("reads the first transaction's snapshot, not rows committed since; read only; its settings", async () => {
    const two = createPool(db.url, { max: 3 });
    try {
      await two.query("CREATE TABLE snap (n int)");
      await two.query("INSERT INTO snap VALUES (1), (2)");
      const seen = await withTransaction(
        two,
        async (client) => {
          const count = async (q: Pick<Pool, "query">) =>
            Number((await q.query<{ n: string }>("SELECT count(*) AS n FROM snap")).rows[0]!.n);
          const before = await count(client); // the snapshot is taken here
          await two.query("INSERT INTO snap VALUES (3)"); // committed after it
          return withSnapshotOf(
            two,
            client,
            async (side) => ({
              before,
              side: await count(side),
              sideSetting: (
                await side.query<{ v: string }>("SELECT current_setting('enable_mergejoin') AS v")
              ).rows[0]!.v,
              write: await side.query("INSERT INTO snap VALUES (4)").then(
                () => "written",
                (e: { code?: string }) => e.code,
              ),
            }),
            { settings: { enable_mergejoin: "off" } },
          );
        },
        { isolation: "repeatable read", readOnly: true },
      );
      expect(seen).toEqual({ before: 2, side: 2, sideSetting: "off", write: "25006" });
      // Outside: the committed row, nothing from the side, and the setting gone.
      expect((await two.query("SELECT n FROM snap ORDER BY n")).rows).toEqual([
        { n: 1 },
        { n: 2 },
        { n: 3 },
      ]);
      const settings = await Promise.all(
        [0, 1, 2].map(() =>
          two.query<{ v: string }>("SELECT current_setting('enable_mergejoin') AS v"),
        ),
      );
      expect(settings.map((r) => r.rows[0]!.v)).toEqual(["on", "on", "on"]);
    } finally {
      await two.query("DROP TABLE IF EXISTS snap");
      await two.end();
    }
  });

  it("refuses a setting name that is not a plain identifier", async () => {
    await expect(
      withTransaction(
        pool,
        (c) => withSnapshotOf(pool, c, async () => 1, { settings: { "a b": "1" } }),
        {
          isolation: "repeatable read",
        },
      ),
    ).rejects.toThrow(/bad setting name/);
  });
});
