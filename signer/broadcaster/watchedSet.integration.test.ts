/**
 * The broadcaster's watched set against real Postgres: the first read takes every watched request,
 * later reads take only the rows changed since (changed_at, stamped by a trigger on every update,
 * whoever writes), and a change by another writer is seen; requests leave the set when final.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../ops/testing/database.js";
import { waitFor } from "../../ops/testing/wait.js";
import { createWatchedSet } from "./watchedSet.js";

const CHAIN = 31337;
const FROM = `0x${"a1".repeat(20)}` as const;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  // 200 confirmed-not-final, 50 broadcast (watched); 100 final and 20 pending (not watched).
  await db.pool.query(
    `INSERT INTO custody.tx_requests (id, chain_id, from_address, to_address, value, kind, ref_id, status,
       nonce, tx_hash, block_number, block_hash, finalized_at)
     SELECT 'r' || i, $1, $2, $3, 1, 'test', 'r' || i,
       CASE WHEN i < 300 THEN 'confirmed' WHEN i < 350 THEN 'broadcast' ELSE 'pending' END,
       CASE WHEN i < 350 THEN i END, '0x' || lpad(to_hex(i), 64, '0'), i, '0x' || lpad(to_hex(i), 64, '0'),
       CASE WHEN i < 100 THEN now() END
     FROM generate_series(0, 369) AS i`,
    [CHAIN, FROM, `0x${"b2".repeat(20)}`],
  );
});
afterAll(async () => {
  await db?.drop();
});

describe("watched set", () => {
  it("reads everything once, then only what changed; sees other writers; drops final requests", async () => {
    const set = createWatchedSet(
      { pool: db.pool, chain: { chainId: CHAIN } as never, from: FROM },
      {
        overlapMs: 200,
        fullReloadMs: 600_000,
      },
    );
    const first = await set.read();
    expect(set.lastRead()).toEqual({ full: true, rows: 250 });
    expect(first.map((r) => Number(r.nonce))).toEqual(
      Array.from({ length: 250 }, (_, i) => i + 100),
    );

    // Once the inserts are older than the overlap, a read fetches no rows at all.
    await waitFor("a read that fetches nothing", async () => {
      await set.read();
      return set.lastRead().rows === 0;
    });
    expect(set.lastRead().full).toBe(false);
    expect(await set.read()).toHaveLength(250);

    // Another writer (an operator, another module) finalizes one and mines another.
    await db.pool.query("UPDATE custody.tx_requests SET finalized_at = now() WHERE id = 'r150'");
    await db.pool.query(
      "UPDATE custody.tx_requests SET status = 'mined', block_number = 999 WHERE id = 'r320'",
    );
    const after = await set.read();
    expect(set.lastRead().full).toBe(false);
    expect(set.lastRead().rows).toBeGreaterThanOrEqual(2);
    expect(set.lastRead().rows).toBeLessThan(250);
    expect(after).toHaveLength(249);
    expect(after.find((r) => r.id === "r150")).toBeUndefined();
    expect(after.find((r) => r.id === "r320")).toMatchObject({
      status: "mined",
      blockNumber: 999n,
    });
    // The same as a full read of the table.
    const fresh = createWatchedSet({
      pool: db.pool,
      chain: { chainId: CHAIN } as never,
      from: FROM,
    });
    expect(await fresh.read()).toEqual(after);
  });
});
