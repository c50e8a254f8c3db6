import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { startTcpProxy } from "../ops/testing/tcpProxy.js";
import { waitFor } from "../ops/testing/wait.js";
import { afterCommit, createPool, type Pool, snapshotPeer, withTransaction } from "./db.js";

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

// What a transaction tells (a log line, a metric) waits for its COMMIT (afterCommit).
describe("withTransaction afterCommit", () => {
  const serializationFailure = `DO $$ BEGIN
    RAISE EXCEPTION 'could not serialize access (test)' USING ERRCODE = 'serialization_failure';
  END $$`;

  it("runs after COMMIT, once, for the attempt that committed only; none for a rollback", async () => {
    const told: string[] = [];
    let attempt = 0;
    const result = await withTransaction(pool, async (client) => {
      attempt++;
      afterCommit(client, () => told.push(`attempt ${attempt}`));
      expect(told).toEqual([]); // not before COMMIT
      if (attempt === 1) await client.query(serializationFailure); // retried by withTransaction
      return attempt;
    });
    expect(result).toBe(2);
    expect(told).toEqual(["attempt 2"]);

    await expect(
      withTransaction(pool, async (client) => {
        afterCommit(client, () => told.push("rolled back"));
        throw new Error("a later step failed");
      }),
    ).rejects.toThrow("a later step failed");
    expect(told).toEqual(["attempt 2"]);
  });

  it("a throwing effect does not fail the committed transaction; outside one it runs at once", async () => {
    const told: string[] = [];
    await expect(
      withTransaction(pool, async (client) => {
        afterCommit(client, () => {
          throw new Error("log sink down");
        });
        afterCommit(client, () => told.push("second"));
        return 1;
      }),
    ).resolves.toBe(1);
    expect(told).toEqual(["second"]);
    const client = await pool.connect();
    try {
      afterCommit(client, () => told.push("no transaction"));
      expect(told).toEqual(["second", "no transaction"]);
    } finally {
      client.release();
    }
  });
});

describe("snapshotPeer", () => {
  // A pool of two of its own: the run's client and its peer.
  let two: Pool;
  beforeAll(async () => {
    two = createPool(db.url, { max: 2, applicationName: "snapshot-peer-test" });
    await two.query("CREATE TABLE peer_rows (n int)");
    await two.query("INSERT INTO peer_rows VALUES (1), (2)");
  });
  afterAll(async () => {
    await two?.query("DROP TABLE IF EXISTS peer_rows");
    await two?.end();
  });
  const count = async (q: Pick<Pool, "query">) =>
    (await q.query<{ n: number }>("SELECT count(*)::int AS n FROM peer_rows")).rows[0]?.n;

  it("reads in the client's snapshot, not one taken when it starts, with the same settings", async () => {
    const seen = await withTransaction(
      two,
      async (client) => {
        expect(await count(client)).toBe(2); // the snapshot is taken here
        // Committed after the snapshot: the client does not see it, nor may its peer.
        await db.pool.query("INSERT INTO peer_rows VALUES (3)");
        // Waits for its connection as long as a loaded machine needs (the default 100 ms is for runs).
        const peer = await snapshotPeer(two, client, {
          settings: { enable_mergejoin: "off" },
          waitMs: 60_000,
        });
        expect(peer).not.toBeNull();
        try {
          const [mine, theirs] = await Promise.all([count(client), count(peer!.client)]);
          const setting = await peer!.client.query<{ v: string }>(
            "SELECT current_setting('enable_mergejoin') AS v",
          );
          return { mine, theirs, setting: setting.rows[0]?.v };
        } finally {
          await peer!.end();
        }
      },
      { isolation: "repeatable read", readOnly: true },
    );
    expect(seen).toEqual({ mine: 2, theirs: 2, setting: "off" });
    // The peer's setting ended with its transaction; both clients are back in the pool.
    expect(await count(two)).toBe(3);
    expect(two.idleCount).toBe(2);
    expect(
      (await two.query<{ v: string }>("SELECT current_setting('enable_mergejoin') AS v")).rows[0]
        ?.v,
    ).toBe("on");
  });

  it("is null at once when the pool has no client to spare, and queues nothing", async () => {
    const other = await two.connect(); // the pool's second client, busy elsewhere
    try {
      const peer = await withTransaction(
        two,
        async (client) => {
          await count(client);
          return snapshotPeer(two, client, { waitMs: 60_000 });
        },
        { isolation: "repeatable read", readOnly: true },
      );
      expect(peer).toBeNull();
      expect(two.waitingCount).toBe(0);
    } finally {
      other.release();
    }
    // Waiting out waitMs (a minute) instead would time the test out.
  }, 20_000);

  it("is null when a new client takes longer than waitMs, and that client goes back when it comes", async () => {
    // Connections to Postgres through a loopback relay that opens each one `delayMs` late.
    let delayMs = 0;
    const sockets = new Set<net.Socket>();
    const target = new URL(db.url);
    const relay = net.createServer((down) => {
      sockets.add(down);
      setTimeout(() => {
        const up = net.connect(Number(target.port || 5432), target.hostname);
        sockets.add(up);
        up.on("error", () => down.destroy());
        down.on("error", () => up.destroy());
        down.pipe(up).pipe(down);
      }, delayMs);
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    const url = new URL(db.url);
    url.host = `127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
    const slow = createPool(url.toString(), { max: 2, applicationName: "snapshot-peer-slow" });
    try {
      const peer = await withTransaction(
        slow,
        async (client) => {
          await count(client);
          delayMs = 500; // the pool's second client takes 500 ms to open
          return snapshotPeer(slow, client, { waitMs: 50 });
        },
        { isolation: "repeatable read", readOnly: true },
      );
      expect(peer).toBeNull();
      // The second client opened after the wait and went straight back to the pool.
      await waitFor("the late client back in the pool", async () => slow.totalCount === 2);
      await waitFor("both clients idle", async () => slow.idleCount === 2);
    } finally {
      await slow.end();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });
});

// A process cut off (host partition, frozen) inside a pool transaction must not hold its row locks
// for the hours TCP keepalive takes: Postgres ends a session idle in a transaction this long.
describe("createPool idle-in-transaction timeout", () => {
  it("frees the row locks of a transaction whose client went silent, so another client's UPDATE proceeds", async () => {
    await pool.query("CREATE TABLE idle_tx (id int PRIMARY KEY, v int NOT NULL)");
    await pool.query("INSERT INTO idle_tx VALUES (1, 0)");
    const target = new URL(db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const cutPool = createPool(proxy.urlFor(db.url), {
      max: 1,
      applicationName: "idle-tx-cut",
      idleInTransactionTimeoutMs: 1_000,
    });
    const cut = await cutPool.connect();
    try {
      await cut.query("BEGIN");
      await cut.query("SELECT v FROM idle_tx WHERE id = 1 FOR UPDATE");
      proxy.blackhole(); // the holder never sends again, and hears nothing
      const started = Date.now();
      // Bounded so the test fails (55P03) instead of hanging while the lock is held.
      const updated = await withTransaction(
        pool,
        (c) => c.query("UPDATE idle_tx SET v = 2 WHERE id = 1"),
        { settings: { lock_timeout: "10s" }, attempts: 1 },
      );
      expect(updated.rowCount).toBe(1);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      cut.release(true);
      await proxy.close();
      await cutPool.end().catch(() => {});
    }
  }, 30_000);

  it("is 60 s by default, and a transaction may lift it for itself", async () => {
    const timeout = async (q: Pick<Pool, "query">) =>
      (
        await q.query<{ v: string }>(
          "SELECT current_setting('idle_in_transaction_session_timeout') AS v",
        )
      ).rows[0]?.v;
    expect(await timeout(pool)).toBe("1min");
    const inside = await withTransaction(pool, (c) => timeout(c), {
      settings: { idle_in_transaction_session_timeout: "0" },
    });
    expect(inside).toBe("0");
    expect(await timeout(pool)).toBe("1min");
  });
});
