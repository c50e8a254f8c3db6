/**
 * The seeded scenario on anvil: the real indexer stores the facts, the real ledger (and its deposit
 * crediting) books them. A clean history reconciles with zero breaks; then every break type is
 * injected and each is reported with the right type, and nothing else is, by an incremental run
 * and by a full run alike.
 */

import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { createHealth } from "../../foundation/health.js";
import type { Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  call,
  deploy,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { chainCli, spawnCli } from "../../ops/testing/process.js";
import { waitFor } from "../../ops/testing/wait.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import type { Ledger } from "../createLedger.js";
import type { DepositCrediting } from "../depositCrediting.js";
import { transferId } from "../transferId.js";
import { createReconciler, type Reconciler, type RunSummary } from "./reconcile.js";
import { getRunReport } from "./report.js";
import { reconcilerRole } from "./role.js";
import { createPlanTracingPool } from "./testing/planTrace.js";
import { type ReconciledChain, startReconciledChain } from "./testing/reconciledChain.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const ETH = `${CHAIN_ID}:${ZERO}`;
const E18 = 10n ** 18n;
const D_ALICE = freshAddress(201);
const D_BOB = freshAddress(202);
const D_CAROL = freshAddress(203);
const D_DAVE = freshAddress(204);
const OUTSIDER = freshAddress(299);

let ctx: TestContext;
let rpc: Rpc;
let chain: ChainConfig;
let customer: Hex;
let hot: Hex;
let stack: ReconciledChain;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let reconciler: Reconciler;
let aliceDeposit: Hex;
let bobDeposit: Hex;
let expected: unknown[];

const hotAccount = () => `custody:hot:${hot}`;
const mine = async (n: number) => {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
};
const sync = () => syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
/** Bury the newest blocks under the confirmation rule, index them, credit confirmed deposits. */
async function settle({ credit = true } = {}) {
  await mine(3);
  await sync();
  if (credit) await crediting.sweep({ chainId: CHAIN_ID });
}

/** A withdrawal as the pipeline books it: hold, send from the hot wallet, post, book the fee. */
async function withdraw(
  id: string,
  owner: string,
  amount: bigint,
  { feeError = 0n }: { feeError?: bigint } = {},
): Promise<void> {
  const holdId = transferId(`withdrawal:${id}`);
  await ledger.hold({
    id: holdId,
    assetId: ETH,
    debit: `user:${owner}`,
    credit: hotAccount(),
    amount,
    kind: "withdrawal",
  });
  const r = await sendAndMine(rpc, { from: hot, to: OUTSIDER, value: amount });
  const txHash = r.transactionHash.toLowerCase();
  await ledger.postPending({
    id: transferId(`withdrawal-post:${id}`),
    pendingId: holdId,
    chainRef: { chainId: CHAIN_ID, txHash, position: "tx" },
  });
  const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
  await ledger.transfer({
    id: transferId(`withdrawal-fee:${id}`),
    assetId: ETH,
    debit: "fees:gas",
    credit: hotAccount(),
    amount: fee + feeError,
    kind: "fee",
    chainRef: { chainId: CHAIN_ID, txHash, position: "fee" },
  });
}

/** A reconciler of the test's chain on a pool of the test's own (e.g. a plan-tracing one). */
const reconcilerOn = (pool: Pool) =>
  createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool,
    chains: adapterPerChain(ctx.common, () => createEvmAdapter(chain, { common: ctx.common })),
  });

const shape = (s: RunSummary) =>
  s.breaks.map((b) => `${b.type}${b.direction ? `/${b.direction}` : ""} ${b.key}`).sort();

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
  customer = accounts[0]!;
  hot = accounts[1]!;
  const token = (await deploy(rpc, customer, "TestToken", [10n ** 24n])).toLowerCase() as Hex;
  chain = {
    ...ctx.config.chains[0]!,
    confirmations: { kind: "blocks", blocks: 2 },
    tokens: [{ address: token, symbol: "TT", decimals: 18 }],
  };
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: hot, kind: "hot", owner: "hot-1" },
    { address: D_ALICE, owner: "alice" },
    { address: D_BOB, owner: "bob" },
    { address: D_CAROL, owner: "carol" },
    { address: D_DAVE, owner: "dave" },
  ]);
  stack = await startReconciledChain(ctx, chain);
  ({ ingestor, ledger, crediting, reconciler } = stack);

  // The hot wallet's genesis balance has no chain fact: booked once as an opening balance.
  await stack.bookHotOpening(hot);
});

afterAll(async () => {
  await stack?.stop();
  await ctx?.cleanup();
});

describe("reconciliation on anvil", () => {
  it("reports zero breaks for a clean history, and says so", async () => {
    const a = await sendAndMine(rpc, { from: customer, to: D_ALICE, value: 1n * E18 });
    aliceDeposit = a.transactionHash.toLowerCase() as Hex;
    const b = await sendAndMine(rpc, { from: customer, to: D_BOB, value: 2n * E18 });
    bobDeposit = b.transactionHash.toLowerCase() as Hex;
    await sendAndMine(rpc, {
      from: customer,
      to: chain.tokens[0]!.address as Hex,
      data: call("TestToken", "transfer", [D_BOB, 5n * E18]),
    });
    await settle();
    await withdraw("w1", "alice", 3n * 10n ** 17n);
    await settle();

    const run = await reconciler.run({ chain });
    expect(shape(run)).toEqual([]);
    expect(run.clean).toBe(true);
    expect(run.mode).toBe("full");
    expect(run.matched).toBe(5); // 2 ETH deposits, the token deposit, the withdrawal, its fee
    const hotCheck = run.checks.find((c) => c.scope === "hot" && c.assetId === ETH)!;
    expect(hotCheck.difference).toBe(0n);
    expect(hotCheck.chain).toBeGreaterThan(0n);
    const tokenDeposits = run.checks.find(
      (c) => c.scope === "deposits" && c.assetId === `${CHAIN_ID}:${chain.tokens[0]!.address}`,
    )!;
    expect([tokenDeposits.chain, tokenDeposits.difference]).toEqual([5n * E18, 0n]);
    const solvency = run.checks.find((c) => c.scope === "solvency" && c.assetId === ETH)!;
    expect(solvency.difference).toBeGreaterThan(0n);

    const report = await getRunReport(ctx.db.pool, run.runId);
    expect(report.json.clean).toBe(true);
    expect(report.json.verdict).toMatch(/^No breaks/);
    expect(report.html).toContain("No breaks");

    // Nothing changed: the incremental run examines nothing new and stays clean.
    const again = await reconciler.run({ chain });
    expect(again.mode).toBe("incremental");
    expect(shape(again)).toEqual([]);
    expect(again.factsExamined).toBe(0);
  });

  it("reports every injected break with the right type, and nothing else", async () => {
    // A credited deposit that a reorg deeper than the confirmation rule removes.
    const snapshot = await rpc<Hex>("evm_snapshot");
    const c = await sendAndMine(rpc, { from: customer, to: D_CAROL, value: 5n * 10n ** 17n });
    const carolDeposit = c.transactionHash.toLowerCase();
    await settle();
    expect((await ledger.getAccount({ assetId: ETH, name: "user:carol" }))?.creditsPosted).toBe(
      5n * 10n ** 17n,
    );
    await rpc("evm_revert", [snapshot]);

    // On the new branch: a withdrawal posted with the wrong fee (1 wei short) …
    await withdraw("w2", "alice", 10n ** 17n, { feeError: -1n });
    const w2 = (
      await ctx.db.pool.query<{ tx_hash: string }>(
        "SELECT tx_hash FROM ledger.transfers WHERE id = $1",
        [transferId("withdrawal-fee:w2")],
      )
    ).rows[0]!.tx_hash;
    // … a transfer out of the hot wallet that the ledger never hears of …
    const leak = (await sendAndMine(rpc, { from: hot, to: OUTSIDER, value: E18 })).transactionHash;
    // … a withdrawal posted against a transaction that does not exist …
    const ghost = `0x${"ab".repeat(32)}`;
    await ledger.hold({
      id: transferId("withdrawal:w3"),
      assetId: ETH,
      debit: "user:bob",
      credit: hotAccount(),
      amount: 2n * 10n ** 17n,
      kind: "withdrawal",
    });
    await ledger.postPending({
      id: transferId("withdrawal-post:w3"),
      pendingId: transferId("withdrawal:w3"),
      chainRef: { chainId: CHAIN_ID, txHash: ghost, position: "tx" },
    });
    // … Alice's deposit credited a second time through a direct ledger write …
    await ledger.transfer({
      id: transferId("direct write: alice again"),
      assetId: ETH,
      debit: "custody:deposits",
      credit: "user:alice",
      amount: E18,
      kind: "deposit",
      chainRef: { chainId: CHAIN_ID, txHash: aliceDeposit, position: "tx" },
    });
    // … value appearing in the hot wallet with no transaction at all …
    const hotNow = BigInt(await rpc<Hex>("eth_getBalance", [hot, "latest"]));
    await rpc("anvil_setBalance", [hot, `0x${(hotNow + 12345n).toString(16)}`]);
    await mine(6); // the new branch outgrows the old one
    await settle(); // the indexer sees the reorg; crediting places a reorg hold on Carol's credit
    // … and a deposit that is never credited.
    await sendAndMine(rpc, { from: customer, to: D_DAVE, value: 7n * 10n ** 17n });
    await settle({ credit: false });

    expected = [
      `amount_mismatch ${w2}:fee`,
      `double_credit/ledger_without_chain ${aliceDeposit}:tx`,
      `fee_not_booked/chain_without_ledger ${leak.toLowerCase()}:fee`,
      expect.stringMatching(/^missing_credit\/chain_without_ledger 0x[0-9a-f]{64}:tx$/),
      `unexplained_balance_difference hot:${hot}`,
      `unmatched_withdrawal/chain_without_ledger ${leak.toLowerCase()}:tx`,
      `unmatched_withdrawal/ledger_without_chain ${ghost}:tx`,
    ];
    const incremental = await reconciler.run({ chain });
    expect(incremental.mode).toBe("incremental");
    expect(shape(incremental)).toEqual(expected);
    const byType = new Map(incremental.breaks.map((b) => [b.type, b]));
    expect(byType.get("amount_mismatch")!.difference).toBe(-1n);
    expect(byType.get("missing_credit")!.facts[0]!.to).toBe(D_DAVE);
    // Carol's reorged deposit is handled by a reorg hold (already posted: the orphaned height is
    // past the chain's finality rule of 8 blocks): no break, listed as a hold.
    expect(byType.has("orphaned_credit")).toBe(false);
    expect(
      incremental.holds.map((h) => [h.txHash, h.owner, h.state, h.amount, h.holdAmount]),
    ).toEqual([[carolDeposit, "carol", "final", 5n * 10n ** 17n, 5n * 10n ** 17n]]);
    expect((await ledger.getAccount({ assetId: ETH, name: "user:carol" }))?.available).toBe(0n);
    expect(byType.get("unexplained_balance_difference")!.difference).toBe(-12345n);
    // Only what the breaks do not explain is unexplained: the deposit side is fully explained.
    const deposits = incremental.checks.find((x) => x.scope === "deposits" && x.assetId === ETH)!;
    expect(deposits.difference).not.toBe(0n);
    expect(deposits.unexplained).toBe(0n);

    // A full run over everything finds exactly the same.
    const full = await reconciler.run({ chain, full: true });
    expect(full.mode).toBe("full");
    expect(shape(full)).toEqual(expected);
    expect(full.factsExamined).toBeGreaterThan(incremental.factsExamined);
    // … and so does one that reads and matches two facts at a time (a withdrawal's tx and fee
    // facts share a tx hash: a range of their own).
    const paged = await createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => createEvmAdapter(chain, { common: ctx.common })),
      streamPage: 2,
    }).run({ chain, full: true });
    expect(shape(paged)).toEqual(expected);
    expect([paged.factsExamined, paged.entriesExamined, paged.matched]).toEqual([
      full.factsExamined,
      full.entriesExamined,
      full.matched,
    ]);

    // The open breaks are carried: a later incremental run with nothing new still reports them.
    const later = await reconciler.run({ chain });
    expect(shape(later)).toEqual(expected);

    const report = await getRunReport(ctx.db.pool, full.runId);
    expect(report.json.clean).toBe(false);
    expect(report.json.breaks).toHaveLength(expected.length);
    expect(report.json.holds.map((h) => h.txHash)).toEqual([carolDeposit]);
    expect(report.csv.trim().split("\r\n")).toHaveLength(expected.length + 1 + 1);
    expect(report.csv).toContain(`"reorg_hold","${ETH}","${carolDeposit}:tx"`);
    expect(report.html).toContain("amount_mismatch");
    expect(report.html).toMatch(new RegExp(`<h2>Reorg holds</h2>.*${carolDeposit}`, "s"));
    const metrics =
      await ctx.common.metrics.registry.getSingleMetricAsString("custody_recon_breaks");
    expect(metrics).toMatch(/custody_recon_breaks\{[^}]*type="double_credit"[^}]*\} 1/);
  });

  it("finds a double credit whose transaction committed after a run, below its watermark", async () => {
    // A slow writer takes its seq first and commits last.
    const slow = await ctx.db.pool.connect();
    try {
      await slow.query("BEGIN");
      await ledger.transfer(
        {
          id: transferId("slow direct write: bob again"),
          assetId: ETH,
          debit: "custody:deposits",
          credit: "user:bob",
          amount: 2n * E18,
          kind: "deposit",
          chainRef: { chainId: CHAIN_ID, txHash: bobDeposit, position: "tx" },
        },
        { client: slow },
      );
      // A later transfer (on accounts no balance check reads) commits first, so the run's
      // watermark passes the slow one's seq.
      await ledger.transfer({
        id: transferId("fast write"),
        assetId: ETH,
        debit: "fees:gas",
        credit: "suspense",
        amount: 1n,
        kind: "manual",
      });
      const during = await reconciler.run({ chain });
      expect(shape(during)).toEqual(expected);
      await slow.query("COMMIT");
    } finally {
      slow.release();
    }
    const after = await reconciler.run({ chain });
    expect(after.mode).toBe("incremental");
    const found = shape(after);
    expect(found).toHaveLength(expected.length + 1);
    expect(found).toEqual(
      expect.arrayContaining([...expected, `double_credit/ledger_without_chain ${bobDeposit}:tx`]),
    );
  });

  it("carries entries whose fact was above the run's block, so a later second booking is seen", async () => {
    const base = shape(await reconciler.run({ chain }));
    // Posted and fee-booked at once, before the indexer has made the facts final.
    await withdraw("w4", "bob", 10n ** 16n);
    await sync();
    const early = await reconciler.run({ chain });
    expect(early.deferred).toBe(2);
    expect(shape(early)).toEqual(base);
    const w4 = (
      await ctx.db.pool.query<{ tx_hash: string }>(
        "SELECT tx_hash FROM ledger.transfers WHERE id = $1",
        [transferId("withdrawal-fee:w4")],
      )
    ).rows[0]!.tx_hash;
    await ledger.transfer({
      id: transferId("w4 booked again"),
      assetId: ETH,
      debit: "user:bob",
      credit: hotAccount(),
      amount: 10n ** 16n,
      kind: "withdrawal",
      chainRef: { chainId: CHAIN_ID, txHash: w4, position: "tx" },
    });
    await settle({ credit: false });
    const later = await reconciler.run({ chain });
    expect(later.mode).toBe("incremental");
    expect(later.deferred).toBe(0);
    expect(shape(later)).toEqual([...base, `double_credit/ledger_without_chain ${w4}:tx`].sort());
  });

  it("runs from the CLI (exit 3 on breaks, JSON and CSV) and from the reconciler role", async () => {
    const cli = chainCli({
      databaseUrl: ctx.db.url,
      chain,
      entry: {
        traces: true,
        tokens: chain.tokens.map((t) => ({ address: t.address, symbol: t.symbol, decimals: 18 })),
      },
    });
    try {
      const run = spawnCli(["reconcile", "--chain", chain.key, "--format", "json"], cli.env);
      expect((await run.exited).code).toBe(3);
      const report = JSON.parse(run.output());
      expect(report.clean).toBe(false);
      expect(report.breaks.map((b: { type: string }) => b.type)).toContain("double_credit");
      const csv = spawnCli(
        ["reconcile", "--run", String(report.run.id), "--format", "csv"],
        cli.env,
      );
      expect((await csv.exited).code).toBe(0);
      expect(csv.output().trim().split("\r\n")).toHaveLength(
        report.breaks.length + report.holds.length + 1,
      );
    } finally {
      cli.remove();
    }

    const newest = async () =>
      (
        await ctx.db.pool.query<{ id: string; status: string }>(
          "SELECT id, status FROM recon.runs ORDER BY id DESC LIMIT 1",
        )
      ).rows[0]!;
    const before = Number((await newest()).id);
    const handle = await reconcilerRole({
      sweeps: sweepReader,
      chains: (common) => adapterPerChain(common),
    }).start({
      common: ctx.common,
      pool: ctx.db.pool,
      redis: ctx.redis.redis,
      queues: ctx.queues,
      health: createHealth(),
      // 30 s blocks: the role's grace period is one block.
      chains: [{ ...chain, blockTimeMs: 30_000 }],
      httpPlugins: [],
    });
    let last: { id: string; status: string };
    try {
      // A run takes seconds idle and much longer on a loaded machine: wait for it to finish.
      last = await waitFor(
        "the reconciler role to finish a run",
        async () => {
          const run = await newest();
          return Number(run.id) > before && run.status !== "running" ? run : undefined;
        },
        { timeoutMs: 90_000, everyMs: 100 },
      );
    } finally {
      await handle.stop();
    }
    expect(last.status).toBe("completed");
    const { rows } = await ctx.db.pool.query<{ block_number: string; final: number }>(
      "SELECT block_number, (inputs->>'final_block')::int AS final FROM recon.runs WHERE id = $1",
      [last.id],
    );
    expect(Number(rows[0]!.block_number)).toBe(rows[0]!.final - 1);
  });

  it("an incremental run reads its changed entries beside its facts, on a second client of its snapshot", async () => {
    const { pool, plans, backends } = createPlanTracingPool(ctx.db.url);
    let next: RunSummary;
    let check: RunSummary;
    let from = 0;
    try {
      const own = reconcilerOn(pool);
      await own.run({ chain, full: true });
      // New facts and entries for the incremental run: a deposit, credited.
      await sendAndMine(rpc, { from: customer, to: D_ALICE, value: E18 / 4n });
      await settle();
      from = plans.length;
      next = await own.run({ chain });
      check = await own.run({ chain, block: next.block, full: true });
    } finally {
      await pool.end();
    }
    expect(next.mode).toBe("incremental");
    expect(next.entriesExamined).toBeGreaterThan(0);
    const ran = (text: RegExp) =>
      plans.flatMap((p, i) => (i >= from && text.test(p) ? [backends[i]!] : []));
    // loadChangedEntries' read and loadChangedFacts' pages (ledger/recon/changes.ts).
    const entries = ran(/FROM ledger\.posted_entries e\s+WHERE e\.chain_id = \$1 AND e\.seq > \$2/);
    const facts = ran(/WHERE \(chain_id, id\) > \(\$1, \$2\)/);
    expect(entries).toHaveLength(1);
    expect(facts.length).toBeGreaterThanOrEqual(1);
    expect(facts).not.toContain(entries[0]);
    // Read in one snapshot, the run finds what a full run at its block finds.
    expect(shape(next)).toEqual(shape(check));
  });

  it("plans a run's snapshot reads without merge joins (docs/scale.md, session 14)", async () => {
    // Postgres's auto_explain sends each statement's plan, with the settings it ran under, to the
    // client as a notice: the plans of a full and an incremental run's reads, as Postgres made them.
    const { pool, plans } = createPlanTracingPool(ctx.db.url, { settings: true });
    try {
      const traced = reconcilerOn(pool);
      await traced.run({ chain, full: true });
      await settle();
      await traced.run({ chain });
    } finally {
      await pool.end();
    }
    const entryReads = plans.filter((p) => p.includes("ledger.posted_entries"));
    // The stream's range reads, the reversers, the unreferenced entries, the incremental's new ones.
    expect(entryReads.length).toBeGreaterThanOrEqual(4);
    for (const plan of entryReads) {
      expect(plan).toContain("enable_mergejoin = 'off'");
      expect(plan).not.toContain("Merge Join");
    }
  });
});
