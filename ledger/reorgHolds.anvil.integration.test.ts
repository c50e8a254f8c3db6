/**
 * Reorg holds end to end on anvil: the real indexer ingests and orphans facts (reorgs made with
 * evm_snapshot/evm_revert and a longer branch), the ledger credits and holds, and withdrawals go
 * through the real API (/v1/withdrawals) on the same database. Confirmations 3, finality 40 blocks,
 * so a hold stays pending until the test mines past finality. Each test uses its own customer.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../api/testing/apiTestContext.js";
import { deployTestFactory } from "../api/testing/factory.js";
import { adapterPerChain } from "../chains/index.js";
import { freshAddress, sendAndMine } from "../indexers/testing/chain.js";
import { sweepReader } from "../signer/sweeps/sweepReads.js";
import { createReconciler } from "./recon/reconcile.js";
import { getRunReport } from "./recon/report.js";
import {
  REORG_CHAIN,
  REORG_CHAIN_ID,
  type ReorgScenario,
  startReorgScenario,
} from "./testing/reorgScenario.js";
import { isWithdrawalBlocked } from "./withdrawalBlocks.js";

const ETH = `${REORG_CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E17 = 10n ** 17n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const D_ALICE = freshAddress(401);
const D_BOB = freshAddress(402);
const D_CAROL = freshAddress(403);
const D_DAN = freshAddress(404);
const D_ERIN = freshAddress(405);

let t: ApiTestContext;
let s: ReorgScenario;
let n = 0;

const account = (owner: string) => s.ledger.balance({ assetId: ETH, name: `user:${owner}` });
const net = async (owner: string) => {
  const b = await account(owner);
  return b.creditsPosted - b.debitsPosted;
};
const withdraw = (customerId: string, amount: bigint) =>
  t.call(t.keys["withdrawals:write"], {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": `reorg-${++n}` },
    payload: {
      customerId,
      chain: s.chain.key,
      asset: "native",
      to: DEST,
      amount: amount.toString(),
    },
  });
const creditsOf = async (txHash: string) =>
  (
    await t.ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'deposit' AND tx_hash = $1",
      [txHash],
    )
  ).rows[0]!.n;

beforeAll(async () => {
  t = await createApiTestContext({ chains: [REORG_CHAIN] });
  await deployTestFactory(t.ctx);
  s = await startReorgScenario(t.ctx, [
    { address: D_ALICE, owner: "alice" },
    { address: D_BOB, owner: "bob" },
    { address: D_CAROL, owner: "carol" },
    { address: D_DAN, owner: "dan" },
    { address: D_ERIN, owner: "erin" },
  ]);
});

afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
});

describe("reorg holds on anvil", () => {
  it("a credited deposit reorged out is no longer available (a withdrawal of it is refused), and reconciliation shows the hold without a break; re-mined, it is credited once", async () => {
    const amount = 15n * E17;
    const { txHash, raw, swept } = await s.creditThenReorg(D_ALICE, amount);
    expect(swept.held).toBe(1);
    expect(await net("alice")).toBe(amount); // not clawed back before finality …
    expect((await account("alice")).available).toBe(0n); // … but not available
    const refused = await withdraw("alice", 14n * E17);
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({ code: "INSUFFICIENT_AVAILABLE_BALANCE" });

    // Reconciliation at the newest final block: the hold explains the deposit addresses' balance.
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chains: adapterPerChain(t.ctx.common),
    });
    const run = await reconciler.run({ chain: s.chain, full: true });
    const deposits = run.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)!;
    expect([deposits.chain, deposits.ledger, deposits.unexplained]).toEqual([0n, 0n, 0n]);
    expect(
      run.breaks.filter(
        (b) => b.key === "deposits" || b.key.startsWith(txHash) || b.type === "orphaned_credit",
      ),
    ).toEqual([]);
    expect(run.holds.map((h) => [h.txHash, h.owner, h.state, h.holdAmount])).toEqual([
      [txHash, "alice", "held", amount],
    ]);
    const report = await getRunReport(t.ctx.db.pool, run.runId);
    expect(report.json.holds).toHaveLength(1);
    expect(report.csv).toContain(`"reorg_hold","${ETH}","${txHash}:tx"`);
    expect(report.html).toContain(txHash);

    // The same signed transaction mined again on the new branch and confirmed: hold voided.
    await s.rpc("eth_sendRawTransaction", [raw]);
    await s.mine(3);
    const again = await s.settle();
    expect(again).toMatchObject({ credited: 0, restored: 1 });
    expect(await creditsOf(txHash)).toBe(1);
    expect(await net("alice")).toBe(amount);
    expect((await account("alice")).available).toBe(amount);
    expect((await s.ledger.check()).problems).toEqual([]);

    // Reconciled at a block between the orphaned copy and the re-mined one, and after it: at
    // neither is the restored credit a break.
    const remined = await t.ctx.db.pool.query<{ block_number: string }>(
      "SELECT block_number::text FROM chain.transfers WHERE tx_hash = $1 AND status <> 'orphaned'",
      [txHash],
    );
    const h2 = Number(remined.rows[0]!.block_number);
    for (const block of [h2 - 1, h2]) {
      const r = await reconciler.run({ chain: s.chain, block, full: true });
      const d = r.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)!;
      expect([block, d.chain, d.ledger, d.unexplained]).toEqual([
        block,
        block < h2 ? 0n : amount,
        block < h2 ? 0n : amount,
        0n,
      ]);
      expect(r.breaks.filter((b) => b.key.startsWith(txHash) || b.key === "deposits")).toEqual([]);
      expect(r.holds).toEqual([]);
    }
  });

  it("a deposit replaced by a smaller one in a deep reorg ends with the new amount once final", async () => {
    const { swept } = await s.creditThenReorg(D_BOB, 11n * E17, {
      branch: async () => {
        await sendAndMine(s.rpc, { from: s.sender, to: D_BOB, value: 2n * E17 });
      },
    });
    // The branch buried the replacement under the confirmation rule: held and credited at once.
    expect(swept).toMatchObject({ held: 1, credited: 1 });
    expect((await account("bob")).available).toBe(2n * E17);
    // Past the finality rule: the old credit's hold is posted.
    await s.mine(41);
    expect((await s.settle()).finalized).toBe(1);
    const bob = await account("bob");
    expect([bob.creditsPosted - bob.debitsPosted, bob.available, bob.debitsPending]).toEqual([
      2n * E17,
      2n * E17,
      0n,
    ]);
    expect((await s.ledger.check()).problems).toEqual([]);
  });

  it("a reorged deposit the customer already withdrew: the rest is held, the shortfall is a receivable, withdrawals are blocked, an alert counts it", async () => {
    const { swept } = await s.creditThenReorg(D_CAROL, 15n * E17, {
      beforeReorg: async () => {
        const w = await withdraw("carol", 14n * E17);
        expect(w.statusCode).toBe(201);
      },
    });
    expect(swept.held).toBe(1);
    const carol = await account("carol");
    expect(carol.available).toBe(0n);
    expect(carol.debitsPending).toBe(15n * E17); // the withdrawal's 1.4 and the reorg hold's 0.1
    const receivable = await s.ledger.balance({ assetId: ETH, name: "receivable:reorg:carol" });
    expect(receivable.debitsPending).toBe(14n * E17);
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "carol")).toBe(true);
    const refused = await withdraw("carol", 1n);
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({ code: "CUSTOMER_WITHDRAWALS_BLOCKED" });
    expect(
      await t.ctx.common.metrics.registry.getSingleMetricAsString(
        "custody_ledger_reorg_shortfalls_total",
      ),
    ).toMatch(/custody_ledger_reorg_shortfalls_total\{chain_id="31337"[^}]*\} 1/);
    // Another customer is not blocked.
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "dan")).toBe(false);
    expect((await s.ledger.check()).problems).toEqual([]);
  });

  it("a reorged deposit back after its hold was posted is its return: credited once more, the shortfall it left paid out of it, withdrawals unblocked", async () => {
    const amount = 15n * E17;
    const { txHash, raw, swept } = await s.creditThenReorg(D_ERIN, amount, {
      beforeReorg: async () => {
        expect((await withdraw("erin", 14n * E17)).statusCode).toBe(201);
      },
    });
    expect(swept.held).toBe(1);
    await s.mine(41);
    expect((await s.settle()).finalized).toBeGreaterThan(0); // erin's (and carol's, above)
    const owed = await s.ledger.balance({ assetId: ETH, name: "receivable:reorg:erin" });
    expect(owed.debitsPosted - owed.creditsPosted).toBe(14n * E17);
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "erin")).toBe(true);

    // The same signed transaction mined long after its hold was posted, and confirmed.
    await s.rpc("eth_sendRawTransaction", [raw]);
    await s.mine(3);
    expect(await s.settle()).toMatchObject({ credited: 1 });
    expect(await creditsOf(txHash)).toBe(2); // the reversed credit and its return's
    const erin = await account("erin");
    // One deposit of 1.5 and the withdrawal of 1.4 still pending: 0.1 available.
    expect([erin.creditsPosted - erin.debitsPosted, erin.debitsPending, erin.available]).toEqual([
      amount,
      14n * E17,
      1n * E17,
    ]);
    const settled = await s.ledger.balance({ assetId: ETH, name: "receivable:reorg:erin" });
    expect([settled.debitsPosted - settled.creditsPosted, settled.debitsPending]).toEqual([0n, 0n]);
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "erin")).toBe(false);
    const states = await t.ctx.db.pool.query<{ state: string; returned: boolean }>(
      `SELECT state, returned_credit_id IS NOT NULL AS returned FROM ledger.deposit_credits
        WHERE tx_hash = $1 ORDER BY created_at`,
      [txHash],
    );
    expect(states.rows.map((r) => [r.state, r.returned])).toEqual([
      ["final", true],
      ["credited", false],
    ]);
    expect(await s.settle()).toMatchObject({ credited: 0, finalized: 0 });
    expect((await s.ledger.check()).problems).toEqual([]);
  });
});
