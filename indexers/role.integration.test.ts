/**
 * The `indexer` role as `custody-node start` runs it, on an anvil mining a block per second:
 * readiness passes while the head advances, fails with a reason when the chain stops, metrics are
 * exported, the doorbell rings on the real queue, and a second instance stands by (one writer)
 * and takes over when the writer stops. Then a lone ingestor follows new heads over WS. Last, a
 * task whose dead predecessor's Postgres session still holds the chain's lock says so (readiness
 * detail, `custody_indexer_lease_held` 0: NoActiveIndexer) and takes over once that session ends.
 * Then a halted chain's writer loses its lease connection: this process stops exporting what only
 * the writer knows (no stale `custody_chain_halted` 1 after the resume), and stopped instances
 * export nothing. A task that lost its lease does not fail readiness with its last halt, and one
 * that re-takes it exports no halt before it has read the chain's (none while that read waits),
 * and one whose lock session ends during that read does not become the writer.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createHealth, type Health } from "../foundation/health.js";
import type { RoleContext, RoleHandle } from "../foundation/roles.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { waitFor } from "../ops/testing/wait.js";
import { CHAIN_FACTS_QUEUE, type ChainFactsJob } from "./doorbell.js";
import { closeHalt, insertHalt } from "./halts.js";
import { createIndexerRole, indexerRole } from "./role.js";
import { INDEXER_LEASE_NAMESPACE } from "./sync/loop.js";
import { anvilRpc, freshAddress, type Rpc, sendTx, watch } from "./testing/chain.js";

const CHAIN_ID = 31337;
/**
 * For the halt cases: the role as production runs it, but a halt another process opens is read
 * within 200 ms rather than the default 5 s (sync/loop.ts `haltRecheckMs`), which each case would
 * otherwise wait out. Its lease watch keeps the default `leaseLostAfterMs`, as production.
 */
const haltRole = createIndexerRole({ haltRecheckMs: 200 });
let ctx: TestContext;
let rpc: Rpc;
const handles: RoleHandle[] = [];

function roleContext(h: Health): RoleContext {
  return {
    common: ctx.common,
    pool: ctx.db.pool,
    redis: ctx.redis.redis,
    queues: ctx.queues,
    health: h,
    chains: ctx.config.chains,
    httpPlugins: [],
  };
}

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      { chainId: CHAIN_ID, blockTime: 1, config: { confirmations: { kind: "blocks", blocks: 1 } } },
    ],
  });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  await watch(ctx.db.pool, CHAIN_ID, [{ address: freshAddress(1) }]);
});

afterAll(async () => {
  for (const h of handles) await h.stop();
  await ctx?.cleanup();
});

it("runs, reports readiness and metrics, rings the doorbell, and keeps one writer per chain", async () => {
  await rpc("evm_setIntervalMining", [1]); // a block per second, whatever ran before
  // Two instances for the same chain: one must write, the other stand by.
  const instances: { handle: RoleHandle; health: Health }[] = [];
  for (let i = 0; i < 2; i++) {
    const health = createHealth();
    const handle = await indexerRole.start(roleContext(health));
    handles.push(handle);
    instances.push({ handle, health });
  }
  const check = `indexer:test-${CHAIN_ID}`;

  const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
  const tx = await sendTx(rpc, { from, to: freshAddress(1), value: 5n });
  const block = await waitFor("the deposit to be confirmed", async () => {
    const { rows } = await ctx.db.pool.query(
      "SELECT status, block_number::int AS n FROM chain.transfers WHERE tx_hash = $1",
      [tx.toLowerCase()],
    );
    return rows[0]?.status === "confirmed" ? (rows[0].n as number) : undefined;
  });
  for (const { health } of instances) {
    const ready = await health.run();
    expect(ready.ok).toBe(true);
    expect(ready.checks[check]?.ok).toBe(true);
  }

  // The doorbell rang on this test's queue for the deposit's block.
  const jobs = await ctx.queues.queue<ChainFactsJob>(CHAIN_FACTS_QUEUE).getJobs(["waiting"]);
  expect(
    jobs.some(
      (j) => j.data.chainId === CHAIN_ID && j.data.fromBlock <= block && block <= j.data.toBlock,
    ),
  ).toBe(true);

  const metrics = await ctx.common.metrics.registry.metrics();
  for (const name of [
    "custody_indexer_indexed_block",
    "custody_indexer_lag_blocks",
    "custody_indexer_blocks_total",
    "custody_indexer_facts_total",
    "custody_indexer_rpc_calls_per_block",
    "custody_rpc_requests_total",
    "custody_rpc_request_duration_seconds",
  ])
    expect(metrics).toContain(name);
  // The other instance never raced the writer for the checkpoint.
  expect(metrics).not.toContain('code="INDEXER_TIP_MOVED"');
  // One instance of the process holds the chain: NoActiveIndexer stays silent.
  expect(await leaseHeld()).toBe("1");

  // The chain stops producing blocks: after 3 block times the writer's readiness fails and says
  // why; the standby (which follows nothing) stays ready. Exactly one instance was writing.
  await rpc("evm_setIntervalMining", [0]);
  const active = await waitFor("one instance's readiness to fail", async () => {
    const results = await Promise.all(instances.map((i) => i.health.run()));
    const failing = results.flatMap((r, i) => (r.ok ? [] : [i]));
    return failing.length > 0 ? failing : undefined;
  });
  expect(active).toHaveLength(1);
  const writer = instances[active[0]!]!;
  const standby = instances[1 - active[0]!]!;
  const standing = await standby.health.run();
  expect(standing.ok).toBe(true);
  expect(standing.checks[check]?.detail).toContain("stands by");
  const failed = await writer.health.run();
  expect(failed.checks[check]?.detail).toContain("has not advanced");
  const gauge = await ctx.common.metrics.registry.getSingleMetricAsString(
    "custody_indexer_unhealthy",
  );
  expect(gauge).toMatch(/reason="head_stalled"[^\n]*} 1/);

  // Blocks again: readiness recovers.
  await rpc("evm_setIntervalMining", [1]);
  await waitFor("readiness to recover", async () => (await writer.health.run()).ok);

  // The writer goes away: the standby takes the chain over and indexes the next deposit.
  await writer.handle.stop();
  handles.splice(handles.indexOf(writer.handle), 1);
  const next = await sendTx(rpc, { from, to: freshAddress(1), value: 6n });
  await waitFor("the standby to take over and store the next deposit", async () => {
    const { rows } = await ctx.db.pool.query("SELECT 1 FROM chain.transfers WHERE tx_hash = $1", [
      next.toLowerCase(),
    ]);
    return rows.length === 1;
  });
  expect((await standby.health.run()).ok).toBe(true);
});

it("follows new heads over WS when a wsUrl is configured (polling only as a slow backstop)", async () => {
  const { createIngestor } = await import("./createIngestor.js");
  const { createEvmAdapter } = await import("../chains/index.js");
  await rpc("evm_setIntervalMining", [0]);
  await rpc("evm_setAutomine", [true]); // blocks only when we send transactions
  const chain = {
    ...ctx.config.chains[0]!,
    wsUrl: ctx.anvils[0]!.rpcUrl.replace("http://", "ws://"),
  };
  const ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: ctx.common }),
    options: { pollIntervalMs: 60_000 },
  });
  // Let the role instances above go: this ingestor must take the chain's lease.
  for (const h of handles.splice(0)) await h.stop();
  ingestor.start();
  try {
    const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
    // Mine empty blocks until the subscription is live (it connects asynchronously).
    await waitFor("the new-heads subscription", async () => {
      await rpc("evm_mine");
      return ingestor.status().wsHeads > 0;
    });
    const headsBefore = ingestor.status().wsHeads;
    const tx = await sendTx(rpc, { from, to: freshAddress(1), value: 7n });
    // With a 60 s poll interval, only the new-heads subscription can bring this in before the
    // 45 s deadline (which throws).
    const rows = await waitFor(
      "the WS-triggered pass",
      async () => {
        const { rows } = await ctx.db.pool.query(
          "SELECT amount FROM chain.transfers WHERE tx_hash = $1",
          [tx.toLowerCase()],
        );
        return rows.length > 0 ? rows : undefined;
      },
      { timeoutMs: 45_000 },
    );
    expect(rows).toEqual([{ amount: 7n }]);
    expect(ingestor.status().wsHeads).toBeGreaterThan(headsBefore);
  } finally {
    await ingestor.stop();
  }
});

it("stands by, saying so, while a dead task's session holds the chain's lock; takes over once it ends", async () => {
  for (const h of handles.splice(0)) await h.stop();
  await rpc("evm_setAutomine", [false]);
  await rpc("evm_setIntervalMining", [1]);
  // A task that died without its Postgres session ending (a frozen or partitioned host: the server
  // keeps the session until TCP keepalive gives up) still holds the chain's lock.
  const dead = await ctx.db.pool.connect();
  dead.on("error", () => {});
  await dead.query("SELECT pg_advisory_lock($1, $2)", [INDEXER_LEASE_NAMESPACE, CHAIN_ID]);
  try {
    const health = createHealth();
    handles.push(await indexerRole.start(roleContext(health)));
    const check = `indexer:test-${CHAIN_ID}`;
    await waitFor("the new task to stand by", async () => {
      const detail = (await health.run()).checks[check]?.detail;
      return detail?.includes("stands by") ? true : undefined;
    });
    // Nothing indexes the chain, yet the task is ready (a standby is): the lease gauge says it.
    expect((await health.run()).ok).toBe(true);
    expect(await leaseHeld()).toBe("0");

    // The runbook's step (docs/runbooks/NoActiveIndexer.md): find the session holding the lock
    // and end it. The standby takes over and indexes.
    const { rows } = await ctx.db.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
    );
    expect(rows).toHaveLength(1);
    await ctx.db.pool.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
    const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
    const tx = await sendTx(rpc, { from, to: freshAddress(1), value: 8n });
    await waitFor("the standby to take over and store the deposit", async () => {
      const { rows } = await ctx.db.pool.query("SELECT 1 FROM chain.transfers WHERE tx_hash = $1", [
        tx.toLowerCase(),
      ]);
      return rows.length === 1;
    });
    expect(await leaseHeld()).toBe("1");
    expect((await health.run()).checks[check]?.detail).toBeUndefined();
  } finally {
    dead.release(true);
  }
});

it("a task that loses its lease exports none of the writer's gauges; stopped tasks export nothing", async () => {
  for (const h of handles.splice(0)) await h.stop();
  await rpc("evm_setAutomine", [false]);
  await rpc("evm_setIntervalMining", [1]);
  // Two instances in one process (dev mode): one writes, one stands by.
  for (let i = 0; i < 2; i++) handles.push(await haltRole.start(roleContext(createHealth())));
  await waitFor("a writer", async () => ((await leaseHeld()) === "1" ? true : undefined));
  await waitFor("the writer's gauges", async () =>
    (await Promise.all(WRITER_GAUGES.map(exported))).every((v) => v !== undefined)
      ? true
      : undefined,
  );
  // The chain is halted (a reorg reached a final block): the writer reports it.
  const client = await ctx.db.pool.connect();
  try {
    await insertHalt(client, { chainId: CHAIN_ID, reason: "test halt", details: {} });
  } finally {
    client.release();
  }
  await waitFor("the writer to report the halt", async () =>
    (await exported("custody_chain_halted")) === "1" ? true : undefined,
  );

  // The writer's lease connection dies (a Postgres failover, a network cut) and another session
  // takes the lock before any task of this process can: both instances stand by.
  const other = await ctx.db.pool.connect();
  other.on("error", () => {});
  try {
    await waitFor("the other session to hold the chain's lock", async () => {
      const { rows } = await ctx.db.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_locks
          WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
      );
      for (const { pid } of rows) await ctx.db.pool.query("SELECT pg_terminate_backend($1)", [pid]);
      const { rows: got } = await other.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_lock($1, $2) AS ok",
        [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
      );
      return got[0]?.ok ? true : undefined;
    });
    await waitFor("this process to notice it lost the lease", async () =>
      (await leaseHeld()) === "0" ? true : undefined,
    );
    // The operator resumes the chain meanwhile. This process writes nothing and knows nothing of
    // the chain now: it must not keep saying the chain is halted (ChainHalted would fire on after
    // the resume), nor show its last head, tip or lag as the chain's.
    const resumer = await ctx.db.pool.connect();
    try {
      await closeHalt(resumer, CHAIN_ID, { resumedBy: "test", reason: "test" });
    } finally {
      resumer.release();
    }
    for (const name of WRITER_GAUGES) expect(await exported(name), name).toBeUndefined();
  } finally {
    other.release(true);
  }
  // The lock is free again: one instance takes over and reports the chain's truth.
  await waitFor("an instance to take the chain over", async () =>
    (await leaseHeld()) === "1" ? true : undefined,
  );
  await waitFor("the writer to report the chain running", async () =>
    (await exported("custody_chain_halted")) === "0" ? true : undefined,
  );

  // Stopped instances export nothing for the chain (NoIndexerRunning reads the absence).
  for (const h of handles.splice(0)) await h.stop();
  expect(await leaseHeld()).toBeUndefined();
  expect(await exported("custody_indexer_unhealthy")).toBeUndefined();
  for (const name of WRITER_GAUGES) expect(await exported(name), name).toBeUndefined();
});

it("a task whose lease connection died reports none of the writer's readiness reasons", async () => {
  for (const h of handles.splice(0)) await h.stop();
  await rpc("evm_setIntervalMining", [1]);
  const health = createHealth();
  handles.push(await haltRole.start(roleContext(health)));
  const check = `indexer:test-${CHAIN_ID}`;
  await waitFor("a writer", async () => ((await leaseHeld()) === "1" ? true : undefined));
  await withHalt(async () => {
    await waitFor("the writer to report the halt", async () =>
      (await health.run()).checks[check]?.detail?.includes("chain halted") ? true : undefined,
    );
    // Its next read of the halt is slow (a locked or loaded Postgres), and meanwhile its lease
    // connection dies: it is not the chain's writer any more, whatever it last saw.
    await withHaltsLocked(async () => {
      await waitFor("the writer's read of the halt to wait", haltReadWaiting);
      await terminateLeaseHolder();
      await waitFor("the task to notice it lost the lease", async () =>
        (await leaseHeld()) === "0" ? true : undefined,
      );
      const result = (await health.run()).checks[check];
      // Ready, as a standby is, saying it does not write the chain; not the last writer's halt.
      expect(result?.ok).toBe(true);
      expect(result?.detail).not.toContain("chain halted");
      expect(result?.detail).toContain("lease");
    });
  });
});

it("a task re-taking the lease exports the halt it reads then, not the one it saw before", async () => {
  for (const h of handles.splice(0)) await h.stop();
  await rpc("evm_setIntervalMining", [1]);
  handles.push(await haltRole.start(roleContext(createHealth())));
  await waitFor("a writer", async () => ((await leaseHeld()) === "1" ? true : undefined));
  const other = await ctx.db.pool.connect();
  other.on("error", () => {});
  let otherReleased = false;
  const releaseOther = () => {
    if (!otherReleased) other.release(true);
    otherReleased = true;
  };
  try {
    await withHalt(async () => {
      await waitFor("the writer to report the halt", async () =>
        (await exported("custody_chain_halted")) === "1" ? true : undefined,
      );
      // Another session takes the chain's lock: the task stands by, its last halt remembered.
      await waitFor("the other session to hold the chain's lock", async () => {
        await terminateLeaseHolder();
        const { rows } = await other.query<{ ok: boolean }>(
          "SELECT pg_try_advisory_lock($1, $2) AS ok",
          [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
        );
        return rows[0]?.ok ? true : undefined;
      });
      await waitFor("the task to stand by", async () =>
        (await leaseHeld()) === "0" ? true : undefined,
      );
    });
    // The chain was resumed (withHalt closed it). The lock comes free while the task's read of
    // the halts is slow: until that read answers, it exports no halt rather than its stale 1.
    await withHaltsLocked(async () => {
      releaseOther();
      await waitFor("the task to take the chain's lock", async () =>
        (await leaseHolders()).length === 1 ? true : undefined,
      );
      await waitFor("its read of the halt to wait", haltReadWaiting);
      expect(await exported("custody_chain_halted")).not.toBe("1");
    });
    await waitFor("the writer to report the chain running", async () =>
      (await exported("custody_chain_halted")) === "0" ? true : undefined,
    );
  } finally {
    releaseOther();
  }
});

it("a task whose lease session ends while it reads the halt does not count itself the writer", async () => {
  for (const h of handles.splice(0)) await h.stop();
  await rpc("evm_setIntervalMining", [1]);
  handles.push(await indexerRole.start(roleContext(createHealth())));
  await waitFor("a writer", async () => ((await leaseHeld()) === "1" ? true : undefined));
  const others: { pid: number; release: (err?: boolean) => void }[] = [];
  /** Another session takes the chain's lock, ending whichever session holds it. */
  async function takeLockElsewhere(): Promise<void> {
    const other = await ctx.db.pool.connect();
    other.on("error", () => {});
    const { rows } = await other.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    others.push({ pid: rows[0]!.pid, release: (err) => other.release(err) });
    await waitFor("another session to hold the chain's lock", async () => {
      await terminateLeaseHolder();
      const { rows } = await other.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_lock($1, $2) AS ok",
        [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
      );
      return rows[0]?.ok ? true : undefined;
    });
  }
  try {
    await takeLockElsewhere();
    await waitFor("the task to stand by", async () =>
      (await leaseHeld()) === "0" ? true : undefined,
    );
    await withHaltsLocked(async () => {
      const other = others.shift()!;
      other.release(true);
      await waitFor("the task to take the chain's lock", async () => {
        const holders = await leaseHolders();
        return holders.length === 1 && holders[0] !== other.pid ? true : undefined;
      });
      await waitFor("its read of the halt to wait", haltReadWaiting);
      // While it waits, its lock session ends (an operator's pg_terminate_backend, a failover)
      // and another session takes the chain's lock.
      await takeLockElsewhere();
      // ...and its client hears so (the server's goodbye, then the socket closing) while the
      // read still waits.
      await new Promise((r) => setTimeout(r, 300));
    });
    // Its read of the halt answers: it must not write the chain as if it held the lock, not even
    // until its watch's next check.
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      expect(await leaseHeld()).toBe("0");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const other of others.splice(0)) other.release(true);
  }
});

/** With the test chain halted (as a reorg at a final block does), then resumed. */
async function withHalt(body: () => Promise<void>): Promise<void> {
  const client = await ctx.db.pool.connect();
  try {
    await insertHalt(client, { chainId: CHAIN_ID, reason: "test halt", details: {} });
    await body();
  } finally {
    await closeHalt(client, CHAIN_ID, { resumedBy: "test", reason: "test" });
    client.release();
  }
}

/** With every read of chain.halts waiting on a lock this holds. */
async function withHaltsLocked(body: () => Promise<void>): Promise<void> {
  const blocker = await ctx.db.pool.connect();
  try {
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE chain.halts IN ACCESS EXCLUSIVE MODE");
    await body();
  } finally {
    await blocker.query("ROLLBACK");
    blocker.release();
  }
}

/** Some session's query of chain.halts is waiting on a lock. */
async function haltReadWaiting(): Promise<true | undefined> {
  const { rows } = await ctx.db.pool.query(
    `SELECT 1 FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock'
        AND query LIKE '%chain.halts%' AND pid <> pg_backend_pid()`,
  );
  return rows.length > 0 ? true : undefined;
}

/** Sessions holding the test chain's indexer lock. */
async function leaseHolders(): Promise<number[]> {
  const { rows } = await ctx.db.pool.query<{ pid: number }>(
    `SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [INDEXER_LEASE_NAMESPACE, CHAIN_ID],
  );
  return rows.map((r) => r.pid);
}

async function terminateLeaseHolder(): Promise<void> {
  for (const pid of await leaseHolders())
    await ctx.db.pool.query("SELECT pg_terminate_backend($1)", [pid]);
}

/** Gauges only the chain's writer (the lease holder) knows. */
const WRITER_GAUGES = [
  "custody_chain_halted",
  "custody_indexer_no_healthy_endpoint",
  "custody_indexer_chain_head",
  "custody_indexer_indexed_block",
  "custody_indexer_lag_blocks",
  "custody_indexer_finalized_block",
];

/** `custody_indexer_lease_held` of the test chain as this process exports it. */
const leaseHeld = () => exported("custody_indexer_lease_held");

/** A gauge's (first) value for the test chain as this process exports it; undefined if none. */
async function exported(name: string): Promise<string | undefined> {
  const text = await ctx.common.metrics.registry.metrics();
  return new RegExp(`^${name}\\{chain_id="${CHAIN_ID}"[^}]*\\} (\\S+)$`, "m").exec(text)?.[1];
}
