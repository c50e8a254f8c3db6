/**
 * A cold-move pass reads the hot wallet's ledger balance and its on-chain balance with no
 * transaction open, then requests the move. Beside a slow node, what the ledger said may be stale
 * by the time of the write, and the move was sized on it:
 *   - two workers at once (a rolling deploy): while the slow one waited on its node, the other
 *     moved the excess to cold and its move was booked (no longer `open`, so the one-open-move
 *     index let a second one in); the slow one requested the same excess again. The hot wallet's
 *     ledger balance went below zero and the value was not in the wallet (native: refused for
 *     insufficient funds at every resend, every later request of the wallet behind its nonce);
 *   - one worker, a withdrawal held meanwhile: the move took the withdrawal's money to cold, and
 *     the withdrawal's send then lacks it.
 * Under a per-chain lock the move is checked again (another move in flight: nothing) and sized on
 * the lower of the two ledger readings. Real anvil, Postgres, Redis, KMS emulator, indexer,
 * crediting, ledger and signer; the slow node is a proxy in front of the same anvil.
 */
import { type Address, type Hex, parseEther, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { assetIdOf, transferId } from "../../ledger/index.js";
import { waitFor } from "../testing/harness.js";
import { type RpcProxy, startRpcProxy } from "../testing/rpcProxy.js";
import { hotAccount } from "./bookings.js";
import { settleColdMoves, startColdMoves } from "./coldMoves.js";
import { CHAIN_ID, DEPOSITOR, NATIVE, type SweepStack, startSweepStack } from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
const CEILING = 5n * 10n ** 17n;

let s: SweepStack;
let proxy: RpcProxy;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000",
    nativeHotCeiling: CEILING.toString(),
    coldAddress: COLD,
  });
  s.startSigner();
  proxy = await startRpcProxy(s.ctx.config.chains[0]!.rpcUrls[0]!);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await s?.close();
});

const chain = () => s.ctx.config.chains[0]!;

async function movesInFlight() {
  const { rows } = await s.ctx.db.pool.query<{ id: string; amount: bigint; status: string }>(
    `SELECT id, amount, status FROM custody.cold_moves
      WHERE status = 'open' OR (status = 'booked' AND final_at IS NULL) ORDER BY created_at`,
  );
  return rows;
}

/** A swept, final deposit of `value` to a new address of `customer`: the hot wallet's excess. */
async function sweptAndFinal(customer: string, value: bigint) {
  const address = await s.allocate(customer);
  await sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: address,
    value,
    gas: 21_000n,
  });
  await s.mine(2);
  await s.syncAndCredit();
  const { started } = await s.sweeper.tick(CHAIN_ID);
  expect(started).toHaveLength(1);
  // Booked and final (settle only: no cold move is started by these passes).
  await waitFor(
    "sweep final",
    async () => {
      await s.mine(1);
      await s.sweeper.settle(CHAIN_ID);
      const { rows } = await s.ctx.db.pool.query(
        "SELECT final_at IS NOT NULL AS final FROM custody.sweeps WHERE id = $1",
        [started[0]!.id],
      );
      return rows[0].final === true;
    },
    { timeoutMs: 60_000, everyMs: 100 },
  );
}

const hotAvailable = async () =>
  (await s.ledger.getAccount({ assetId: assetIdOf(CHAIN_ID, NATIVE), name: hotAccount(s.hot) }))!
    .available;

/** A cold-move pass beside the slow node (the proxy's delay), settled when `slowDone`. */
function slowPass() {
  const pass = {
    done: false,
    result: startColdMoves({
      common: s.ctx.common,
      pool: s.ctx.db.pool,
      ledger: s.ledger,
      chain: chain(),
      hotWallets: s.hotWallets,
      adapter: createEvmAdapter({ ...chain(), rpcUrls: [proxy.url] }, { common: s.ctx.common }),
    }).finally(() => {
      pass.done = true;
    }),
  };
  return pass;
}

describe("a cold move requested from readings taken beside a slow node", () => {
  it("by two workers at once: requested once, the slow worker requests nothing after the other's move was booked", async () => {
    // The wallet's own float (gas), far below the ceiling; the excess comes from a swept deposit.
    await s.rpc("anvil_setBalance", [s.hot, toHex(parseEther("0.05"))]);
    await sweptAndFinal("two-workers", 2n * 10n ** 18n);
    expect(await movesInFlight()).toEqual([]);

    // The slow worker reads the ledger, then waits on its node.
    proxy.setDelay(8_000);
    const seen = proxy.calls("eth_getBalance");
    const slow = slowPass();
    try {
      await waitFor("slow read asked", async () => proxy.calls("eth_getBalance") > seen, {
        everyMs: 10,
      });
      // Meanwhile the other worker moves the excess, and its move is booked.
      const deps = {
        common: s.ctx.common,
        pool: s.ctx.db.pool,
        ledger: s.ledger,
        chain: chain(),
        hotWallets: s.hotWallets,
        adapter: createEvmAdapter(chain(), { common: s.ctx.common }),
      };
      const moved = await startColdMoves(deps);
      expect(moved).toHaveLength(1);
      await waitFor(
        "first move booked",
        async () => {
          await s.mine(1);
          const settled = await settleColdMoves(deps);
          return settled.some((m) => m.id === moved[0]!.id && m.status === "booked");
        },
        { timeoutMs: 7_000, everyMs: 50 },
      );
      // Still waiting on its node: the race is the one under test.
      expect(slow.done).toBe(false);

      expect(await slow.result).toEqual([]);
      expect((await movesInFlight()).map((m) => m.id)).toEqual([moved[0]!.id]);
      // Nothing held twice: the wallet keeps (at most) its ceiling in the ledger.
      const available = await hotAvailable();
      expect(available).toBeGreaterThan(0n);
      expect(available).toBeLessThanOrEqual(CEILING);
    } finally {
      proxy.setDelay(0);
      await slow.result.catch(() => undefined);
    }
  }, 120_000);

  it("with a withdrawal held meanwhile: sized on what the ledger holds after it", async () => {
    await waitFor(
      "earlier moves final",
      async () => {
        await s.mine(1);
        await s.sweeper.settle(CHAIN_ID);
        return (await movesInFlight()).length === 0;
      },
      { timeoutMs: 60_000, everyMs: 100 },
    );
    await sweptAndFinal("withdrawer", 2n * 10n ** 18n);
    const before = await hotAvailable();
    expect(before).toBeGreaterThan(CEILING + 10n ** 18n);

    proxy.setDelay(3_000);
    const seen = proxy.calls("eth_getBalance");
    const slow = slowPass();
    try {
      await waitFor("slow read asked", async () => proxy.calls("eth_getBalance") > seen, {
        everyMs: 10,
      });
      // The customer withdraws 1 ETH while the pass waits on its node (the API's intake hold:
      // debit the customer, credit the hot wallet, pending).
      const withdrawal = 10n ** 18n;
      await s.ledger.hold({
        id: transferId("withdrawal:cold-move-slow-read"),
        assetId: assetIdOf(CHAIN_ID, NATIVE),
        debit: "user:withdrawer",
        credit: hotAccount(s.hot),
        amount: withdrawal,
        kind: "withdrawal",
        memo: "withdrawal cold-move-slow-read",
      });
      expect(slow.done).toBe(false);
      const moved = await slow.result;
      expect(moved).toHaveLength(1);
      // The move takes only what is above the ceiling after the withdrawal's hold: the wallet
      // still has its ceiling for the withdrawal's (and every later) send.
      expect(moved[0]!.amount).toBe(before - withdrawal - CEILING);
      expect(await hotAvailable()).toBe(CEILING);
    } finally {
      proxy.setDelay(0);
      await slow.result.catch(() => undefined);
    }
  }, 120_000);
});
