/**
 * Deposit webhook events from real chain facts and ledger credits (Postgres), exactly once each;
 * and the events the ledger records for customers (an operator's inflow credit).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, withTransaction } from "../../foundation/db.js";
import {
  bookInflowCredit,
  createDepositCrediting,
  createLedger,
  type Ledger,
  transferId,
} from "../../ledger/index.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { gate } from "../../ops/testing/gate.js";
import { startTcpProxy } from "../../ops/testing/tcpProxy.js";
import { waitFor } from "../../ops/testing/wait.js";
import { produceDepositEvents } from "./depositEvents.js";
import { eventIdOf } from "./eventId.js";

const DEPOSIT = "0x00000000000000000000000000000000000000d1";
const TX = `0x${"ab".repeat(32)}`;
let ctx: TestContext;
let ledger: Ledger;
let common: TestContext["common"];

beforeAll(async () => {
  ctx = await createTestContext({
    file: {
      webhooks: [
        { url: "http://127.0.0.1:9/hook", secretEnv: "WH", events: ["deposit.*"] },
        { url: "http://127.0.0.1:9/inflows", secretEnv: "WH", events: ["inflow.*"] },
      ],
    },
  });
  common = { ...ctx.common, config: { ...ctx.config, webhookSecrets: { WH: "s" } } };
  ledger = createLedger({ common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES (31337, $1, 'deposit', 'alice')`,
    [DEPOSIT],
  );
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount)
     VALUES (31337, 5, $1, $2, 0, 'tx', 'native', '0x0000000000000000000000000000000000000000',
       '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', $3, 1000)`,
    [`0x${"cd".repeat(32)}`, TX, DEPOSIT],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

const events = async () =>
  (
    await ctx.db.pool.query<{ type: string; customer: string; amount: string; deliveries: number }>(
      `SELECT e.type, e.payload->>'customer_id' AS customer, e.payload->>'amount' AS amount,
              (SELECT count(*)::int FROM api.webhook_deliveries d WHERE d.event_id = e.id) AS deliveries
         FROM api.webhook_events e ORDER BY e.created_at, e.type`,
    )
  ).rows;

describe("deposit events", () => {
  it("emits detected, confirmed, credited and orphaned once each, as they happen", async () => {
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(1);
    expect(await events()).toEqual([
      { type: "deposit.detected", customer: "alice", amount: "1000", deliveries: 1 },
    ]);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(0);

    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'confirmed', confirmed_at = now() WHERE tx_hash = $1",
      [TX],
    );
    // Credited as the worker credits it (a deposit transfer and its credit row).
    expect(
      await createDepositCrediting({ common, pool: ctx.db.pool, ledger }).creditConfirmed(),
    ).toBe(1);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(2);
    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'orphaned', orphaned_at = now() WHERE tx_hash = $1",
      [TX],
    );
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(1);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(0);
    expect((await events()).map((e) => e.type).sort()).toEqual([
      "deposit.confirmed",
      "deposit.credited",
      "deposit.detected",
      "deposit.orphaned",
    ]);
  });

  it("tells the backend of an operator's inflow credit, once, from the ledger's record of it", async () => {
    const id = transferId("test:inflow:alice");
    await withTransaction(ctx.db.pool, (client) =>
      bookInflowCredit(client, ledger, {
        transferId: id,
        chainId: 31337,
        address: DEPOSIT,
        asset: "0x0000000000000000000000000000000000000000",
        amount: 777n,
        owner: "alice",
        blockNumber: "12",
        runId: 3,
        breakN: 1,
        creditedBy: "ops-anna",
        reason: "internal transfer the node could not trace",
        memo: "test",
      }),
    );
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(1);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(0);
    const { rows } = await ctx.db.pool.query(
      `SELECT e.type, e.payload AS data, array_agg(d.endpoint) AS endpoints
         FROM api.webhook_events e JOIN api.webhook_deliveries d ON d.event_id = e.id
        WHERE e.type LIKE 'inflow.%' GROUP BY e.id`,
    );
    expect(rows).toEqual([
      {
        type: "inflow.credited",
        data: {
          inflow_id: id,
          customer_id: "alice",
          chain_id: 31337,
          asset: "0x0000000000000000000000000000000000000000",
          address: DEPOSIT,
          amount: "777",
          block_number: "12",
          credited_by: "ops-anna",
          reason: "internal transfer the node could not trace",
        },
        endpoints: ["http://127.0.0.1:9/inflows"],
      },
    ]);
  });

  it("two workers producing at once never send a deposit's credited after its orphaned", async () => {
    // Worker A reads two credited deposits as due; while it sends them, a reorg orphans both and
    // worker B runs a pass. A backend applying events as they come must not end credited.
    const facts: { id: string; name: string }[] = [];
    for (const n of [1, 2]) {
      const tx = `0x${String(n).repeat(64)}`;
      const block = `0x${"e".repeat(63)}${n}`;
      const { rows } = await ctx.db.pool.query<{ id: string }>(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
           kind, asset, from_address, to_address, amount)
         VALUES (31337, 6, $1, $2, 0, 'tx', 'native', '0x0000000000000000000000000000000000000000',
           '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', $3, 500) RETURNING id::text`,
        [block, tx, DEPOSIT],
      );
      facts.push({ id: rows[0]!.id, name: `deposit:31337:${block}:${tx}:tx:credited` });
    }
    const produce = () => produceDepositEvents({ common, pool: ctx.db.pool });
    await produce(); // detected
    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'confirmed', confirmed_at = now() WHERE id = ANY($1::bigint[])",
      [facts.map((f) => f.id)],
    );
    expect(
      await createDepositCrediting({ common, pool: ctx.db.pool, ledger }).creditConfirmed(),
    ).toBe(2);

    // Holding the first credited event's id makes worker A wait there, after its read.
    const holder = await ctx.db.pool.connect();
    let a: Promise<number> | undefined;
    try {
      await holder.query("BEGIN");
      await holder.query(
        "INSERT INTO api.webhook_events (id, type, payload) VALUES ($1, 'deposit.credited', '{}')",
        [eventIdOf(facts[0]!.name)],
      );
      a = produce();
      const end = Date.now() + 30_000;
      for (;;) {
        const { rows } = await ctx.db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
              AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO api.webhook_events%'`,
        );
        if (rows.length > 0) break;
        if (Date.now() > end) throw new Error("worker A never reached the credited events");
        await new Promise((r) => setTimeout(r, 20));
      }
      await ctx.db.pool.query(
        "UPDATE chain.transfers SET status = 'orphaned', orphaned_at = now() WHERE id = ANY($1::bigint[])",
        [facts.map((f) => f.id)],
      );
      await produce(); // worker B
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
    await a;
    await produce();
    for (const f of facts) {
      const { rows } = await ctx.db.pool.query<{ type: string }>(
        `SELECT type FROM api.webhook_events WHERE payload->>'deposit_id' = $1
          ORDER BY created_at, id`,
        [f.id],
      );
      expect(rows.map((r) => r.type)).toEqual([
        "deposit.detected",
        "deposit.confirmed",
        "deposit.credited",
        "deposit.orphaned",
      ]);
    }
  });

  it("a worker whose lock connection went silent frees the producer lock for the others", async () => {
    const target = new URL(ctx.db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const cutPool = createPool(proxy.urlFor(ctx.db.url), { applicationName: "producer-cut" });
    // Hold the cut worker's pass mid-way (its read of the marks waits), under the producer lock.
    const blocker = await ctx.db.pool.connect();
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE api.deposit_event_marks IN ACCESS EXCLUSIVE MODE");
    const cutPass = produceDepositEvents({ common, pool: cutPool, lockLostAfterMs: 1_000 }).catch(
      () => -1,
    );
    try {
      await waitFor("the cut worker's pass to hold the lock and wait", async () => {
        const { rows } = await ctx.db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
              AND application_name = 'producer-cut' AND wait_event_type = 'Lock'`,
        );
        return rows.length > 0;
      });
      proxy.blackhole();
      await waitFor(
        "the producer lock to be free for another worker",
        async () => {
          const { rows } = await ctx.db.pool.query<{ ok: boolean }>(
            "SELECT pg_try_advisory_lock(hashtextextended('api.deposit_events', 0)) AS ok",
          );
          if (!rows[0]?.ok) return false;
          await ctx.db.pool.query(
            "SELECT pg_advisory_unlock(hashtextextended('api.deposit_events', 0))",
          );
          return true;
        },
        { timeoutMs: 30_000 },
      );
    } finally {
      await blocker.query("ROLLBACK");
      blocker.release();
      await proxy.close(); // the cut worker's hung queries fail
      await cutPass;
      void cutPool.end();
    }
  }, 90_000);

  it("a pass whose lock session ends while it sends the ledger's events sends no more of them", async () => {
    const credits = [4, 5].map((n) => transferId(`test:inflow:lock-lost:${n}`));
    for (const [i, id] of credits.entries())
      await withTransaction(ctx.db.pool, (client) =>
        bookInflowCredit(client, ledger, {
          transferId: id,
          chainId: 31337,
          address: DEPOSIT,
          asset: "0x0000000000000000000000000000000000000000",
          amount: 100n + BigInt(i),
          owner: "alice",
          blockNumber: "13",
          runId: 4,
          breakN: i + 1,
          creditedBy: "ops-anna",
          reason: "lock lost test",
          memo: "test",
        }),
      );
    const told = async () =>
      (
        await ctx.db.pool.query<{ inflow: string }>(
          `SELECT payload->>'inflow_id' AS inflow FROM api.webhook_events
            WHERE type = 'inflow.credited' AND payload->>'inflow_id' = ANY($1::text[])
            ORDER BY created_at`,
          [credits],
        )
      ).rows.map((r) => r.inflow);
    // Hold the pass at its first ledger event's mark (reads of the marks go on), under the lock.
    const blocker = await ctx.db.pool.connect();
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE api.ledger_event_marks IN SHARE MODE");
    const pass = produceDepositEvents({ common, pool: ctx.db.pool });
    try {
      await waitFor("the pass to wait on its first ledger event's mark", async () => {
        const { rows } = await ctx.db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
              AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO api.ledger_event_marks%'`,
        );
        return rows.length > 0;
      });
      // The lock's session ends (an operator's pg_terminate_backend, a failover): another worker
      // may pass from now on.
      const { rows } = await ctx.db.pool.query<{ ok: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('api.deposit_events', 0)
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      expect(rows).toEqual([{ ok: true }]);
      await waitFor("the producer lock free for another worker", async () => {
        const { rows } = await ctx.db.pool.query<{ free: boolean }>(
          `SELECT NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('api.deposit_events', 0)
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
                  AS free`,
        );
        return rows[0]?.free;
      });
    } finally {
      await blocker.query("ROLLBACK");
      blocker.release();
    }
    // The event it was writing when the lock went commits; the next is left to the next holder.
    expect(await pass).toBe(1);
    expect(await told()).toEqual([credits[0]]);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(1);
    expect(await told()).toEqual(credits);
  }, 60_000);

  it("a pass that lost its lock while about to send credited does not send it after another worker's orphaned", async () => {
    // Worker A reads a credited deposit as due and is held up before its transaction (its pool has
    // no connection to give); its lock's session ends, the deposit's block is reorged out and
    // worker B, holding the lock now, sends `deposit.orphaned`. A then goes on with what it read.
    const tx = `0x${"7".repeat(64)}`;
    const block = `0x${"f".repeat(63)}7`;
    const { rows } = await ctx.db.pool.query<{ id: string }>(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount)
       VALUES (31337, 7, $1, $2, 0, 'tx', 'native', '0x0000000000000000000000000000000000000000',
         '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', $3, 700) RETURNING id::text`,
      [block, tx, DEPOSIT],
    );
    const fact = rows[0]!.id;
    const produce = () => produceDepositEvents({ common, pool: ctx.db.pool });
    await produce(); // detected
    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'confirmed', confirmed_at = now() WHERE id = $1",
      [fact],
    );
    await produce(); // confirmed
    expect(
      await createDepositCrediting({ common, pool: ctx.db.pool, ledger }).creditConfirmed(),
    ).toBe(1);

    // A's pool: its lock session connects; its transactions' connections wait at `opened`.
    const opened = gate();
    let connects = 0;
    let waiting = false;
    const real = ctx.db.pool;
    const held = new Proxy(real, {
      get(target, prop) {
        if (prop === "connect")
          return async () => {
            if (++connects > 1) {
              waiting = true;
              await opened.wait;
            }
            return target.connect();
          };
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as typeof real;
    const a = produceDepositEvents({ common, pool: held });
    try {
      await waitFor("worker A to wait for its credited event's transaction", async () => waiting);
      await ctx.db.pool.query(
        "UPDATE chain.transfers SET status = 'orphaned', orphaned_at = now() WHERE id = $1",
        [fact],
      );
      await ctx.db.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('api.deposit_events', 0)
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      await waitFor("worker B to pass with the lock", async () => (await produce()) > 0);
    } finally {
      opened.open();
    }
    await a;
    await produce();
    const events = await ctx.db.pool.query<{ type: string }>(
      "SELECT type FROM api.webhook_events WHERE payload->>'deposit_id' = $1 ORDER BY sequence",
      [fact],
    );
    // A backend applying them by sequence must end with the deposit orphaned.
    expect(events.rows.map((r) => r.type).at(-1)).toBe("deposit.orphaned");
  }, 60_000);
});
