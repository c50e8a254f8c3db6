/**
 * A reconciliation run and the connections it stands on: the completion transaction waits on the
 * on-chain balance read and must outlive the pool's idle-in-transaction timeout (foundation/db.ts);
 * a run whose per-chain lock is lost mid-run (its session ended) stops and is never stored as
 * completed, since another reconciler may be running the chain already; and `custody-node
 * reconcile` takes the same lock, waiting for the role's run of the chain to end (an older
 * snapshot completing after a newer one would reopen what the newer one resolved).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createPool } from "../../foundation/db.js";
import { freshAddress, sendAndMine } from "../../indexers/testing/chain.js";
import { gate } from "../../ops/testing/gate.js";
import { chainCli, spawnCli } from "../../ops/testing/process.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createDepositCrediting } from "../depositCrediting.js";
import { breakIdentity, breakStatesOf } from "./breakStates.js";
import { createReconciler } from "./reconcile.js";
import { RECON_LOCK_BASE } from "./runLock.js";
import { type SlowNodeChain, startSlowNodeChain } from "./testing/slowNodeChain.js";

const CHAIN_ID = 31337;
/** The reconciler role's lock key for the chain. */
const RECON_LOCK = BigInt(RECON_LOCK_BASE + CHAIN_ID);

let t: SlowNodeChain;

/** The chain as recon sees it: every RPC call through the proxy (whose delay a test sets). */
const slowChain = () => ({ ...t.chain, rpcUrls: [t.proxy.url] });

type RunRow = {
  id: string;
  status: string;
  error: string | null;
  block: number;
  started_at: Date;
  finished_at: Date | null;
};
const runs = async () =>
  (
    await t.ctx.db.pool.query<RunRow>(
      `SELECT id::text, status, error, block_number::int AS block, started_at, finished_at
         FROM recon.runs WHERE chain_id = $1 ORDER BY id`,
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
    const handle = await t.startRole();
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

  it("from the CLI waits for the role's run of the chain: an older snapshot never completes after a newer one", async () => {
    // A deposit to alice's address nobody credited: a missing credit, open.
    await sendAndMine(t.rpc, { from: t.accounts[2]!, to: freshAddress(401), value: 10n ** 18n });
    await t.mineAndSync(3);
    const direct = createReconciler({
      sweeps: sweepReader,
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chains: adapterPerChain(t.ctx.common),
    });
    const found = await direct.run({ chain: t.chain });
    const missing = found.breaks.find((b) => b.type === "missing_credit");
    expect(missing).toBeDefined();
    const identity = breakIdentity(CHAIN_ID, missing!);
    const stateOf = async () =>
      (await breakStatesOf(t.ctx.db.pool, [identity])).get(identity)?.state;
    expect(await stateOf()).toBe("open");
    await t.mineAndSync(3);

    // The role's run takes its snapshot (the credit not yet booked), then is held in its load at
    // its read of booked sweeps (a slow statement, a busy database) until the test lets it go on.
    const inLoad = gate();
    const goOn = gate();
    const held = async <T>(read: () => Promise<T>) => {
      inLoad.open();
      await goOn.wait;
      return read();
    };
    const before = (await runs()).length;
    const handle = await t.startRole({
      sweptAddressesSince: (client, args) =>
        held(() => sweepReader.sweptAddressesSince(client, args)),
      bookedSweepItems: (client, args) => held(() => sweepReader.bookedSweepItems(client, args)),
    });
    const cli = chainCli({ databaseUrl: t.ctx.db.url, chain: t.chain });
    try {
      await inLoad.wait;
      const role = (await runs()).slice(before).find((r) => r.status === "running")!;
      expect(role).toBeDefined();
      // Meanwhile the deposit is credited, and an operator reconciles the chain by hand.
      await createDepositCrediting({
        common: t.ctx.common,
        pool: t.ctx.db.pool,
        ledger: t.ledger,
      }).sweep({ chainId: CHAIN_ID });
      const run = spawnCli(["reconcile", "--chain", t.chain.key], cli.env);
      // The CLI's run ends, or says it waits for the chain; then the role's run goes on.
      let ended = false;
      void run.exited.then(() => {
        ended = true;
      });
      await waitFor(
        "the CLI's run to end or wait",
        async () => ended || /waiting/.test(run.stderr()),
        {
          timeoutMs: 60_000,
          everyMs: 50,
        },
      );
      goOn.open();
      const exited = await run.exited;
      expect([0, 3], run.output()).toContain(exited.code); // 3: the hot wallet's unbooked float
      await waitFor(
        "the role's run to end",
        async () => (await runs()).find((r) => r.id === role.id && r.status !== "running"),
        { timeoutMs: 60_000, everyMs: 50 },
      );

      const all = (await runs()).slice(before);
      const roleRun = all.find((r) => r.id === role.id)!;
      const cliRun = all.find((r) => r.id !== role.id)!;
      expect(roleRun.status).toBe("completed");
      expect(cliRun.status).toBe("completed");
      // The newest snapshot had the last word: the credited deposit's break is resolved.
      expect(await stateOf()).toBe("resolved");
      // One run of the chain at a time: the CLI's began after the role's was stored.
      expect(cliRun.started_at.getTime()).toBeGreaterThanOrEqual(roleRun.finished_at!.getTime());
      // The operator was told why the command waited, naming the chain.
      expect(run.stderr()).toContain(`chain ${t.chain.key} (${CHAIN_ID})`);
    } finally {
      goOn.open();
      cli.remove();
      await handle.stop();
    }
  }, 120_000);
});
