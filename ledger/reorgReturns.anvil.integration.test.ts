/**
 * A reorged deposit that comes back as another fact of its transaction, on anvil: the same signed
 * token payout re-executed on the new branch's state emits another Transfer before the deposit, so
 * the deposit's ordinal in the tx (its fact identity, `transfer:<n>`) moves. It is the return of the
 * held credit, not new money: the returned fact is credited (reconciliation pairs one transfer
 * with each fact), the old credit's hold is closed against it, the shortfall it booked is paid out
 * of it and the customer's withdrawals are unblocked, in the crediting transaction. A payout paying
 * one customer the same amount twice returns each credit once. Real indexer, ledger, API
 * withdrawals (for the shortfall) and reconciliation on one database; confirmations 3, finality 40.
 */
import { getContractAddress, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../api/testing/apiTestContext.js";
import { deployTestFactory } from "../api/testing/factory.js";
import { produceDepositEvents } from "../api/webhooks/depositEvents.js";
import { adapterPerChain } from "../chains/index.js";
import { artifacts, call, deploy, freshAddress, sendAndMine } from "../indexers/testing/chain.js";
import { sweepReader } from "../signer/sweeps/sweepReads.js";
import { listDeposits } from "./deposits.js";
import { createReconciler } from "./recon/reconcile.js";
import { getRunReport } from "./recon/report.js";
import {
  REORG_CHAIN,
  REORG_CHAIN_ID,
  type ReorgScenario,
  startReorgScenario,
} from "./testing/reorgScenario.js";
import { transferId } from "./transferId.js";
import { isWithdrawalBlocked } from "./withdrawalBlocks.js";

// anvil's dev accounts 6 and 7 (well-known, never real keys): 6 deploys the token (its nonce 0, so
// the token's address is known before the context lists it), 7 pays the payouts.
const DEPLOYER = "0x976ea74026e726554db657fa54763abd0c3a0aa9" as Hex;
const PAYER = "0x14dc79964da2c08b23698b3d3cc7ca32193d9955" as Hex;
const TOKEN = getContractAddress({ from: DEPLOYER, nonce: 0n }).toLowerCase() as Hex;
const TT = `${REORG_CHAIN_ID}:${TOKEN}`;
const E18 = 10n ** 18n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const OUTSIDER = freshAddress(599);
const D_ANN = freshAddress(501);
const D_BEN = freshAddress(502);
const D_CAL = freshAddress(503);

let t: ApiTestContext;
let s: ReorgScenario;
let n = 0;

const account = (name: string) => s.ledger.balance({ assetId: TT, name });
const withdrawToken = (customerId: string, amount: bigint) =>
  t.call(t.keys["withdrawals:write"], {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": `return-${++n}` },
    payload: { customerId, chain: s.chain.key, asset: TOKEN, to: DEST, amount: amount.toString() },
  });
const creditsOf = async (txHash: string) =>
  (
    await t.ctx.db.pool.query<{ position: string; state: string; returned: string | null }>(
      `SELECT d.position, d.state, r.position AS returned FROM ledger.deposit_credits d
         LEFT JOIN ledger.deposit_credits r ON r.credit_id = d.returned_credit_id
        WHERE d.tx_hash = $1 ORDER BY d.created_at, d.position`,
      [txHash],
    )
  ).rows.map((r) => [r.position, r.state, r.returned]);

/**
 * Pay `to` from PAYER in one signed tx (`payout`: skips what the payer cannot cover), credit it,
 * then replace the chain from before it with a branch on which the deployer first funds the payer
 * with `topUp`, and the same bytes mined again (now paying what they skipped before), buried under
 * the confirmation rule. Returns the tx and the sweep after the reorg.
 */
async function payoutThenReorg(
  to: Hex[],
  values: bigint[],
  topUp: bigint,
  beforeReorg?: () => Promise<void>,
) {
  const snapshot = await s.rpc<Hex>("evm_snapshot");
  const r = await sendAndMine(s.rpc, {
    from: PAYER,
    to: TOKEN,
    data: call("TestToken", "payout", [to, values]),
    gas: 300_000n,
  });
  const txHash = r.transactionHash.toLowerCase() as Hex;
  const raw = await s.rpc<Hex>("eth_getRawTransactionByHash", [txHash]);
  await s.mine(3);
  await s.settle();
  const tip = BigInt(await s.rpc<Hex>("eth_blockNumber"));
  await beforeReorg?.();
  await s.rpc("evm_revert", [snapshot]);
  await sendAndMine(s.rpc, {
    from: DEPLOYER,
    to: TOKEN,
    data: call("TestToken", "transfer", [PAYER, topUp]),
  });
  expect(await s.rpc<Hex>("eth_sendRawTransaction", [raw])).toBe(txHash);
  while (BigInt(await s.rpc<Hex>("eth_blockNumber")) <= tip + 1n) await s.mine(1);
  return { txHash, swept: await s.settle() };
}

beforeAll(async () => {
  t = await createApiTestContext({
    chains: [
      {
        ...REORG_CHAIN,
        config: {
          ...REORG_CHAIN.config,
          tokens: [{ address: TOKEN, symbol: "TT", decimals: 18 }],
        },
      },
    ],
    // An endpoint (never called here) so webhook events are produced.
    configure: (ctx) => {
      const config = Object.freeze({
        ...ctx.config,
        webhooks: [{ url: "http://127.0.0.1:9/hook", secretEnv: "WH", events: ["*"] }],
        webhookSecrets: { WH: "secret" },
      });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  });
  await deployTestFactory(t.ctx);
  s = await startReorgScenario(t.ctx, [
    { address: D_ANN, owner: "ann" },
    { address: D_BEN, owner: "ben" },
    { address: D_CAL, owner: "cal" },
  ]);
  expect(await deploy(s.rpc, DEPLOYER, "TestToken", [10n ** 24n])).toBe(TOKEN);
  expect(artifacts.TestToken.abi.some((x) => "name" in x && x.name === "payout")).toBe(true);
});

afterAll(async () => {
  await s?.stop();
  await t?.cleanup();
});

describe("a reorged deposit back at another position of its transaction", () => {
  it("is the return of the held credit: one deposit in the end, shortfall settled from it, withdrawals unblocked, no recon break", async () => {
    const amount = 15n * E18;
    // The payer holds just the deposit: the outsider's 40 is skipped, ann's deposit is transfer:0.
    await sendAndMine(s.rpc, {
      from: DEPLOYER,
      to: TOKEN,
      data: call("TestToken", "transfer", [PAYER, amount]),
    });
    const { txHash, swept } = await payoutThenReorg(
      [OUTSIDER, D_ANN],
      [40n * E18, amount],
      40n * E18,
      async () => {
        // Ann spends most of it while it is credited: the reorg hold leaves a shortfall.
        expect((await withdrawToken("ann", 14n * E18)).statusCode).toBe(201);
      },
    );
    const positions = await t.ctx.db.pool.query<{ id: string; position: string; status: string }>(
      `SELECT id::text, position, status FROM chain.transfers WHERE tx_hash = $1 AND to_address = $2
        ORDER BY block_number`,
      [txHash, D_ANN],
    );
    expect(positions.rows.map((r) => [r.position, r.status])).toEqual([
      ["transfer:0", "orphaned"],
      ["transfer:1", "confirmed"],
    ]);
    // Held (the old fact is gone), and in the same sweep its return credited against it.
    expect(swept).toMatchObject({ held: 1, credited: 1 });
    expect(await creditsOf(txHash)).toEqual([
      ["transfer:0", "final", "transfer:1"],
      ["transfer:1", "credited", null],
    ]);
    const ann = await account("user:ann");
    // One deposit of 15 and a withdrawal of 14 still pending: 1 available, nothing more.
    expect([ann.creditsPosted - ann.debitsPosted, ann.debitsPending, ann.available]).toEqual([
      amount,
      14n * E18,
      1n * E18,
    ]);
    const receivable = await account("receivable:reorg:ann");
    expect(receivable.debitsPosted - receivable.creditsPosted).toBe(0n);
    expect(receivable.debitsPending).toBe(0n);
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "ann")).toBe(false);
    expect((await s.ledger.check()).problems).toEqual([]);

    // The API: the orphaned fact restored (its deposit is carried by the other), the new one credited.
    const deposits = await listDeposits(t.ctx.db.pool, { customerId: "ann", limit: 10 });
    expect(deposits.map((d) => [d.position, d.status, d.credit_state])).toEqual([
      ["transfer:0", "orphaned", "restored"],
      ["transfer:1", "confirmed", "credited"],
    ]);
    const events = await t.ctx.db.pool.query<{ type: string; payload: Record<string, unknown> }>(
      `SELECT type, payload FROM ledger.customer_events WHERE payload->>'tx_hash' = $1 ORDER BY id`,
      [txHash],
    );
    expect(events.rows.map((e) => [e.type, e.payload.restored_position ?? null])).toEqual([
      ["deposit.reorg_held", null],
      ["deposit.reorg_restored", "transfer:1"],
    ]);

    // Webhooks: the held deposit's hold ends restored, carried by the other deposit and its own
    // credit (whose deposit.credited names it): one deposit for a receiver that counts them.
    const old = positions.rows[0]!;
    const back = positions.rows[1]!;
    const newCredit = (
      await t.ctx.db.pool.query<{ id: string }>(
        "SELECT credit_id::text AS id FROM ledger.deposit_credits WHERE tx_hash = $1 AND position = 'transfer:1'",
        [txHash],
      )
    ).rows[0]!.id;
    await produceDepositEvents({ common: t.ctx.common, pool: t.ctx.db.pool });
    const hooks = await t.ctx.db.pool.query<{ type: string; data: Record<string, unknown> }>(
      `SELECT type, payload AS data FROM api.webhook_events
        WHERE payload->>'deposit_id' = ANY($1::text[]) ORDER BY created_at, type`,
      [[old.id, back.id]],
    );
    const restored = hooks.rows.find((h) => h.type === "deposit.reorg_restored");
    expect(restored?.data).toMatchObject({
      deposit_id: old.id,
      restored_deposit_id: back.id,
      restored_credit_id: newCredit,
    });
    expect(
      hooks.rows
        .filter((h) => h.type === "deposit.credited" && h.data.deposit_id === back.id)
        .map((h) => h.data.credit_id),
    ).toEqual([newCredit]);

    // Again: nothing more to do.
    expect(await s.settle()).toMatchObject({ credited: 0, held: 0, restored: 0, finalized: 0 });
    expect(await creditsOf(txHash)).toHaveLength(2);

    // Reconciliation at the returned fact's block: no break on the transaction.
    const block = Number(
      (
        await t.ctx.db.pool.query<{ b: string }>(
          "SELECT max(block_number)::text AS b FROM chain.transfers WHERE tx_hash = $1",
          [txHash],
        )
      ).rows[0]!.b,
    );
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chains: adapterPerChain(t.ctx.common),
    });
    const run = await reconciler.run({ chain: s.chain, block, full: true });
    expect(run.breaks.filter((b) => b.key.startsWith(txHash) || b.assetId === TT)).toEqual([]);
    // Its report lists the old credit as returned, naming the credit that carries it: not as a
    // hold posted at finality with a receivable to recover from the customer.
    expect(
      run.holds.filter((h) => h.txHash === txHash).map((h) => [h.position, h.state, h.returned]),
    ).toEqual([["transfer:0", "final", { creditId: newCredit, position: "transfer:1" }]]);
    const report = await getRunReport(t.ctx.db.pool, run.runId);
    expect(report.json.verdict).toMatch(
      /1 reorg hold \(0 open, 0 posted at finality, 1 returned\)/,
    );
    expect(report.csv).toContain(`came back as ${txHash}:transfer:1 (credit ${newCredit})`);
    expect(report.csv).not.toContain("recover the receivable");
  });

  it("a payout paying the same customer the same amount twice returns each credit once", async () => {
    const amount = 2n * E18;
    // Ben is paid twice (transfer:0, transfer:1); on the branch the outsider's payment comes
    // between them: transfer:0 is ben's first again, his second is transfer:2.
    await sendAndMine(s.rpc, {
      from: DEPLOYER,
      to: TOKEN,
      data: call("TestToken", "transfer", [PAYER, 2n * amount]),
    });
    const { txHash, swept } = await payoutThenReorg(
      [D_BEN, OUTSIDER, D_BEN],
      [amount, 40n * E18, amount],
      40n * E18,
    );
    // Ben's first payment is back at its own position (same deposit: its credit stands); his
    // second, now transfer:2, is the return of the credit of transfer:1.
    expect(swept).toMatchObject({ credited: 1 });
    expect(await creditsOf(txHash)).toEqual([
      ["transfer:0", "credited", null],
      ["transfer:1", "final", "transfer:2"],
      ["transfer:2", "credited", null],
    ]);
    const ben = await account("user:ben");
    expect([ben.creditsPosted - ben.debitsPosted, ben.available]).toEqual([
      2n * amount,
      2n * amount,
    ]);
    expect(await s.settle()).toMatchObject({ credited: 0, held: 0, restored: 0, finalized: 0 });
    expect((await s.ledger.check()).problems).toEqual([]);
  });

  it("a return after part of the receivable was paid down pays only what is still owed on it", async () => {
    const amount = 15n * E18;
    await sendAndMine(s.rpc, {
      from: DEPLOYER,
      to: TOKEN,
      data: call("TestToken", "transfer", [PAYER, amount]),
    });
    // Cal's deposit, credited, 14 of it spent; then a branch without it: hold 1, shortfall 14.
    const snapshot = await s.rpc<Hex>("evm_snapshot");
    const paid = await sendAndMine(s.rpc, {
      from: PAYER,
      to: TOKEN,
      data: call("TestToken", "transfer", [D_CAL, amount]),
    });
    const txHash = paid.transactionHash.toLowerCase() as Hex;
    const raw = await s.rpc<Hex>("eth_getRawTransactionByHash", [txHash]);
    await s.mine(3);
    expect((await s.settle()).credited).toBe(1);
    expect((await withdrawToken("cal", 14n * E18)).statusCode).toBe(201);
    const tip = BigInt(await s.rpc<Hex>("eth_blockNumber"));
    await s.rpc("evm_revert", [snapshot]);
    while (BigInt(await s.rpc<Hex>("eth_blockNumber")) <= tip + 1n) await s.mine(1);
    expect(await s.settle()).toMatchObject({ held: 1 });
    // Final without it: the hold and the shortfall are posted, cal owes 14.
    await s.mine(45);
    expect(await s.settle()).toMatchObject({ finalized: 1 });
    const owed = async () => {
      const r = await account("receivable:reorg:cal");
      return r.debitsPosted - r.creditsPosted;
    };
    expect(await owed()).toBe(14n * E18);
    // 4 of it repaid (off-chain, say), booked by an operator.
    const [repaid] = await s.ledger.createTransfers([
      {
        id: transferId("test:cal-repaid-part-of-the-shortfall"),
        assetId: TT,
        debit: "treasury",
        credit: "receivable:reorg:cal",
        amount: 4n * E18,
        kind: "compensation",
        memo: "cal repaid 4 of the reorg shortfall",
      },
    ]);
    expect(repaid?.status).toBe("created");
    expect(await owed()).toBe(10n * E18);

    // The same transaction mined after all: its return pays the 10 still owed, not the 14 booked.
    expect(await s.rpc<Hex>("eth_sendRawTransaction", [raw])).toBe(txHash);
    await s.mine(4);
    expect(await s.settle()).toMatchObject({ credited: 1 });
    expect(await creditsOf(txHash)).toEqual([
      ["transfer:0", "final", "transfer:0"],
      ["transfer:0", "credited", null],
    ]);
    expect(await owed()).toBe(0n);
    const cal = await account("user:cal");
    // 15 + 15 in, the hold's 1 and the 10 owed out; the withdrawal of 14 still pending: the 4 cal
    // repaid is cal's again.
    expect([cal.creditsPosted - cal.debitsPosted, cal.debitsPending, cal.available]).toEqual([
      19n * E18,
      14n * E18,
      5n * E18,
    ]);
    expect(await isWithdrawalBlocked(t.ctx.db.pool, "cal")).toBe(false);
    expect((await s.ledger.check()).problems).toEqual([]);
  });
});
