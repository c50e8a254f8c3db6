/**
 * A planning pass reads what its candidate addresses hold on chain (eth_getBalance, balanceOf)
 * with no Postgres transaction open: a slow node no longer holds the per-chain sweep lock, nor
 * sits in a transaction past the pool's idle-in-transaction timeout (which ended the session and
 * failed the pass). Under the lock the candidates are read again, so a pass that planned an
 * address while this one was reading is seen and the address is not swept twice. Real anvil,
 * Postgres, Redis, KMS emulator, indexer and crediting; the slow node is a proxy in front of the
 * same anvil.
 */
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { createPool } from "../../foundation/db.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { type RpcProxy, startRpcProxy } from "../testing/rpcProxy.js";
import { startSweeps } from "./startSweeps.js";
import { DEPOSITOR, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;
let proxy: RpcProxy;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
  proxy = await startRpcProxy(s.ctx.config.chains[0]!.rpcUrls[0]!);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await s?.close();
});

async function deposit(to: Address, value: bigint) {
  await sendAndMine(s.rpc, { from: DEPOSITOR.toLowerCase() as Hex, to, value, gas: 21_000n });
  await s.mine(2);
  await s.syncAndCredit();
}

const chain = () => s.ctx.config.chains[0]!;
const slowAdapter = () =>
  createEvmAdapter({ ...chain(), rpcUrls: [proxy.url] }, { common: s.ctx.common });

async function sweepsOf(address: Address) {
  const { rows } = await s.ctx.db.pool.query<{ sweep_id: string; planned: bigint }>(
    "SELECT sweep_id, planned FROM custody.sweep_items WHERE address = $1 ORDER BY sweep_id",
    [address.toLowerCase()],
  );
  return rows;
}

describe("sweep planning beside a slow node", () => {
  it("plans a sweep though the on-chain balance read takes longer than the pool's idle-in-transaction timeout", async () => {
    const address = await s.allocate("slow");
    const amount = 3n * 10n ** 17n;
    await deposit(address, amount);
    const pool = createPool(s.ctx.db.url, {
      max: 2,
      applicationName: "sweeps-idle-tx",
      idleInTransactionTimeoutMs: 300,
    });
    proxy.setDelay(1_500);
    try {
      const started = await startSweeps({
        common: s.ctx.common,
        pool,
        chain: chain(),
        adapter: slowAdapter(),
      });
      expect(started).toHaveLength(1);
      expect(await sweepsOf(address)).toEqual([{ sweep_id: started[0]!.id, planned: amount }]);
    } finally {
      proxy.setDelay(0);
      await pool.end();
    }
  }, 60_000);

  it("a pass that planned an address while another was reading balances is not repeated by it", async () => {
    const address = await s.allocate("raced");
    const amount = 2n * 10n ** 17n;
    await deposit(address, amount);
    proxy.setDelay(1_500);
    try {
      let slowDone = false;
      const slow = startSweeps({
        common: s.ctx.common,
        pool: s.ctx.db.pool,
        chain: chain(),
        adapter: slowAdapter(),
      }).finally(() => {
        slowDone = true;
      });
      // The slow pass is waiting on the node; a second pass (a healthy node) plans meanwhile.
      const seen = proxy.calls("eth_getBalance");
      while (proxy.calls("eth_getBalance") === seen) await new Promise((r) => setTimeout(r, 20));
      const fast = await startSweeps({
        common: s.ctx.common,
        pool: s.ctx.db.pool,
        chain: chain(),
        adapter: createEvmAdapter(chain(), { common: s.ctx.common }),
      });
      // It was not held behind the slow pass's read (no lock is held while reading) ...
      expect(slowDone).toBe(false);
      expect(fast).toHaveLength(1);
      // ... and the slow pass, re-reading under the lock, sees the open sweep and plans nothing.
      expect(await slow).toEqual([]);
      expect(await sweepsOf(address)).toEqual([{ sweep_id: fast[0]!.id, planned: amount }]);
    } finally {
      proxy.setDelay(0);
    }
  }, 60_000);
});
