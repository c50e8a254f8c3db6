/**
 * `watchLock` against a real Postgres session: a session that ended (terminated, or its socket
 * gone) took its advisory lock with it, and a check failing for that reason is no evidence the
 * lock is still held; a check failing with an SQL error of the live session (a failed
 * transaction) is, and the lock is not counted lost for it.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { waitFor } from "../ops/testing/wait.js";
import { cutConnection, watchLock } from "./sessionLock.js";

const LOCK = 0x7465_7374_6c6b; // "testlk"
/** Checks every 40 ms; no answer within 200 ms counts the lock lost. */
const LOST_AFTER_MS = 200;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ migrate: false, poolSize: 2 });
});
afterAll(async () => {
  await db?.drop();
});

/** A dedicated connection holding LOCK, with an error listener (a holder must have one). */
async function holder(): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: db.url });
  client.on("error", () => {});
  await client.connect();
  const { rows } = await client.query<{ ok: boolean; pid: number }>(
    "SELECT pg_try_advisory_lock($1) AS ok, pg_backend_pid() AS pid",
    [LOCK],
  );
  expect(rows[0]?.ok).toBe(true);
  return { client, pid: rows[0]!.pid };
}

/** Counts the watch's checks that failed (the library's client, its `query` passed through). */
function countFailedChecks(client: pg.Client): () => number {
  let failed = 0;
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (
    ...args: unknown[]
  ) => {
    const answer = query(...args);
    if (typeof args[0] === "string" && args[0].includes("pg_locks"))
      answer.catch(() => {
        failed++;
      });
    return answer;
  };
  return () => failed;
}

describe("watchLock", () => {
  it("counts the lock lost when its session is terminated", async () => {
    const { client, pid } = await holder();
    let lost = 0;
    const stop = watchLock(client, LOST_AFTER_MS, () => {
      lost++;
    });
    try {
      const { rows } = await db.pool.query<{ ok: boolean }>(
        "SELECT pg_terminate_backend($1) AS ok",
        [pid],
      );
      expect(rows).toEqual([{ ok: true }]);
      await waitFor("the watch to count the lock lost", () => lost > 0, { timeoutMs: 5_000 });
      // Once: the checks stopped with it.
      expect(lost).toBe(1);
    } finally {
      stop();
      await client.end().catch(() => {});
    }
  });

  it("counts the lock lost when its connection is closed under it", async () => {
    const { client } = await holder();
    let lost = 0;
    const stop = watchLock(client, LOST_AFTER_MS, () => {
      lost++;
    });
    try {
      cutConnection(client);
      await waitFor("the watch to count the lock lost", () => lost > 0, { timeoutMs: 5_000 });
      expect(lost).toBe(1);
    } finally {
      stop();
      await client.end().catch(() => {});
    }
  });

  it("hears the client say its session ended until stopped, then leaves no listener and calls nothing", async () => {
    const { client, pid } = await holder();
    const listeners = () => client.listenerCount("error") + client.listenerCount("end");
    const before = listeners();
    const ended = new Promise((resolve) => client.once("end", resolve));
    let lost = 0;
    // Checks too far apart to be the ones that notice.
    const stop = watchLock(client, 60_000, () => {
      lost++;
    });
    try {
      await db.pool.query("SELECT pg_terminate_backend($1)", [pid]);
      await waitFor("the watch to count the lock lost", () => lost > 0, { timeoutMs: 5_000 });
      // Still heard after it was counted lost (the socket closing says so again): once.
      await ended;
      expect(lost).toBe(1);
      expect(listeners()).toBe(before + 2);
      stop();
      expect(listeners()).toBe(before);
    } finally {
      stop();
      await client.end().catch(() => {});
    }
  });

  it("does not count the lock lost for a check failing in the live session's failed transaction", async () => {
    const { client, pid } = await holder();
    const failedChecks = countFailedChecks(client);
    let lost = 0;
    const stop = watchLock(client, LOST_AFTER_MS, () => {
      lost++;
    });
    try {
      await client.query("BEGIN");
      await expect(client.query("SELECT 1 / 0")).rejects.toMatchObject({ code: "22012" });
      await waitFor("three checks failing in the aborted transaction", () => failedChecks() >= 3, {
        timeoutMs: 5_000,
      });
      expect(lost).toBe(0);
      await client.query("ROLLBACK");
      const { rows } = await db.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1",
        [pid],
      );
      expect(rows).toEqual([{ n: 1 }]);
    } finally {
      stop();
      await client.end().catch(() => {});
    }
  });
});
