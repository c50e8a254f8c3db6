/**
 * Acceptance on real anvil, Postgres, Redis and the KMS emulator, with the real indexer, ledger
 * crediting and signer: 21,000-gas native deposits to a counterfactual address are credited,
 * swept and credited again afterwards; 200 ERC-20 deposit addresses are swept in a few
 * transactions and the hot wallet's on-chain balance agrees with the ledger to the wei.
 */
import type { Address, Hex } from "viem";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { testToken } from "../../chains/contracts/index.js";
import { sendAndMine } from "../../indexers/testing/chain.js";
import { getTxRequest } from "../requests.js";
import { waitFor } from "../testing/harness.js";
import { hotAccount } from "./bookings.js";
import { DEPOSITOR, NATIVE, type SweepStack, startSweepStack, TOKEN } from "./testing/stack.js";
import { sweepableDrift } from "./testing/sweepable.js";

let s: SweepStack;

beforeAll(async () => {
  s = await startSweepStack({
    nativeSweepThreshold: "1000000",
    tokens: [{ address: TOKEN, symbol: "TT", decimals: 18, sweepThreshold: "1" }],
    sweepBatchSize: 50,
  });
  await s.deployToken();
  s.startSigner();
});

afterAll(async () => {
  await s?.close();
});

const native = (address: Address) => s.h.client.getBalance({ address });
const tokenBalance = (address: Address) =>
  s.h.client.readContract({
    address: TOKEN,
    abi: testToken.abi,
    functionName: "balanceOf",
    args: [address],
  }) as Promise<bigint>;

// The running sweepable balances the planner reads agree with history after every scenario
// (credits, sweeps booked, failed, reorged out and booked again).
afterEach(async () => {
  const { drift, pairs } = await sweepableDrift(s.ctx.db.pool);
  expect(drift).toEqual([]);
  expect(pairs).toBeGreaterThan(0);
});

describe("sweeps (acceptance)", () => {
  it("a 21,000-gas native deposit is credited and swept, and a second 21,000-gas deposit after the sweep is credited", async () => {
    const hotBefore = await native(s.hot);
    const address = await s.allocate("alice");
    const first = 3n * 10n ** 17n;
    const r1 = await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: first,
      gas: 21_000n,
    });
    expect(r1.status).toBe("0x1");
    expect(BigInt(r1.gasUsed)).toBe(21_000n);
    await s.mine(2);
    await s.syncAndCredit();
    expect(await s.userCredited(NATIVE, "alice")).toBe(first);

    const tick = await s.sweeper.tick(31337);
    expect(tick.started).toHaveLength(1);
    const sweepId = tick.started[0]!.id;
    await s.settleAll();
    const request = (await getTxRequest(s.ctx.db.pool, sweepId))!;
    expect(request.status).toBe("confirmed");
    expect(request.receiptSuccess).toBe(true);
    const { rows } = await s.ctx.db.pool.query<{ status: string; fee: bigint | null }>(
      "SELECT status, fee FROM custody.sweeps WHERE id = $1",
      [sweepId],
    );
    expect(rows[0]).toEqual({ status: "booked", fee: request.fee! });

    // On chain: the address is empty and codeless again; the hot wallet got the value minus gas.
    expect(await native(address)).toBe(0n);
    expect(await s.h.client.getCode({ address })).toBeUndefined();
    expect(await native(s.hot)).toBe(hotBefore + first - request.fee!);
    // Ledger: custody:hot moved by exactly the same, custody:deposits is back to zero.
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(first - request.fee! - s.deployGas);
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    expect(await s.balanceOf(NATIVE, "fees:gas")).toBe(request.fee! + s.deployGas);
    // Each booked transfer points at the chain fact the indexer stored for it (for matching).
    await s.syncAndCredit();
    const paired = await s.ctx.db.pool.query(
      `SELECT l.kind, l.position, f.kind AS fact_kind, f.amount = l.amount AS same_amount
       FROM ledger.transfers l
       JOIN chain.transfers f ON f.chain_id = l.chain_id AND f.tx_hash = l.tx_hash
        AND f.position = l.position AND f.status <> 'orphaned'
       WHERE l.tx_hash = $1 ORDER BY l.kind`,
      [request.txHash],
    );
    expect(paired.rows).toEqual([
      { kind: "fee", position: "fee", fact_kind: "fee", same_amount: true },
      {
        kind: "sweep",
        position: expect.stringMatching(/^trace:\d+(\.\d+)*$/),
        fact_kind: "internal",
        same_amount: true,
      },
    ]);

    // A second plain 21,000-gas deposit to the same address works and is credited.
    const second = 2n * 10n ** 17n;
    const r2 = await sendAndMine(s.rpc, {
      from: DEPOSITOR.toLowerCase() as Hex,
      to: address,
      value: second,
      gas: 21_000n,
    });
    expect(r2.status).toBe("0x1");
    await s.mine(2);
    await s.syncAndCredit();
    expect(await s.userCredited(NATIVE, "alice")).toBe(first + second);
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(second);

    // ... and swept again by a new sweep of the same salt.
    await s.sweeper.tick(31337);
    await s.settleAll();
    expect(await native(address)).toBe(0n);
    expect(await s.balanceOf(NATIVE, "custody:deposits")).toBe(0n);
    const booked = await s.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'sweep'",
    );
    expect(booked.rows[0].n).toBe(2);
    const fees = await s.balanceOf(NATIVE, "fees:gas");
    expect(await native(s.hot)).toBe(hotBefore + first + second - (fees - s.deployGas));
    expect(await s.balanceOf(NATIVE, hotAccount(s.hot))).toBe(first + second - fees);
  });

  it("200 ERC-20 deposit addresses are swept in a few transactions; hot wallet and ledger agree to the wei", async () => {
    const addresses: Address[] = [];
    for (let i = 0; i < 200; i++) addresses.push(await s.allocate(`erc20-${i}`));
    let total = 0n;
    for (const [i, address] of addresses.entries()) {
      const amount = 10n ** 18n + BigInt(i) * 1_000_003n;
      total += amount;
      await sendAndMine(s.rpc, {
        from: DEPOSITOR.toLowerCase() as Hex,
        to: TOKEN,
        data: mintData(address, amount),
      });
    }
    await s.mine(2);
    await s.syncAndCredit();
    expect(await s.balanceOf(TOKEN, "custody:deposits")).toBe(total);

    const tick = await s.sweeper.tick(31337);
    expect(tick.started.map((t) => t.addresses)).toEqual([50, 50, 50, 50]);
    await s.settleAll();
    const sweeps = await s.ctx.db.pool.query<{ tx_hash: string }>(
      "SELECT DISTINCT tx_hash FROM custody.sweeps WHERE id = ANY($1) AND status = 'booked'",
      [tick.started.map((t) => t.id)],
    );
    expect(sweeps.rows).toHaveLength(4);

    const hotOnChain = await tokenBalance(s.hot);
    expect(hotOnChain).toBe(total);
    expect(await s.balanceOf(TOKEN, hotAccount(s.hot))).toBe(hotOnChain);
    expect(await s.balanceOf(TOKEN, "custody:deposits")).toBe(0n);
    let left = 0n;
    for (const a of addresses) left += await tokenBalance(a);
    expect(left).toBe(0n);
    // One sweep transfer per address, each pointing at its Transfer log.
    const refs = await s.ctx.db.pool.query(
      `SELECT count(*)::int AS n, count(DISTINCT (tx_hash, position))::int AS refs
       FROM ledger.transfers WHERE kind = 'sweep' AND asset_id = $1`,
      [`31337:${TOKEN.toLowerCase()}`],
    );
    expect(refs.rows[0]).toEqual({ n: 200, refs: 200 });
  });

  it("a sweep that reverts on chain books only its gas, frees the address, and the retry books the sweep once", async () => {
    const amount = 5n * 10n ** 17n;
    const address = await s.creditedDeposit("bob", amount);
    const feesBefore = await s.balanceOf(NATIVE, "fees:gas");

    // Hold the sweep in the mempool, then put code at the address: the CREATE2 collides and
    // the whole factory call reverts when mined (after the signer's estimate passed).
    await s.rpc("evm_setAutomine", [false]);
    const tick = await s.sweeper.tick(31337);
    expect(tick.started).toHaveLength(1);
    const failedId = tick.started[0]!.id;
    await waitFor("sweep broadcast", async () => {
      const r = await getTxRequest(s.ctx.db.pool, failedId);
      return r?.status === "broadcast";
    });
    await s.rpc("anvil_setCode", [address, "0x00"]);
    await s.mine(1);
    await s.rpc("evm_setAutomine", [true]);
    await s.settleAll([failedId]);
    const failed = (await getTxRequest(s.ctx.db.pool, failedId))!;
    expect(failed.receiptSuccess).toBe(false);
    expect(failed.fee! > 0n).toBe(true);
    const row = await s.ctx.db.pool.query("SELECT status FROM custody.sweeps WHERE id = $1", [
      failedId,
    ]);
    expect(row.rows[0].status).toBe("failed");
    expect(await s.balanceOf(NATIVE, "fees:gas")).toBe(feesBefore + failed.fee!);
    expect(await native(address)).toBe(amount);

    // Clear the obstruction: the next tick sweeps the address again and books it once.
    await s.rpc("anvil_setCode", [address, "0x"]);
    // ... after the failed sweep's back-off (1.5 s in this stack).
    const retry = await waitFor(
      "retry requested",
      async () => (await s.sweeper.tick(31337)).started[0],
      { everyMs: 250 },
    );
    await s.settleAll([retry.id]);
    await s.sweeper.tick(31337);
    expect(await native(address)).toBe(0n);
    const booked = await s.ctx.db.pool.query<{ amount: bigint }>(
      `SELECT t.amount FROM ledger.transfers t
       WHERE t.kind = 'sweep' AND t.memo LIKE $1`,
      [`%from ${address.toLowerCase()}`],
    );
    expect(booked.rows).toEqual([{ amount }]);
  });

  it("a sweep reported failed without a final block stays open and books nothing; it is booked once when it confirms", async () => {
    const amount = 6n * 10n ** 17n;
    const address = await s.creditedDeposit("dave", amount);
    const feesBefore = await s.balanceOf(NATIVE, "fees:gas");
    const tick = await s.sweeper.tick(31337);
    expect(tick.started).toHaveLength(1);
    const id = tick.started[0]!.id;
    await waitFor("sweep mined", async () => {
      const r = await getTxRequest(s.ctx.db.pool, id);
      return r?.status === "mined";
    });
    // The sweep moved the value, but the signer reports it reverted and failed with no final
    // block (a signer bug: e.g. a receipt believed from one node): `failed`, finalized_at NULL.
    // Set by hand, the rest of the row (its block) kept; a failed request is not tracked.
    const set = (status: string, success: boolean, code: string | null) =>
      s.ctx.db.pool.query(
        `UPDATE custody.tx_requests
            SET status = $2, receipt_success = $3, error_code = $4, finalized_at = NULL
          WHERE id = $1`,
        [id, status, success, code],
      );
    await set("failed", false, "REVERTED");
    const sweepOf = async () =>
      (await s.ctx.db.pool.query("SELECT status FROM custody.sweeps WHERE id = $1", [id])).rows[0]
        .status;
    // (No block mined meanwhile: it stays under the chain's 8-block finality throughout.)
    for (let i = 0; i < 3; i++) expect((await s.sweeper.tick(31337)).settled).toEqual([]);
    // Not failed: its addresses stay out of planning, its gas and value unbooked.
    expect(await sweepOf()).toBe("open");
    expect(await s.balanceOf(NATIVE, "fees:gas")).toBe(feesBefore);
    expect(await native(address)).toBe(0n);

    // The signer's real view: mined and successful. It confirms, and the sweep is booked once.
    await set("mined", true, null);
    await s.mine(2);
    await waitFor("sweep booked", async () => {
      await s.sweeper.tick(31337);
      return (await sweepOf()) === "booked";
    });
    const request = (await getTxRequest(s.ctx.db.pool, id))!;
    expect(await s.balanceOf(NATIVE, "fees:gas")).toBe(feesBefore + request.fee!);
    const booked = await s.ctx.db.pool.query<{ amount: bigint }>(
      "SELECT amount FROM ledger.transfers WHERE kind = 'sweep' AND memo LIKE $1",
      [`%from ${address.toLowerCase()}`],
    );
    expect(booked.rows).toEqual([{ amount }]);

    // Booked and not final yet (followed), reported failed again without a final block: the
    // booking stands.
    await set("failed", false, "REVERTED");
    const finalAt = async () =>
      (await s.ctx.db.pool.query("SELECT final_at FROM custody.sweeps WHERE id = $1", [id])).rows[0]
        .final_at;
    expect(await finalAt()).toBeNull();
    for (let i = 0; i < 3; i++) await s.sweeper.tick(31337);
    expect(await sweepOf()).toBe("booked");
    expect(await finalAt()).toBeNull();
    const reversed = await s.ctx.db.pool.query(
      "SELECT 1 FROM ledger.transfers WHERE kind = 'compensation' AND memo LIKE $1",
      [`%${id}%`],
    );
    expect(reversed.rows).toEqual([]);
    await set("confirmed", true, null);
  });

  it("a sweep reorged out before its confirmations is re-mined by the signer and booked once", async () => {
    const amount = 7n * 10n ** 17n;
    const address = await s.creditedDeposit("carol", amount);
    const tick = await s.sweeper.tick(31337);
    expect(tick.started).toHaveLength(1);
    const id = tick.started[0]!.id;
    const mined = await waitFor("sweep mined", async () => {
      const r = await getTxRequest(s.ctx.db.pool, id);
      return r?.status === "mined" ? r : undefined;
    });
    // Replace the sweep's block with an empty one: the sweep is gone from the chain.
    await s.rpc("anvil_reorg", [1, []]);
    expect(await native(address)).toBe(amount);
    await s.settleAll([id]);
    const final = (await getTxRequest(s.ctx.db.pool, id))!;
    expect(final.status).toBe("confirmed");
    expect(final.blockNumber).not.toBeNull();
    expect(await native(address)).toBe(0n);
    const booked = await s.ctx.db.pool.query<{ amount: bigint; tx_hash: string }>(
      "SELECT amount, tx_hash FROM ledger.transfers WHERE kind = 'sweep' AND memo LIKE $1",
      [`%from ${address.toLowerCase()}`],
    );
    expect(booked.rows).toEqual([{ amount, tx_hash: final.txHash }]);
    expect(final.txHash).toBe(mined.txHash); // the same signed bytes, re-mined
  });
});

function mintData(to: Address, amount: bigint): Hex {
  // mint(address,uint256)
  return `0x40c10f19${to.slice(2).toLowerCase().padStart(64, "0")}${amount.toString(16).padStart(64, "0")}`;
}
