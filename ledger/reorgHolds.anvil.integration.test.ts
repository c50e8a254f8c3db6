/**
 * Reorg holds end to end on anvil: the real indexer ingests and orphans facts (reorgs made with
 * evm_snapshot/evm_revert and a longer branch), the ledger credits and holds, and withdrawals go
 * through the real API (/v1/withdrawals) on the same database. Confirmations 3, finality 40 blocks,
 * so a hold stays pending until the test mines past finality. Each test uses its own customer.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../api/testing/apiTestContext.js";
import { deployTestFactory } from "../api/testing/factory.js";
import { createEvmAdapter } from "../chains/index.js";
import { createIngestor, type Ingestor } from "../indexers/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../indexers/testing/chain.js";
import type { ChainConfig } from "../ops/config.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "./depositCrediting.js";
import { createReconciler } from "./recon/reconcile.js";
import { getRunReport } from "./recon/report.js";
import { isWithdrawalBlocked } from "./withdrawalBlocks.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E17 = 10n ** 17n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const D_ALICE = freshAddress(401);
const D_BOB = freshAddress(402);
const D_CAROL = freshAddress(403);
const D_DAN = freshAddress(404);

let t: ApiTestContext;
let chain: ChainConfig;
let rpc: Rpc;
let sender: Hex;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let n = 0;

const mine = async (k: number) => {
  for (let i = 0; i < k; i++) await rpc("evm_mine");
};
const sync = () => syncToHead(ingestor, t.ctx.db.pool, rpc, CHAIN_ID);
const settle = async () => {
  await sync();
  return crediting.sweep({ chainId: CHAIN_ID });
};
const account = (owner: string) => ledger.balance({ assetId: ETH, name: `user:${owner}` });
const net = async (owner: string) => {
  const b = await account(owner);
  return b.creditsPosted - b.debitsPosted;
};
const withdraw = (customerId: string, amount: bigint) =>
  t.call(t.keys["withdrawals:write"], {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": `reorg-${++n}` },
    payload: { customerId, chain: chain.key, asset: "native", to: DEST, amount: amount.toString() },
  });
const creditsOf = async (txHash: string) =>
  (
    await t.ctx.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'deposit' AND tx_hash = $1",
      [txHash],
    )
  ).rows[0]!.n;

/**
 * Credit a deposit, then replace the chain from before it with a longer branch built by `branch`
 * (default: empty blocks), and sync + sweep. Returns the deposit's tx hash and raw bytes.
 */
async function creditThenReorg(
  to: Hex,
  value: bigint,
  { beforeReorg, branch }: { beforeReorg?: () => Promise<void>; branch?: () => Promise<void> } = {},
) {
  const snapshot = await rpc<Hex>("evm_snapshot");
  const r = await sendAndMine(rpc, { from: sender, to, value });
  const txHash = r.transactionHash.toLowerCase() as Hex;
  const raw = await rpc<Hex>("eth_getRawTransactionByHash", [txHash]);
  await mine(3);
  expect((await settle()).credited).toBe(1);
  const tip = BigInt(await rpc<Hex>("eth_blockNumber"));
  await beforeReorg?.();
  await rpc("evm_revert", [snapshot]);
  await branch?.();
  // A longer branch without the deposit: a reorg deeper than the confirmation rule.
  while (BigInt(await rpc<Hex>("eth_blockNumber")) <= tip + 1n) await mine(1);
  const swept = await settle();
  return { txHash, raw, swept };
}

beforeAll(async () => {
  t = await createApiTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        key: "local-a",
        config: {
          confirmations: { kind: "blocks", blocks: 3 },
          finality: { kind: "blocks", blocks: 40 },
          reorgWindow: 40,
        },
      },
    ],
  });
  chain = t.ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  await deployTestFactory(t.ctx);
  sender = ((await rpc<Hex[]>("eth_accounts"))[3] as Hex).toLowerCase() as Hex;
  await watch(t.ctx.db.pool, CHAIN_ID, [
    { address: D_ALICE, owner: "alice" },
    { address: D_BOB, owner: "bob" },
    { address: D_CAROL, owner: "carol" },
    { address: D_DAN, owner: "dan" },
  ]);
  ingestor = await createIngestor({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: t.ctx.common }),
    options: { batchBlocks: 8 },
  });
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig(t.ctx.config.chains);
  crediting = createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
  await sync();
});

afterAll(async () => {
  await ingestor?.stop();
  await ledger?.close();
  await t?.cleanup();
});

describe("reorg holds on anvil", () => {
  it("a credited deposit reorged out is no longer available (a withdrawal of it is refused), and reconciliation shows the hold without a break; re-mined, it is credited once", async () => {
    const amount = 15n * E17;
    const { txHash, raw, swept } = await creditThenReorg(D_ALICE, amount);
    expect(swept.held).toBe(1);
    expect(await net("alice")).toBe(amount); // not clawed back before finality …
    expect((await account("alice")).available).toBe(0n); // … but not available
    const refused = await withdraw("alice", 14n * E17);
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({ code: "INSUFFICIENT_AVAILABLE_BALANCE" });

    // Reconciliation at the newest final block: the hold explains the deposit addresses' balance.
    const reconciler = createReconciler({ common: t.ctx.common, pool: t.ctx.db.pool });
    const run = await reconciler.run({ chain, full: true });
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
    await rpc("eth_sendRawTransaction", [raw]);
    await mine(3);
    const again = await settle();
    expect(again).toMatchObject({ credited: 0, restored: 1 });
    expect(await creditsOf(txHash)).toBe(1);
    expect(await net("alice")).toBe(amount);
    expect((await account("alice")).available).toBe(amount);
    expect((await ledger.check()).problems).toEqual([]);

    // Reconciled at a block between the orphaned copy and the re-mined one, and after it: at
    // neither is the restored credit a break.
    const remined = await t.ctx.db.pool.query<{ block_number: string }>(
      "SELECT block_number::text FROM chain.transfers WHERE tx_hash = $1 AND status <> 'orphaned'",
      [txHash],
    );
    const h2 = Number(remined.rows[0]!.block_number);
    for (const block of [h2 - 1, h2]) {
      const r = await reconciler.run({ chain, block, full: true });
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
    const { swept } = await creditThenReorg(D_BOB, 11n * E17, {
      branch: async () => {
        await sendAndMine(rpc, { from: sender, to: D_BOB, value: 2n * E17 });
      },
    });
    // The branch buried the replacement under the confirmation rule: held and credited at once.
    expect(swept).toMatchObject({ held: 1, credited: 1 });
    expect((await account("bob")).available).toBe(2n * E17);
    // Past the finality rule: the old credit's hold is posted.
    await mine(41);
    expect((await settle()).finalized).toBe(1);
    const bob = await account("bob");
    expect([bob.creditsPosted - bob.debitsPosted, bob.available, bob.debitsPending]).toEqual([
      2n * E17,
      2n * E17,
      0n,
    ]);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("a reorged deposit the customer already withdrew: the rest is held, the shortfall is a receivable, withdrawals are blocked, an alert counts it", async () => {
    const { swept } = await creditThenReorg(D_CAROL, 15n * E17, {
      beforeReorg: async () => {
        const w = await withdraw("carol", 14n * E17);
        expect(w.statusCode).toBe(201);
      },
    });
    expect(swept.held).toBe(1);
    const carol = await account("carol");
    expect(carol.available).toBe(0n);
    expect(carol.debitsPending).toBe(15n * E17); // the withdrawal's 1.4 and the reorg hold's 0.1
    const receivable = await ledger.balance({ assetId: ETH, name: "receivable:reorg:carol" });
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
    expect((await ledger.check()).problems).toEqual([]);
  });
});
