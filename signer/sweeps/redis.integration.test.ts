/**
 * Sweeps survive Redis: the worker role's sweep pass is driven from Postgres, so (a) deleting
 * every Redis key of the deployment while a sweep is in flight loses neither its booking nor the
 * schedule, and (b) with Redis unreachable (the worker pointed at a closed port) sweeps are still
 * planned and booked. Real anvil, Postgres, Redis, KMS emulator, indexer, crediting and signer.
 */
import { createServer, type Server } from "node:net";
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealth } from "../../foundation/health.js";
import { createQueueFactory } from "../../foundation/queues.js";
import { createRedis, type Redis } from "../../foundation/redis.js";
import type { RoleContext, RoleHandle } from "../../foundation/roles.js";
import { sendAndMine, sendTx } from "../../indexers/testing/chain.js";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { hotAccount } from "./bookings.js";
import { sweepsRole } from "./role.js";
import { DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;
let role: RoleHandle | undefined;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000", sweepIntervalMs: 300 });
  s.startSigner();
});

afterAll(async () => {
  await role?.stop();
  await s?.close();
});

function roleContext(redis: Redis, queues = s.ctx.queues): RoleContext {
  return {
    common: s.ctx.common,
    pool: s.ctx.db.pool,
    redis,
    queues,
    health: createHealth(),
    chains: s.ctx.config.chains,
    httpPlugins: [],
  };
}

async function deposit(to: Address, value: bigint) {
  await sendAndMine(s.rpc, { from: DEPOSITOR.toLowerCase() as Hex, to, value, gas: 21_000n });
  await s.mine(2);
  await s.syncAndCredit();
}

/** Sweeps (any status) that include this address, oldest first. */
async function sweepsOf(address: Address) {
  const { rows } = await s.ctx.db.pool.query<{ id: string; status: string }>(
    `SELECT DISTINCT s.id, s.status, s.created_at FROM custody.sweeps s
     JOIN custody.sweep_items i ON i.sweep_id = s.id
     WHERE i.address = $1 ORDER BY s.created_at`,
    [address.toLowerCase()],
  );
  return rows;
}

async function bookedSweepTransfers(address: Address) {
  const { rows } = await s.ctx.db.pool.query<{ amount: bigint; memo: string }>(
    "SELECT amount, memo FROM ledger.transfers WHERE kind = 'sweep' AND memo LIKE $1 ORDER BY created_at",
    [`%from ${address.toLowerCase()}`],
  );
  return rows;
}

/** Mine a block per poll (confirmations) until the address has `n` booked sweeps. */
async function waitBooked(address: Address, n: number) {
  return waitFor(
    `${n} booked sweep(s) of ${address}`,
    async () => {
      await s.mine(1);
      const booked = (await sweepsOf(address)).filter((r) => r.status === "booked");
      return booked.length >= n ? booked : undefined;
    },
    { timeoutMs: 90_000, everyMs: 250 },
  );
}

async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = "0";
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== "0");
  return deleted;
}

describe("sweeps without Redis state", () => {
  it("(a) a sweep in flight when every Redis key is deleted is booked exactly once, and the next sweep still runs", async () => {
    role = await sweepsRole.start(roleContext(s.ctx.redis.redis));
    const address = await s.allocate("redis-a");
    const first = 4n * 10n ** 17n;
    // Hold the sweep in the mempool: it is in flight (broadcast, not mined) when Redis is wiped.
    await s.rpc("evm_setAutomine", [false]);
    await sendTx(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: first,
      gas: 21_000n,
    });
    await s.mine(3);
    await s.syncAndCredit();
    expect(await s.userCredited(NATIVE, "redis-a")).toBe(first);
    const [sweep] = await waitFor("sweep requested and broadcast", async () => {
      const open = (await sweepsOf(address)).filter((r) => r.status === "open");
      if (open.length === 0) return undefined;
      const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [open[0]!.id] });
      return o?.status === "broadcast" ? open : undefined;
    });
    expect(await deleteKeys(s.ctx.redis.redis, s.ctx.redis.prefix)).toBeGreaterThan(0);
    await s.rpc("evm_setAutomine", [true]);

    await waitBooked(address, 1);
    expect((await sweepsOf(address)).map((r) => [r.id, r.status])).toEqual([[sweep!.id, "booked"]]);
    expect((await bookedSweepTransfers(address)).map((t) => t.amount)).toEqual([first]);
    expect(await s.h.client.getBalance({ address })).toBe(0n);
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);

    // The schedule did not live in Redis: a later deposit is swept without any restart.
    const second = 3n * 10n ** 17n;
    await deposit(address, second);
    await waitBooked(address, 2);
    expect((await bookedSweepTransfers(address)).map((t) => t.amount)).toEqual([first, second]);
    const fees = await s.balanceOf(NATIVE, "fees:gas");
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(first + second - fees);
    await role.stop();
    role = undefined;
  });

  it("(b) with Redis unreachable the worker still plans and books sweeps from Postgres", async () => {
    // A port this test holds (bound, then read back: no other process can take it meanwhile)
    // that drops every connection at once: the worker's Redis keeps trying to connect (and
    // failing) all along, as the real connection does in an outage.
    const blackhole: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => blackhole.listen(0, "127.0.0.1", resolve));
    const { port } = blackhole.address() as { port: number };
    const closed = createRedis(`redis://127.0.0.1:${port}`);
    const deadQueues = createQueueFactory({ redis: closed, prefix: s.ctx.redis.prefix });
    try {
      role = await sweepsRole.start(roleContext(closed, deadQueues));
      const address = await s.allocate("redis-b");
      const amount = 6n * 10n ** 17n;
      await deposit(address, amount);
      await waitBooked(address, 1);
      expect((await bookedSweepTransfers(address)).map((t) => t.amount)).toEqual([amount]);
      expect(await s.h.client.getBalance({ address })).toBe(0n);
      // ... and again: the schedule keeps running with Redis still away.
      await deposit(address, amount + 1n);
      await waitBooked(address, 2);
      expect((await bookedSweepTransfers(address)).map((t) => t.amount)).toEqual([
        amount,
        amount + 1n,
      ]);
      expect(closed.status).not.toBe("ready");
      await role.stop();
      role = undefined;
    } finally {
      closed.disconnect();
      await new Promise((resolve) => blackhole.close(resolve));
    }
  });
});
