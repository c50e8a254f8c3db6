/**
 * A treasury booking made before a reorg removed its transaction stood for value the hot wallet
 * never kept, with no way to take it back. `unbookTreasuryMove` (`custody-node treasury unbook`)
 * reverses it, audited, with ids derived from the booking's (a retry reverses nothing twice); only
 * once the transaction is gone for good: every fact of it orphaned and the orphaned height final.
 * While it is on the chain, orphaned above the finalized height, or not indexed at all (a node's
 * silence is not evidence), it is refused and nothing is written. Real anvil and the real indexer:
 * the reorg is a longer branch without the funding (evm_snapshot / evm_revert).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendAndMine, watch } from "../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import {
  REORG_CHAIN,
  REORG_CHAIN_ID,
  type ReorgScenario,
  startReorgScenario,
} from "./testing/reorgScenario.js";
import { startTreasuryTest, type TreasuryTest } from "./testing/treasury.js";
import {
  bookTreasuryMove,
  treasuryTransferId,
  treasuryUnbookTransferId,
  unbookTreasuryMove,
} from "./treasury.js";

const HOT = `0x${"a3".repeat(20)}` as Hex;
let ctx: TestContext;
let r: ReorgScenario;
let t: TreasuryTest;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [REORG_CHAIN] });
  await watch(ctx.db.pool, REORG_CHAIN_ID, [{ address: HOT, kind: "hot", owner: "hot-1" }]);
  r = await startReorgScenario(ctx, []);
  t = await startTreasuryTest(ctx, HOT, REORG_CHAIN_ID);
});
afterAll(async () => {
  await t?.close();
  await r?.stop();
  await ctx?.cleanup();
});

const unbook = (txHash: string) =>
  unbookTreasuryMove(t.deps, {
    chainId: REORG_CHAIN_ID,
    txHash,
    by: "ops",
    reason: "the funding was reorged out",
  });

async function expectRefused(txHash: string, message: RegExp): Promise<void> {
  const before = await t.written();
  await expect(unbook(txHash)).rejects.toMatchObject({
    code: "TREASURY_MOVE_REFUSED",
    message: expect.stringMatching(message),
  });
  expect(await t.written()).toEqual(before);
}

describe("treasury unbook of a booking a reorg removed", () => {
  it("is refused until the funding is final off the chain, then reverses it once", async () => {
    const snapshot = await r.rpc<Hex>("evm_snapshot");
    const funded = await sendAndMine(r.rpc, { from: r.sender, to: HOT, value: 5_000n });
    const tx = funded.transactionHash.toLowerCase();
    const raw = await r.rpc<Hex>("eth_getRawTransactionByHash", [tx]);
    await r.mine(3);
    await r.sync();
    const fund = { move: "fund" as const, chainId: REORG_CHAIN_ID, txHash: tx, wallet: HOT };
    const booked = await bookTreasuryMove(t.deps, { ...fund, by: "ops", reason: "float" });
    expect([booked.factsIndexed, booked.transfers.map((x) => x.status)]).toEqual([
      true,
      ["created"],
    ]);
    expect((await t.written()).hot).toBe(5_000n);

    await expectRefused(tx, /is on the chain.*its booking stands/);

    // A longer branch without the funding: the indexer orphans its fact.
    const tip = BigInt(await r.rpc<Hex>("eth_blockNumber"));
    await r.rpc("evm_revert", [snapshot]);
    while (BigInt(await r.rpc<Hex>("eth_blockNumber")) <= tip + 1n) await r.mine(1);
    await r.sync();
    const statuses = await ctx.db.pool.query<{ status: string }>(
      "SELECT status FROM chain.facts WHERE chain_id = $1 AND tx_hash = $2",
      [REORG_CHAIN_ID, tx],
    );
    expect(statuses.rows.map((x) => x.status)).toEqual(["orphaned"]);
    // Orphaned above the finalized height: it may still mine again.
    await expectRefused(tx, /off the chain at block \d+, but .*it may still mine again/);

    await r.mine(45);
    await r.sync();
    const before = await t.written();
    const undone = await unbook(tx);
    const fundId = treasuryTransferId("fund", REORG_CHAIN_ID, tx, "tx");
    expect(undone.transfers).toEqual([
      {
        id: treasuryUnbookTransferId("fund", REORG_CHAIN_ID, tx, "tx"),
        reverses: fundId,
        kind: "treasury",
        amount: 5_000n,
        status: "created",
      },
    ]);
    const after = await t.written();
    expect(after).toEqual({ transfers: before.transfers + 1, audits: before.audits + 1, hot: 0n });
    const audit = await ctx.db.pool.query<{ actor: string; details: { reason: string } }>(
      "SELECT actor, details FROM audit.audit_log WHERE action = 'treasury.unbook' AND entity_id = $1",
      [`${REORG_CHAIN_ID}:${tx}`],
    );
    expect(audit.rows.map((a) => [a.actor, a.details.reason])).toEqual([
      ["ops", "the funding was reorged out"],
    ]);

    // A retry reverses nothing twice and writes no second audit row.
    const again = await unbook(tx);
    expect(again.transfers.map((x) => x.status)).toEqual(["exists"]);
    expect(await t.written()).toEqual(after);

    // Booking it again: refused while it is off the chain, and if it mines again after all (its
    // booking's id would answer "already booked" for value the reversal took out).
    const rebook = () =>
      bookTreasuryMove(t.deps, { ...fund, amount: 5_000n, by: "ops", reason: "again" });
    await expect(rebook()).rejects.toMatchObject({
      code: "TREASURY_MOVE_REFUSED",
      message: expect.stringMatching(/a reorg took .* off the chain/),
    });
    await r.rpc("eth_sendRawTransaction", [raw]);
    await r.mine(4);
    await r.sync();
    await expect(rebook()).rejects.toMatchObject({
      code: "TREASURY_MOVE_REFUSED",
      message: expect.stringMatching(/reversed by treasury unbook/),
    });
    expect(await t.written()).toEqual(after);
  });

  it("is refused for a transaction the indexer has no fact of, however final the chain", async () => {
    const tx = `0x${"c4".repeat(32)}`;
    await bookTreasuryMove(t.deps, {
      move: "fund",
      chainId: REORG_CHAIN_ID,
      txHash: tx,
      wallet: HOT,
      amount: 7_000n,
      by: "ops",
      reason: "float, booked before it was indexed",
    });
    await r.mine(45);
    await r.sync();
    await expectRefused(tx, /no fact of .*not known to be gone/);
  });

  it("is refused for a transaction with no treasury booking", async () => {
    await expectRefused(`0x${"c5".repeat(32)}`, /no treasury booking/);
  });
});
