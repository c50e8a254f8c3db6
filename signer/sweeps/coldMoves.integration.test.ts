/**
 * Hot/cold on the real stack: after sweeps, value above the hot wallet's per-asset ceiling moves
 * to the cold address through the signer, and the ledger shows it (hold posted on confirmation,
 * gas booked), for native value and an ERC-20; and for every hot wallet of the chain, not only the
 * one that deployed the ForwarderFactory (a rotation's new wallet).
 */
import { type Address, type Hex, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testToken } from "../../chains/contracts/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { bookTreasuryMove } from "../../ledger/index.js";
import { getTxRequest, signerTransactions } from "../requests.js";
import { waitFor } from "../testing/harness.js";
import { coldAccount, hotAccount } from "./bookings.js";
import { DEPOSITOR, NATIVE, type SweepStack, startSweepStack, TOKEN } from "./testing/stack.js";

const COLD: Address = "0x000000000000000000000000000000000000c01d";
const NATIVE_CEILING = 5n * 10n ** 17n;
const TOKEN_CEILING = 1000n;

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000",
    nativeHotCeiling: NATIVE_CEILING.toString(),
    coldAddress: COLD,
    tokens: [
      { address: TOKEN, symbol: "TT", decimals: 18, sweepThreshold: "1", hotCeiling: "1000" },
    ],
  });
  await s.deployToken();
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

async function coldMoves() {
  const { rows } = await s.ctx.db.pool.query<{
    id: string;
    asset: string;
    amount: bigint;
    status: string;
  }>("SELECT id, asset, amount, status FROM custody.cold_moves ORDER BY asset");
  return rows;
}

describe("hot wallet ceiling", () => {
  it("moves native and ERC-20 value above the ceiling to cold, visible in the ledger", async () => {
    const address = await s.allocate("whale");
    const deposit = 2n * 10n ** 18n;
    const tokens = 5000n;
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: deposit,
      gas: 21_000n,
    });
    await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: TOKEN,
      data: `0x40c10f19${address.slice(2).toLowerCase().padStart(64, "0")}${tokens.toString(16).padStart(64, "0")}`,
    });
    await s.mine(2);
    await s.syncAndCredit();
    await s.sweeper.tick(31337);
    await s.settleAll();
    // Native value is moved only once the sweep that brought it is final (a reorg may take it back).
    await s.sweepsFinal();

    expect(await s.balanceOf(TOKEN, hotAccount(s.hot))).toBe(tokens);
    // The next tick sees both assets above their ceilings (the token move may have started, and
    // its gas been booked, sooner). The native move is sized on the hot wallet's posted balance
    // as this tick leaves it (a tick books nothing after sizing).
    await s.sweeper.tick(31337);
    const hotNative = await s.balanceOf(NATIVE, hotAccount(s.hot));
    const { rows: sized } = await s.ctx.db.pool.query<{ seq: string }>(
      "SELECT max(seq)::text AS seq FROM ledger.transfers",
    );
    const started = await coldMoves();
    expect(started.map((m) => [m.asset, m.amount])).toEqual([
      [NATIVE, hotNative - NATIVE_CEILING],
      [TOKEN.toLowerCase(), tokens - TOKEN_CEILING],
    ]);
    // One move per excess: a further tick (in flight or settled) starts nothing.
    expect((await s.sweeper.tick(31337)).coldStarted).toEqual([]);
    expect(await coldMoves()).toHaveLength(2);
    await waitFor(
      "cold moves settled",
      async () => {
        await s.mine(1);
        await s.sweeper.tick(31337);
        return (await coldMoves()).every((m) => m.status !== "open");
      },
      { timeoutMs: 60_000, everyMs: 200 },
    );
    const moves = await coldMoves();
    expect(moves.map((m) => m.status)).toEqual(["booked", "booked"]);

    // On chain, the cold address received exactly the moved amounts.
    expect(await s.h.client.getBalance({ address: COLD })).toBe(hotNative - NATIVE_CEILING);
    expect(
      await s.h.client.readContract({
        address: TOKEN,
        abi: testToken.abi,
        functionName: "balanceOf",
        args: [COLD],
      }),
    ).toBe(tokens - TOKEN_CEILING);
    // Ledger: cold accounts hold them; hot keeps the ceiling minus the moves' gas.
    expect(await s.balanceOf(NATIVE, coldAccount(COLD))).toBe(hotNative - NATIVE_CEILING);
    expect(await s.balanceOf(TOKEN, coldAccount(COLD))).toBe(tokens - TOKEN_CEILING);
    expect(await s.balanceOf(TOKEN, hotAccount(s.hot))).toBe(TOKEN_CEILING);
    // The moves' gas booked after the native move was sized, each what the signer recorded.
    const { rows: gasAfter } = await s.ctx.db.pool.query<{ gas: string }>(
      `SELECT COALESCE(sum(amount), 0)::text AS gas FROM ledger.transfers
        WHERE seq > $1 AND kind = 'fee' AND memo LIKE 'gas of cold move %'`,
      [sized[0]!.seq],
    );
    let gas = 0n;
    for (const m of moves) gas += (await getTxRequest(s.ctx.db.pool, m.id))!.fee!;
    expect(BigInt(gasAfter[0]!.gas)).toBeLessThanOrEqual(gas);
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(
      NATIVE_CEILING - BigInt(gasAfter[0]!.gas),
    );
    const kinds = await s.ctx.db.pool.query(
      "SELECT type, position FROM ledger.transfers WHERE kind = 'cold_move' ORDER BY seq",
    );
    expect(kinds.rows.map((r) => r.type).sort()).toEqual(["pending", "pending", "post", "post"]);
    expect(
      kinds.rows
        .filter((r) => r.type === "post")
        .map((r) => r.position)
        .sort(),
    ).toEqual([expect.stringMatching(/^transfer:\d+$/), "tx"]);
    // Below the ceiling now: nothing more to move.
    expect((await s.sweeper.tick(31337)).coldStarted).toEqual([]);
    // The cold address is a custody address now: watched by the indexer, counted in reserves.
    const custody = await s.ctx.db.pool.query(
      "SELECT kind, owner FROM chain.custody_addresses WHERE chain_id = 31337 AND address = $1",
      [COLD.toLowerCase()],
    );
    expect(custody.rows).toEqual([{ kind: "cold", owner: "cold-wallet" }]);
  });

  it("moves a rotation's new wallet's value above the ceiling too (it deployed no factory)", async () => {
    // The new wallet (docs/deploy.md, "Rotating a hot wallet's key"): a second KMS key, registered
    // and served as the signer role does, funded from outside and the funding booked (step 2).
    const next = await s.h.wallet(0n);
    await s.startWallet(next);
    const funding = parseEther("2");
    const funded = await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: next.address,
      value: funding,
      gas: 21_000n,
    });
    await s.mine(2);
    await s.syncAndCredit();
    await bookTreasuryMove(
      { common: s.ctx.common, pool: s.ctx.db.pool, ledger: s.ledger, signerTransactions },
      {
        move: "fund",
        chainId: 31337,
        txHash: funded.transactionHash,
        wallet: next.address,
        by: "ops-test",
        reason: "new hot wallet float",
      },
    );
    // A funding is moved on once its block is final (coldMoveUnfinalFunding.integration.test.ts):
    // the test chain's reorg window is 8 blocks.
    await s.mine(8);
    await s.syncAndCredit();
    const coldBefore = await s.h.client.getBalance({ address: COLD });
    const hot = hotAccount(next.address.toLowerCase());

    // before the fix: expected [] to deeply equal [{ id: Any<String>, asset: '0x0…0', amount: 1500000000000000000n }]
    // (only the factory's wallet was looked at: the new one kept any value above its ceiling)
    const { coldStarted } = await s.sweeper.tick(31337);
    expect(coldStarted).toEqual([
      { id: expect.any(String), asset: NATIVE, amount: funding - NATIVE_CEILING },
    ]);
    const id = coldStarted[0]!.id;
    expect((await getTxRequest(s.ctx.db.pool, id))!.from).toBe(next.address.toLowerCase());
    await waitFor(
      "the new wallet's cold move settled",
      async () => {
        await s.mine(1);
        await s.sweeper.tick(31337);
        return (await coldMoves()).find((m) => m.id === id)?.status !== "open";
      },
      { timeoutMs: 60_000, everyMs: 200 },
    );
    expect((await coldMoves()).find((m) => m.id === id)?.status).toBe("booked");
    expect((await s.h.client.getBalance({ address: COLD })) - coldBefore).toBe(
      funding - NATIVE_CEILING,
    );
    // The new wallet keeps its ceiling, less the move's gas (paid from it, booked against it).
    const fee = (await getTxRequest(s.ctx.db.pool, id))!.fee!;
    expect(await s.balanceOf(NATIVE, hot)).toBe(NATIVE_CEILING - fee);
    expect(await s.h.client.getBalance({ address: next.address })).toBe(NATIVE_CEILING - fee);
  });
});
