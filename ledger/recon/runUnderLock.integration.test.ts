/**
 * A reconciliation run and the connections it stands on: the completion transaction waits on the
 * on-chain balance read and must outlive the pool's idle-in-transaction timeout (foundation/db.ts);
 * a run whose per-chain lock is lost mid-run (its session ended) stops and is never stored as
 * completed, since another reconciler may be running the chain already.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createPool } from "../../foundation/db.js";
import { createHealth } from "../../foundation/health.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type RpcProxy, startRpcProxy } from "../../signer/testing/rpcProxy.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createReconciler } from "./reconcile.js";
import { reconcilerRole } from "./role.js";

const CHAIN_ID = 31337;
/** The reconciler role's lock key for the chain (role.ts LOCK_BASE + chain id). */
const RECON_LOCK = BigInt(0x7265_636f_0000 + CHAIN_ID);

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let proxy: RpcProxy;
let ingestor: Ingestor;
let ledger: Ledger;

/** The chain as recon sees it: every RPC call through the proxy (whose delay a test sets). */
const slowChain = () => ({ ...chain, rpcUrls: [proxy.url] });

type RunRow = { id: string; status: string; error: string | null };
const runs = async () =>
  (
    await ctx.db.pool.query<RunRow>(
      "SELECT id::text, status, error FROM recon.runs WHERE chain_id = $1 ORDER BY id",
      [CHAIN_ID],
    )
  ).rows;

async function mineAndSync(n: number): Promise<void> {
  await rpc("anvil_mine", [`0x${n.toString(16)}`]);
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
}

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  proxy = await startRpcProxy(chain.rpcUrls[0]!);
  const [hot] = await rpc<Hex[]>("eth_accounts");
  // Custody addresses, so a run reads on-chain balances (through the proxy).
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: hot!, kind: "hot", owner: "hot-1" },
    { address: freshAddress(401), owner: "alice" },
  ]);
  ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: ctx.common }),
  });
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  await mineAndSync(10);
}, 120_000);

afterAll(async () => {
  await ingestor?.stop();
  await ledger?.close();
  await proxy?.close();
  await ctx?.cleanup();
});

describe("a reconciliation run", () => {
  it("completes though its completion waits on the on-chain read longer than the pool's idle-in-transaction timeout", async () => {
    const pool = createPool(ctx.db.url, {
      max: 4,
      applicationName: "recon-idle-tx",
      idleInTransactionTimeoutMs: 300,
    });
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common, (c) =>
        createEvmAdapter({ ...c, rpcUrls: [proxy.url] }, { common: ctx.common }),
      ),
    });
    proxy.setDelay(1_500);
    try {
      const summary = await reconciler.run({ chain: slowChain(), full: true });
      expect(summary.timingsMs.onchain).toBeGreaterThan(1_000);
      const stored = (await runs()).find((r) => Number(r.id) === summary.runId);
      expect(stored).toMatchObject({ status: "completed", error: null });
    } finally {
      proxy.setDelay(0);
      await pool.end();
    }
  }, 60_000);

  it("whose chain lock is lost mid-run stops, and is stored failed, not completed", async () => {
    await mineAndSync(5);
    const before = (await runs()).length;
    proxy.setDelay(4_000); // the run is still reading when its lock goes
    const handle = await reconcilerRole({
      sweeps: sweepReader,
      chains: (common) =>
        adapterPerChain(common, (c) =>
          createEvmAdapter({ ...c, rpcUrls: [proxy.url] }, { common }),
        ),
    }).start({
      common: ctx.common,
      pool: ctx.db.pool,
      redis: ctx.redis.redis,
      queues: ctx.queues,
      health: createHealth(),
      // 30 s blocks: the role's grace period is one block.
      chains: [{ ...chain, blockTimeMs: 30_000 }],
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
      const { rows } = await ctx.db.pool.query<{ ok: boolean }>(
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
      proxy.setDelay(0);
      await handle.stop();
    }
  }, 120_000);
});
