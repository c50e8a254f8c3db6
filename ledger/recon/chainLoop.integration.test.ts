/**
 * The reconciler's per-chain loop under a lock on a pooled connection: a lock connection that goes
 * silent (no FIN, no RST) frees the chain for another reconciler, and the loop goes on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { createPool } from "../../foundation/db.js";
import { createTestDatabase, type TestDatabase } from "../../ops/testing/database.js";
import { gate } from "../../ops/testing/gate.js";
import { startTcpProxy } from "../../ops/testing/tcpProxy.js";
import { waitFor, within } from "../../ops/testing/wait.js";
import { startLockedChainLoop } from "./chainLoop.js";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});
afterAll(async () => {
  await db?.drop();
});

describe("startLockedChainLoop", () => {
  it("frees a chain whose lock connection went silent, and goes on", async () => {
    const target = new URL(db.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const cutPool = createPool(proxy.urlFor(db.url), { applicationName: "recon-cut" });
    const chain = { chainId: 31337 } as ChainConfig;
    const lockBase = 7_000_000;
    const running = gate();
    const finish = gate();
    const passes: boolean[] = [];
    let held: AbortSignal | undefined;
    const loop = startLockedChainLoop({
      pool: cutPool,
      chains: [chain],
      lockBase,
      intervalMs: 50,
      lockLostAfterMs: 1_000,
      run: async (_chain, signal) => {
        held = signal;
        running.open();
        await finish.wait;
      },
      onError: () => true,
      afterPass: (ok) => passes.push(ok),
    });
    try {
      await running.wait;
      proxy.blackhole();
      // Another reconciler gets the chain: Postgres ended the silent session holding its lock.
      await waitFor(
        "the chain's lock to be free for another reconciler",
        async () => {
          const { rows } = await db.pool.query<{ ok: boolean }>(
            "SELECT pg_try_advisory_lock($1::bigint) AS ok",
            [lockBase + chain.chainId],
          );
          if (!rows[0]?.ok) return undefined;
          await db.pool.query("SELECT pg_advisory_unlock($1::bigint)", [lockBase + chain.chainId]);
          return true;
        },
        { timeoutMs: 30_000 },
      );
      // The cut-off run was told before the lock was free for another: it stops writing first.
      expect(held?.aborted).toBe(true);
      // The cut-off loop does not hang on its unlock: the pass ends.
      finish.open();
      await waitFor("the cut-off loop's pass to end", async () => passes.length > 0, {
        timeoutMs: 30_000,
      });
    } finally {
      finish.open();
      await proxy.close(); // the next pass's connect through the proxy fails, so the loop stops
      await loop.stop();
      void cutPool.end();
    }
    expect(passes[0]).toBe(true);
  }, 90_000);

  it("stopped during a pass, stops when the pass ends, not an interval later", async () => {
    const running = gate();
    const finish = gate();
    const passes: boolean[] = [];
    const loop = startLockedChainLoop({
      pool: db.pool,
      chains: [{ chainId: 31338 } as ChainConfig],
      lockBase: 7_100_000,
      // The reconciler's interval is a minute, an attestation schedule's may be hours.
      intervalMs: 600_000,
      run: async () => {
        running.open();
        await finish.wait;
      },
      onError: () => true,
      afterPass: (ok) => passes.push(ok),
    });
    await running.wait;
    const stopped = loop.stop();
    finish.open();
    await within("the loop to stop after its pass", stopped, 10_000);
    expect(passes).toEqual([true]);
  }, 30_000);
});
