/**
 * A cold move of a listed token that takes a fee on transfer: the cold address receives less than
 * the hot wallet sent, so the signer finds no Transfer log of the requested amount and records no
 * transfer position; it records the token's fee on the transfer instead (the cold address's
 * Transfer and the fee's). Settlement threw for that move out of the whole pass: every sweeper
 * tick of the chain failed before it planned anything, so no deposit address of the chain (any
 * asset, any customer) was swept again. Then such a move was left open for good, its hold
 * standing: no later move of that token left the hot wallet (one open move per asset), however far
 * above its ceiling it grew, and the ledger kept the moved tokens in the hot wallet. It is booked
 * against its parts, as a withdrawal of such a token is: the hold posted for what left less the
 * token's fees against the cold address's Transfer, each fee an expense (fees:gas in the token)
 * against its own Transfer; reorged out, each part is reversed. On the real stack (anvil,
 * Postgres, Redis, KMS emulator).
 */
import type { Address, Hex } from "viem";
import { encodeFunctionData } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { getTxOutcomes } from "../outcomes.js";
import { waitFor } from "../testing/harness.js";
import { coldAccount, hotAccount } from "./bookings.js";
import { sweepReader } from "./sweepReads.js";
import { deployFeeToken, FEE_COLLECTOR, FEE_TOKEN } from "./testing/feeToken.js";
import { CHAIN_ID, DEPOSITOR, type SweepStack, startSweepStack } from "./testing/stack.js";

const COLD = "0x000000000000000000000000000000000000c01d" as const;
/** Also the finality depth: the reorg below stays inside it (as coldMoveReorg's). */
const REORG_WINDOW = 16;

let s: SweepStack;
let abi: Awaited<ReturnType<typeof deployFeeToken>>;

beforeAll(async () => {
  s = await startSweepStack({
    reorgWindow: REORG_WINDOW,
    coldAddress: COLD,
    nativeSweepThreshold: "1000000",
    tokens: [
      { address: FEE_TOKEN, symbol: "FEE", decimals: 18, sweepThreshold: "1", hotCeiling: "1000" },
    ],
  });
  abi = await deployFeeToken(s.rpc);
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

const tokenBalance = (holder: Address) =>
  s.h.client.readContract({
    address: FEE_TOKEN,
    abi,
    functionName: "balanceOf",
    args: [holder],
  }) as Promise<bigint>;

/** Mine, index and tick until `done`. */
async function tickUntil<T>(what: string, done: () => Promise<T | undefined | false>) {
  return waitFor(
    what,
    async () => {
      await s.mine(1);
      await s.syncAndCredit();
      await s.sweeper.tick(CHAIN_ID);
      return done();
    },
    { timeoutMs: 90_000, everyMs: 100 },
  );
}

type MoveRow = {
  id: string;
  status: string;
  amount: bigint;
  hold_generation: number;
  final_at: Date | null;
};

async function moves(): Promise<MoveRow[]> {
  const { rows } = await s.ctx.db.pool.query<MoveRow>(
    "SELECT id, status, amount, hold_generation, final_at FROM custody.cold_moves ORDER BY created_at",
  );
  return rows;
}

/** Mint `amount` of the fee token to a new deposit address of `customerId`, confirmed. */
async function feeTokenDeposit(customerId: string, amount: bigint) {
  const address = await s.allocate(customerId);
  await sendAndMine(s.rpc, {
    from: DEPOSITOR.toLowerCase() as Hex,
    to: FEE_TOKEN,
    data: encodeFunctionData({ abi, functionName: "mint", args: [address, amount] }),
  });
  await s.mine(2);
  await s.syncAndCredit();
}

/** The `n`-th cold move (0-based), once it is booked and its block final. */
async function finalMove(n: number): Promise<MoveRow> {
  return tickUntil(`cold move ${n} booked and final`, async () => {
    const m = (await moves())[n];
    return m?.status === "booked" && m.final_at !== null ? m : undefined;
  });
}

/** The ledger's hot, cold and token-fee balances of the fee token are the chain's. */
async function expectLedgerMatchesChain() {
  expect(await s.balanceOf(FEE_TOKEN, coldAccount(COLD))).toBe(await tokenBalance(COLD));
  expect(await s.balanceOf(FEE_TOKEN, hotAccount(s.hot))).toBe(await tokenBalance(s.hot));
  // The collector holds the fees of the sweeps too (the deposit addresses paid those); the
  // ledger's expense is the cold moves' fees, which the hot wallet paid.
  return s.balanceOf(FEE_TOKEN, "fees:gas");
}

describe("a cold move of a fee-on-transfer token", () => {
  it("is booked against its parts, does not stop the chain's sweeps, and the next move goes", async () => {
    await feeTokenDeposit("quinn", 10_000n);
    // Swept (the hot wallet gets 9,900), then 8,900 above the ceiling goes to cold.
    const first = await finalMove(0);
    expect(first.amount).toBe(8_900n);
    expect(await tokenBalance(COLD)).toBe(8_811n);
    expect(await tokenBalance(s.hot)).toBe(1_000n);
    expect(await expectLedgerMatchesChain()).toBe(89n);
    const [o] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [first.id] });
    expect(o!.transferPosition).toBeNull();
    expect(o!.feeOnTransfer?.fees.map((f) => f.amount)).toEqual([89n]);

    // A native deposit to another customer's address is still swept.
    const second = await s.allocate("rosa");
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: second,
      value: 3n * 10n ** 17n,
      gas: 21_000n,
    });
    await s.mine(2);
    await s.syncAndCredit();
    const tick = await s.sweeper.tick(CHAIN_ID);
    expect(tick.started).toHaveLength(1);
    await s.settleAll();
    expect(await s.h.client.getBalance({ address: second })).toBe(0n);

    // The token's next excess goes to cold too: 4,950 swept in, all of it above the ceiling.
    await feeTokenDeposit("sam", 5_000n);
    const next = await finalMove(1);
    expect(next.amount).toBe(4_950n);
    expect(await tokenBalance(COLD)).toBe(8_811n + 4_901n);
    expect(await expectLedgerMatchesChain()).toBe(89n + 49n);
    expect(await tokenBalance(FEE_COLLECTOR)).toBeGreaterThanOrEqual(89n + 49n);
  });

  it("reorged out after booking: each part reversed, booked again against the inclusion that stands", async () => {
    await feeTokenDeposit("tess", 2_000n);
    // 1,980 swept in, moved whole; booked (not final yet) under the first hold generation.
    const booked = await tickUntil("cold move 2 booked", async () => {
      const m = (await moves())[2];
      return m?.status === "booked" ? m : undefined;
    });
    expect(booked.amount).toBe(1_980n);
    const [mined] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [booked.id] });
    const depth = Number((await s.h.client.getBlockNumber()) - mined!.blockNumber!) + 1;
    expect(depth).toBeLessThan(REORG_WINDOW);
    await s.rpc("anvil_reorg", [depth, []]);

    const final = await finalMove(2);
    expect(final.hold_generation).toBe(1);
    const [outcome] = await getTxOutcomes(s.ctx.db.pool, { requestIds: [booked.id] });
    expect(outcome!.reorgs).toBeGreaterThan(mined!.reorgs);
    expect(await tokenBalance(COLD)).toBe(8_811n + 4_901n + 1_961n);
    expect(await expectLedgerMatchesChain()).toBe(89n + 49n + 19n);

    const chain = s.ctx.config.chains[0]!;
    const adapter = createEvmAdapter(chain, { common: s.ctx.common });
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: s.ctx.common,
      pool: s.ctx.db.pool,
      chains: adapterPerChain(s.ctx.common, () => adapter),
    });
    // Reconciliation pairs each part with its fact: no break names a cold move's transaction, and
    // the hot and cold wallets' token balances agree. (The sweeps' token fees, paid from the
    // deposit addresses, are breaks of their own: feeOnTransfer.integration.test.ts.)
    const run = await reconciler.run({ chain, full: true });
    const { rows } = await s.ctx.db.pool.query<{ tx_hash: string }>(
      "SELECT tx_hash FROM custody.cold_moves",
    );
    const txs = rows.map((r) => r.tx_hash.toLowerCase());
    expect(txs).toHaveLength(3);
    expect(run.breaks.filter((b) => txs.some((tx) => b.key.startsWith(tx)))).toEqual([]);
    const wallets = run.checks.filter(
      (c) =>
        c.assetId === `${CHAIN_ID}:${FEE_TOKEN.toLowerCase()}` &&
        (c.scope === "hot" || c.scope === "cold"),
    );
    expect(wallets.map((c) => [c.scope, c.difference])).toEqual([
      ["cold", 0n],
      ["hot", 0n],
    ]);
  });
});
