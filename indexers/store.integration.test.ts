/**
 * The indexer's SQL on a real Postgres: a block orphaned and then canonical again (a reorg back)
 * revives its facts instead of failing or duplicating them; orphaning marks confirmed facts.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { type BlockHeader, type Fact, NATIVE_ASSET } from "./extractFacts.js";
import { insertBlocks, insertFacts, orphanAbove, pruneBlocks } from "./store.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const block = (n: number, tag: string): BlockHeader => ({
  number: BigInt(n),
  hash: `0x${tag}${String(n).padStart(63, "0")}`,
  parentHash: `0x${tag}${String(n - 1).padStart(63, "0")}`,
  timestamp: 1_700_000_000 + n,
});
const fact = (b: BlockHeader): Fact => ({
  blockNumber: b.number,
  blockHash: b.hash,
  txHash: `0x${"e".repeat(63)}${b.number}`,
  txIndex: 0,
  position: "tx",
  kind: "native",
  asset: NATIVE_ASSET,
  from: `0x${"1".repeat(40)}`,
  to: `0x${"2".repeat(40)}`,
  amount: 10n ** 30n,
});

it("orphans, then revives a block and its facts when it becomes canonical again", async () => {
  const a = [1, 2, 3].map((n) => block(n, "a"));
  const fresh = await withTransaction(db.pool, async (c) => {
    const fresh = await insertBlocks(c, 1, a);
    await insertFacts(c, 1, a.map(fact), 2n, fresh);
    return fresh;
  });
  expect(fresh).toBe(true);
  const orphaned = await withTransaction(db.pool, (c) => orphanAbove(c, 1, 1n));
  expect(orphaned).toMatchObject({ count: 2, fromBlock: 2n, toBlock: 3n, confirmedBefore: 1 });
  // The other branch comes and goes, then branch a is canonical again.
  const b = [2, 3].map((n) => block(n, "b"));
  await withTransaction(db.pool, async (c) => {
    await insertFacts(c, 1, b.map(fact), null, await insertBlocks(c, 1, b));
  });
  await withTransaction(db.pool, (c) => orphanAbove(c, 1, 1n));
  const again = await withTransaction(db.pool, async (c) => {
    const freshAgain = await insertBlocks(c, 1, a.slice(1));
    await insertFacts(c, 1, a.slice(1).map(fact), 2n, freshAgain);
    return freshAgain;
  });
  expect(again).toBe(false);
  const { rows } = await db.pool.query(
    `SELECT block_hash, status, orphaned_after_confirmation, amount FROM chain.transfers
      ORDER BY block_number, block_hash`,
  );
  expect(
    rows.map((r) => [r.block_hash.slice(0, 3), r.status, r.orphaned_after_confirmation]),
  ).toEqual([
    ["0xa", "confirmed", false],
    ["0xa", "confirmed", false],
    ["0xb", "orphaned", false],
    ["0xa", "seen", false],
    ["0xb", "orphaned", false],
  ]);
  expect(rows[0].amount).toBe(10n ** 30n);
  const canon = await db.pool.query(
    "SELECT number::int, left(hash, 3) AS h FROM chain.blocks WHERE canonical ORDER BY number",
  );
  expect(canon.rows).toEqual([
    { number: 1, h: "0xa" },
    { number: 2, h: "0xa" },
    { number: 3, h: "0xa" },
  ]);
});

it("stores a pruned block that comes back once: its facts are not duplicated (COPY falls back)", async () => {
  const b = [block(10, "c"), block(11, "c")];
  const write = () =>
    withTransaction(db.pool, async (c) => {
      const fresh = await insertBlocks(c, 1, b);
      await insertFacts(c, 1, b.map(fact), null, fresh);
      return fresh;
    });
  expect(await write()).toBe(true);
  await pruneBlocks(db.pool, 1, 12n, 1000);
  // The blocks are gone, so they are fresh again; their facts are not.
  expect(await write()).toBe(true);
  const { rows } = await db.pool.query(
    "SELECT block_number::int AS n, count(*)::int AS c FROM chain.transfers WHERE block_hash = ANY($1::text[]) GROUP BY 1 ORDER BY 1",
    [b.map((x) => x.hash)],
  );
  expect(rows).toEqual([
    { n: 10, c: 1 },
    { n: 11, c: 1 },
  ]);
});
