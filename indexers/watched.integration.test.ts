/**
 * The watched set on a real Postgres: a notification naming addresses adds them without reading
 * the table; a burst of chain-only notifications costs a few reads of recent rows, not one each
 * and no full reload; every
 * allocation committed before `ensureCurrent` is applied when it returns (the LISTEN round trip is
 * a barrier, no polling), and when that connection is lost a read of the table is; a writer that
 * never notified is caught by the audit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withTransaction } from "../foundation/db.js";
import { createLogger } from "../foundation/logger.js";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { within } from "../ops/testing/wait.js";
import {
  createWatchedSet,
  notifyWatchedAddress,
  parseWatchedPayload,
  type WatchedSet,
} from "./watched.js";

const CHAIN = 31337;
const address = (i: number) => `0x${(0xabc00000n + BigInt(i)).toString(16).padStart(40, "0")}`;

let db: TestDatabase;
let watched: WatchedSet;
let next = 0;

/** Insert `n` new addresses in one transaction; notify naming them, or the chain only. */
async function allocate(n: number, how: "named" | "chain" | "none"): Promise<string[]> {
  const added = Array.from({ length: n }, () => address(next++));
  await withTransaction(db.pool, async (c) => {
    await c.query(
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
       SELECT $1, a, 'deposit', 'test' FROM unnest($2::text[]) AS a`,
      [CHAIN, added],
    );
    if (how === "named") await notifyWatchedAddress(c, CHAIN, added);
    if (how === "chain") await notifyWatchedAddress(c, CHAIN);
  });
  return added;
}

beforeAll(async () => {
  db = await createTestDatabase();
  await allocate(1000, "none");
  watched = await createWatchedSet({
    pool: db.pool,
    chainId: CHAIN,
    logger: createLogger("silent"),
    auditIntervalMs: 60 * 60_000,
  });
});
afterAll(async () => {
  await watched?.stop();
  await db?.drop();
});

describe("watched set", () => {
  it("parses payloads: named addresses, chain-only, other chains, garbage", () => {
    expect(parseWatchedPayload("31337", CHAIN)).toBe("reload");
    expect(parseWatchedPayload(`31337:${address(1)},${address(2).toUpperCase()}`, CHAIN)).toEqual([
      address(1),
      `0x${address(2).slice(2)}`,
    ]);
    expect(parseWatchedPayload(`313370:${address(1)}`, CHAIN)).toBeNull();
    expect(parseWatchedPayload("1", CHAIN)).toBeNull();
    expect(parseWatchedPayload("31337:not-an-address", CHAIN)).toBe("reload");
  });

  it("starts with one load of the table", () => {
    expect(watched.size()).toBe(1000);
    expect(watched.reloads()).toBe(1);
  });

  it("adds named addresses with no reload, all of them applied when ensureCurrent returns", async () => {
    // 400 addresses: more than one notification (150 a payload), one transaction.
    const added = await allocate(400, "named");
    await within("ensureCurrent", watched.ensureCurrent(db.pool), 10_000);
    expect(added.filter((a) => !watched.has(a))).toEqual([]);
    expect(watched.size()).toBe(1400);
    expect(watched.reloads()).toBe(1);
  });

  it("applies 200 separate named allocations, committed concurrently, without reloading", async () => {
    const batches = await Promise.all(Array.from({ length: 200 }, () => allocate(1, "named")));
    await within("ensureCurrent", watched.ensureCurrent(db.pool), 10_000);
    expect(batches.flat().filter((a) => !watched.has(a))).toEqual([]);
    expect(watched.size()).toBe(1600);
    expect(watched.reloads()).toBe(1);
  });

  it("coalesces a burst of 50 chain-only notifications into a few reads of recent rows, no full reload", async () => {
    const [reloads, reads] = [watched.reloads(), watched.recentReads()];
    const batches = await Promise.all(Array.from({ length: 50 }, () => allocate(2, "chain")));
    await within("ensureCurrent", watched.ensureCurrent(db.pool), 10_000);
    expect(batches.flat().filter((a) => !watched.has(a))).toEqual([]);
    expect(watched.size()).toBe(1700);
    expect(watched.reloads()).toBe(reloads);
    // Uncoalesced this is 50; the burst's commits spread over a few coalescing windows.
    expect(watched.recentReads() - reads).toBeGreaterThanOrEqual(1);
    expect(watched.recentReads() - reads).toBeLessThanOrEqual(5);
  });

  it("reads nothing per batch between audits, and an audit catches a writer that never notified", async () => {
    const silent = await allocate(3, "none");
    await within("ensureCurrent", watched.ensureCurrent(db.pool), 10_000);
    // The audit interval (an hour here) has not passed: the set does not know them.
    expect(silent.some((a) => watched.has(a))).toBe(false);
    const audited = await createWatchedSet({
      pool: db.pool,
      chainId: CHAIN,
      logger: createLogger("silent"),
      auditIntervalMs: 0,
    });
    try {
      const late = await allocate(2, "none");
      expect(late.some((a) => audited.has(a))).toBe(false);
      await within("ensureCurrent", audited.ensureCurrent(db.pool), 10_000);
      expect([...silent, ...late].filter((a) => !audited.has(a))).toEqual([]);
      expect(audited.size()).toBe(1705);
    } finally {
      await audited.stop();
    }
  });

  it("with its LISTEN connection lost, ensureCurrent reads the table: an allocation notified meanwhile is not missed", async () => {
    const own = await createWatchedSet({
      pool: db.pool,
      chainId: CHAIN,
      logger: createLogger("silent"),
      auditIntervalMs: 60 * 60_000,
    });
    try {
      // Its LISTEN connection goes (a failover, an idle-session timeout); it re-LISTENs a second
      // later. (A connection whose last statement was LISTEN: this set's, and the first set's too
      // when it has run nothing since.)
      const { rows } = await db.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND query ILIKE 'LISTEN%'`,
      );
      expect(rows.length).toBeGreaterThan(0);
      await db.pool.query("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p", [
        rows.map((r) => r.pid),
      ]);
      // The allocation's notification is sent while nobody listens.
      const [lost] = await allocate(1, "named");
      await within("ensureCurrent", own.ensureCurrent(db.pool), 10_000);
      expect(own.has(lost!)).toBe(true);
    } finally {
      await own.stop();
    }
  });
});
