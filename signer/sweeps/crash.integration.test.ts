/**
 * Killing the worker during sweeps books each sweep once. The worker is the real
 * `custody-node start --roles worker` process, SIGKILLed as soon as it has requested sweeps and
 * again as soon as it has booked the first one (each time with work still owed: addresses not yet
 * swept and booked), then restarted; the signer, indexer and ledger crediting run in the test
 * process. Work is owed at each kill by construction, not by the test being quicker than the
 * worker: the signer starts only after the first kill (nothing is sent before, so nothing can be
 * booked), and the test holds the row lock of every open sweep so the restarted worker books
 * exactly one before it waits on the next.
 */
import pg from "pg";
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { type ChainCli, type CliProcess, chainCli, spawnCli } from "../../ops/testing/process.js";
import { waitFor, within } from "../../ops/testing/wait.js";
import { hotAccount } from "./bookings.js";
import { DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;
let config: ChainCli;
let env: Record<string, string>;
let worker: CliProcess | undefined;
let mining: NodeJS.Timeout | undefined;

const CHAIN = {
  nativeSweepThreshold: "1000",
  sweepBatchSize: 10,
  sweepIntervalMs: 250,
};

beforeAll(async () => {
  s = await startSweepStack(CHAIN);
  // The worker's config file: the chain's rules as loaded, with traces and the sweep settings.
  config = chainCli({
    databaseUrl: s.ctx.db.url,
    chain: s.ctx.config.chains[0]!,
    entry: { traces: true, ...CHAIN },
  });
  env = {
    ...config.env,
    REDIS_URL: s.ctx.redis.url,
    REDIS_PREFIX: s.ctx.redis.prefix,
    PORT: "0",
  };
});

afterAll(async () => {
  if (mining) clearInterval(mining);
  if (worker && worker.child.exitCode === null) {
    worker.child.kill("SIGKILL");
    await worker.exited;
  }
  await s?.close();
  config?.remove();
});

const count = async (sql: string) => (await s.ctx.db.pool.query(sql)).rows[0].n as number;

/** Addresses not yet in a booked sweep: the work still owed. */
const unbooked = (all: number) =>
  count(`SELECT (${all} - count(DISTINCT i.address))::int AS n
           FROM custody.sweep_items i JOIN custody.sweeps w ON w.id = i.sweep_id
          WHERE w.status = 'booked' AND i.swept > 0`);

/** A sweep's row lock held on its own connection: the worker's settlement of it waits for release. */
type HeldSweep = { pid: number; release: () => Promise<void> };

async function holdSweep(id: string): Promise<HeldSweep> {
  const client = new pg.Client({ connectionString: s.ctx.db.url });
  await client.connect();
  await client.query("BEGIN");
  await client.query("SELECT 1 FROM custody.sweeps WHERE id = $1 FOR UPDATE", [id]);
  const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  return {
    pid: rows[0]!.pid,
    release: async () => {
      await client.query("ROLLBACK");
      await client.end();
    },
  };
}

/** The held sweep (of `held`) another backend, the worker settling it, waits on. */
function waitedOn(held: HeldSweep[]): Promise<HeldSweep> {
  return waitFor(
    "the worker waiting on a held sweep",
    async () => {
      const { rows } = await s.ctx.db.pool.query<{ by: number[] }>(
        "SELECT pg_blocking_pids(pid) AS by FROM pg_stat_activity WHERE datname = current_database()",
      );
      const blocking = new Set(rows.flatMap((r) => r.by));
      return held.find((h) => blocking.has(h.pid));
    },
    { everyMs: 20 },
  );
}

/** SIGKILL the worker; returns the work it left owed at that instant. */
async function killWorker(all: number): Promise<number> {
  worker!.child.kill("SIGKILL");
  const { signal } = await within("the killed worker to exit", worker!.exited, 30_000);
  expect(signal).toBe("SIGKILL");
  return unbooked(all);
}

describe("worker killed during sweeps", () => {
  it("books each sweep exactly once after restarts", async () => {
    const hotBefore = await s.h.client.getBalance({ address: s.hot });
    const addresses: Address[] = [];
    let total = 0n;
    for (let i = 0; i < 30; i++) {
      const address = await s.allocate(`crash-${i}`);
      addresses.push(address);
      const value = 10n ** 16n + BigInt(i);
      total += value;
      await sendAndMine(s.rpc, {
        from: DEPOSITOR.toLowerCase() as Hex,
        to: address,
        value,
        gas: 21_000n,
      });
    }
    await s.mine(2);
    await s.syncAndCredit();
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(total);
    // Blocks keep coming so the signer can confirm while the worker comes and goes.
    mining = setInterval(() => void s.mine(1).catch(() => {}), 200);

    worker = spawnCli(["start", "--roles", "worker"], env);
    await waitFor(
      "sweeps requested",
      async () => (await count("SELECT count(*)::int AS n FROM custody.sweeps")) > 0,
      { everyMs: 20 },
    );
    // Killed mid-work: sweeps requested, none sent yet.
    expect(await killWorker(addresses.length)).toBe(addresses.length);

    s.startSigner();
    const { rows: open } = await s.ctx.db.pool.query<{ id: string }>(
      "SELECT id FROM custody.sweeps WHERE status = 'open'",
    );
    const held = await Promise.all(open.map((r) => holdSweep(r.id)));
    worker = spawnCli(["start", "--roles", "worker"], env);
    // Let the worker book the first sweep it reaches; killed once it waits on the next one.
    const first = await waitedOn(held);
    await first.release();
    const rest = held.filter((h) => h !== first);
    await waitedOn(rest);
    const owed = await killWorker(addresses.length);
    for (const h of rest) await h.release();
    expect(owed).toBeGreaterThan(0);
    expect(owed).toBeLessThan(addresses.length);

    worker = spawnCli(["start", "--roles", "worker"], env);
    await waitFor(
      "every address swept and booked",
      async () => {
        const open = await count(
          "SELECT count(*)::int AS n FROM custody.sweeps WHERE status = 'open'",
        );
        const left = await s.balanceOf(NATIVE, "custody:deposits");
        return open === 0 && left === 0n;
      },
      { timeoutMs: 120_000, everyMs: 200 },
    );
    worker.child.kill("SIGTERM");
    expect((await within("the worker to stop on SIGTERM", worker.exited, 60_000)).code).toBe(0);
    clearInterval(mining);
    mining = undefined;

    // Exactly one sweep transfer per address, summing to what was deposited.
    const perAddress = await s.ctx.db.pool.query<{ address: string; n: number; amount: bigint }>(
      `SELECT i.address, count(*)::int AS n, sum(i.swept) AS amount
       FROM custody.sweep_items i JOIN custody.sweeps w ON w.id = i.sweep_id
       WHERE w.status = 'booked' AND i.swept > 0 GROUP BY i.address`,
    );
    expect(perAddress.rows).toHaveLength(30);
    expect(perAddress.rows.every((r) => r.n === 1)).toBe(true);
    const ledgerSweeps = await s.ctx.db.pool.query<{ n: number; amount: bigint }>(
      "SELECT count(*)::int AS n, sum(amount) AS amount FROM ledger.transfers WHERE kind = 'sweep'",
    );
    expect(ledgerSweeps.rows[0]).toEqual({ n: 30, amount: total });
    // One gas transfer per sweep transaction that was mined, and the hot wallet agrees to the wei.
    const mined = await count(
      "SELECT count(*)::int AS n FROM custody.sweeps WHERE status = 'booked'",
    );
    // (plus the factory deploy's own gas, booked before the test started)
    expect(await count("SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'fee'")).toBe(
      mined + s.setupFeeTransfers,
    );
    const hotLedger = await s.balanceOf(NATIVE, hotAccount(s.hot));
    expect(await s.h.client.getBalance({ address: s.hot })).toBe(
      hotBefore + hotLedger + s.deployGas,
    );
    for (const a of addresses) expect(await s.h.client.getBalance({ address: a })).toBe(0n);
  }, 360_000); // three worker processes (seconds each to start on a loaded machine) and 30 sweeps
});
