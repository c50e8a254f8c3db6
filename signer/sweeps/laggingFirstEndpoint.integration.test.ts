import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/index.js";
import { startSweeps } from "./startSweeps.js";
import { CHAIN_ID, type SweepStack, startSweepStack } from "./testing/stack.js";

let s: SweepStack;
let proxy: LyingProxy;

beforeAll(async () => {
  s = await startSweepStack({ nativeSweepThreshold: "1000" });
  s.startSigner();
  proxy = await startLyingProxy(s.ctx.config.chains[0]!.rpcUrls[0]!);
});

afterAll(async () => {
  await proxy?.close();
  await s?.close();
});

/** The lagging node first, the real node second. */
const laggingFirst = () => s.sweeperOn([proxy.url, s.ctx.config.chains[0]!.rpcUrls[0]!]);

describe("a sweep planned beside a lagging first endpoint", () => {
  it.each([
    ["lagging", 1_000],
    ["syncing", "syncing"],
  ] as const)(
    "is planned from the endpoint that has the deposit (first endpoint %s)",
    async (name, lag) => {
      const amount = 3n * 10n ** 17n;
      const address = await s.creditedDeposit(`plan-${name}`, amount);
      proxy.setLag(lag);
      try {
        const started = await startSweeps({
          common: s.ctx.common,
          pool: s.ctx.db.pool,
          chain: s.ctx.config.chains[0]!,
          adapter: laggingFirst().adapter,
        });
        expect(started).toHaveLength(1);
        const { rows } = await s.ctx.db.pool.query(
          "SELECT planned FROM custody.sweep_items WHERE sweep_id = $1 AND address = $2",
          [started[0]!.id, address.toLowerCase()],
        );
        expect(rows).toEqual([{ planned: amount }]);
      } finally {
        proxy.setLag(null);
      }
      await s.settleAll();
    },
    60_000,
  );
});

describe("a sweep settled beside a lagging first endpoint", () => {
  it.each([
    ["lagging", 1_000],
    ["syncing", "syncing"],
  ] as const)(
    "is booked from the endpoint that has its block (first endpoint %s)",
    async (name, lag) => {
      const amount = 4n * 10n ** 17n;
      const address = await s.creditedDeposit(`lag-${name}`, amount);
      // (Deposits an earlier case left unswept may join this sweep or another.)
      await s.sweeper.tick(CHAIN_ID);
      const { rows: item } = await s.ctx.db.pool.query(
        "SELECT sweep_id FROM custody.sweep_items WHERE address = $1",
        [address.toLowerCase()],
      );
      const id = item[0]!.sweep_id as string;

      // The lagging node first (far behind every block of this chain), the real node second.
      proxy.setLag(lag);
      try {
        await s.settleOne(laggingFirst().sweeper, id, 20_000);
      } finally {
        proxy.setLag(null);
      }
      // The deposit address's money is booked as swept to the hot wallet.
      const { rows } = await s.ctx.db.pool.query(
        `SELECT s.status, i.swept FROM custody.sweeps s JOIN custody.sweep_items i ON i.sweep_id = s.id
        WHERE s.id = $1 AND i.address = $2`,
        [id, address.toLowerCase()],
      );
      expect(rows).toEqual([{ status: "booked", swept: amount }]);
    },
    60_000,
  );
});
