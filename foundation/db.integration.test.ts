import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { type Pool, withTransaction } from "./db.js";

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
