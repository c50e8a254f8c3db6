/**
 * Sweeps beside a first RPC endpoint that lags far behind (or is syncing), the real node second
 * (DESIGN: a lagging or syncing node is never asked for what it lacks).
 *
 * Planning caps what the ledger credited by what each address holds on chain. That read went to
 * the first endpoint at its own head, before the deposits: it answered 0 (native) or no code at the
 * token, so nothing was planned for as long as that node lagged, though the next endpoint had the
 * deposits: deposit addresses kept the money while the hot wallet paid withdrawals. The balances
 * are read only from an endpoint at or past the indexed height (where the credits come from).
 *
 * Settlement: a sweep is settled from its block, whose header is read first (is the block the signer recorded
 * still the chain's at that height?). That read named no height to the RPC client, so it went to
 * the first endpoint whatever its head: a first endpoint that lags behind the sweep's block (or is
 * syncing) answered no block, read as "not this block yet", and the sweep waited on every pass
 * for as long as that node lagged, though the next endpoint had the block: its addresses out of
 * planning, the hot wallet's ledger short of what it holds. The header is read only from an
 * endpoint at or past the block, as every other read of the block. Real anvil, Postgres, KMS
 * emulator, indexer, crediting and signer; the lagging node is the lying chain in front of the
 * same anvil.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { waitFor } from "../testing/harness.js";
import { createSweeper } from "./createSweeper.js";
import { startSweeps } from "./startSweeps.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack } from "./testing/stack.js";

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

const laggingFirst = () => {
  const chain = s.ctx.config.chains[0]!;
  return createEvmAdapter(
    { ...chain, rpcUrls: [proxy.url, chain.rpcUrls[0]!] },
    { common: s.ctx.common },
  );
};

describe("a sweep planned beside a lagging first endpoint", () => {
  it.each([
    ["lagging", 1_000],
    ["syncing", "syncing"],
  ] as const)(
    "is planned from the endpoint that has the deposit (first endpoint %s)",
    async (name, lag) => {
      const address = await s.allocate(`plan-${name}`);
      const amount = 3n * 10n ** 17n;
      await sendAndMine(s.rpc, {
        from: DEPOSITOR.toLowerCase() as Hex,
        to: address,
        value: amount,
        gas: 21_000n,
      });
      await s.mine(2);
      await s.syncAndCredit();
      proxy.setLag(lag);
      try {
        const started = await startSweeps({
          common: s.ctx.common,
          pool: s.ctx.db.pool,
          chain: s.ctx.config.chains[0]!,
          adapter: laggingFirst(),
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
      const address = await s.allocate(`lag-${name}`);
      const amount = 4n * 10n ** 17n;
      await sendAndMine(s.rpc, {
        from: DEPOSITOR.toLowerCase() as Hex,
        to: address,
        value: amount,
        gas: 21_000n,
      });
      await s.mine(2);
      await s.syncAndCredit();
      // (Deposits an earlier case left unswept may join this sweep or another.)
      await s.sweeper.tick(CHAIN_ID);
      const { rows: item } = await s.ctx.db.pool.query(
        "SELECT sweep_id FROM custody.sweep_items WHERE address = $1",
        [address.toLowerCase()],
      );
      const id = item[0]!.sweep_id as string;

      // The lagging node first (far behind every block of this chain), the real node second.
      proxy.setLag(lag);
      const adapter = laggingFirst();
      const sweeper = createSweeper({
        common: s.ctx.common,
        pool: s.ctx.db.pool,
        ledger: s.ledger,
        chains: s.ctx.config.chains,
        adapterFor: () => adapter,
      });
      try {
        await waitFor(
          "the sweep settled",
          async () => {
            await s.mine(1);
            await sweeper.settle(CHAIN_ID);
            const { rows } = await s.ctx.db.pool.query<{ status: string }>(
              "SELECT status FROM custody.sweeps WHERE id = $1",
              [id],
            );
            return rows[0]!.status !== "open";
          },
          { timeoutMs: 20_000, everyMs: 200 },
        );
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
