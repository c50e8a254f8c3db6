/**
 * A reconciliation run and the connections it stands on: the completion transaction waits on the
 * on-chain balance read and must outlive the pool's idle-in-transaction timeout (foundation/db.ts);
 * a run whose per-chain lock is lost mid-run (its session ended) stops and is never stored as
 * completed, since another reconciler may be running the chain already.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createPool } from "../../foundation/db.js";
import { createHealth } from "../../foundation/health.js";
import { freshAddress } from "../../indexers/testing/chain.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createReconciler } from "./reconcile.js";
import { reconcilerRole } from "./role.js";
import { type SlowNodeChain, startSlowNodeChain } from "./testing/slowNodeChain.js";

const CHAIN_ID = 31337;
/** The reconciler role's lock key for the chain (role.ts LOCK_BASE + chain id). */
const RECON_LOCK = BigInt(0x7265_636f_0000 + CHAIN_ID);

let t: SlowNodeChain;

/** The chain as recon sees it: every RPC call through the proxy (whose delay a test sets). */
const slowChain = () => ({ ...t.chain, rpcUrls: [t.proxy.url] });

type RunRow = { id: string; status: string; error: string | null };
const runs = async () =>
  (
    await t.ctx.db.pool.query<RunRow>(
      "SELECT id::text, status, error FROM recon.runs WHERE chain_id = $1 ORDER BY id",
      [CHAIN_ID],
    )
  ).rows;

beforeAll(async () => {
  // Custody addresses, so a run reads on-chain balances (through the proxy).
  t = await startSlowNodeChain(([hot]) => [
    { address: hot!, kind: "hot", owner: "hot-1" },
    { address: freshAddress(401), owner: "alice" },
  ]);
  await t.mineAndSync(10);
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

describe("a reconciliation run", () => {
  it("completes though its completion waits on the on-chain read longer than the pool's idle-in-transaction timeout", async () => {
    const pool = createPool(t.ctx.db.url, {
      max: 4,
      applicationName: "recon-idle-tx",
      idleInTransactionTimeoutMs: 300,
    });
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: t.ctx.common,
      pool,
      chains: adapterPerChain(t.ctx.common, (c) =>
        createEvmAdapter({ ...c, rpcUrls: [t.proxy.url] }, { common: t.ctx.common }),
      ),
    });
    t.proxy.setDelay(1_500);
    try {
      const summary = await reconciler.run({ chain: slowChain(), full: true });
      expect(summary.timingsMs.onchain).toBeGreaterThan(1_000);
      const stored = (await runs()).find((r) => Number(r.id) === summary.runId);
      expect(stored).toMatchObject({ status: "completed", error: null });
    } finally {
      t.proxy.setDelay(0);
      await pool.end();
    }
  }, 60_000);

  it("whose chain lock is lost mid-run stops, and is stored failed, not completed", async () => {
    await t.mineAndSync(5);
    const before = (await runs()).length;
    t.proxy.setDelay(4_000); // the run is still reading when its lock goes
    const handle = await reconcilerRole({
      sweeps: sweepReader,
      chains: (common) =>
        adapterPerChain(common, (c) =>
          createEvmAdapter({ ...c, rpcUrls: [t.proxy.url] }, { common }),
        ),
    }).start({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      redis: t.ctx.redis.redis,
      queues: t.ctx.queues,
      health: createHealth(),
      // 30 s blocks: the role's grace period is one block.
      chains: [{ ...t.chain, blockTimeMs: 30_000 }],
      httpPlugins: [],
    });
    try {
      const run = await waitFor(
        "the role's run to start",
        async () => (await runs()).slice(before).find((r) => r.status === "running"),
        { timeoutMs: 30_000, everyMs: 20 },
      );
      // The lock's session ends (an operator's pg_terminate_backend, a failover): the lock is free
      // for another reconciler at once.
      const { rows } = await t.ctx.db.pool.query<{ ok: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND objsubid = 1
            AND classid::bigint = $1 AND objid::bigint = $2
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [(RECON_LOCK >> 32n).toString(), (RECON_LOCK & 0xffff_ffffn).toString()],
      );
      expect(rows).toEqual([{ ok: true }]);
      const ended = await waitFor(
        "the run to end",
        async () => (await runs()).find((r) => r.id === run.id && r.status !== "running"),
        { timeoutMs: 60_000, everyMs: 50 },
      );
      expect(ended.status).toBe("failed");
      expect(ended.error).toMatch(/lock/);
    } finally {
      t.proxy.setDelay(0);
      await handle.stop();
    }
  }, 120_000);
});
