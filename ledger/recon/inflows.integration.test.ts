/**
 * Unattributed inflows on a chain without traces (anvil, real indexer with `traces: false`): a
 * contract pays a deposit address in an internal call, so the indexer stores no fact. A
 * reconciliation run reports an `unattributed_inflow` break (and no unexplained balance difference
 * on top), the operator credits it once through the CLI (a second call answers "already credited",
 * a stale break is refused), and the next run is clean for that address.
 */

import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
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
import { type ChainCli, chainCli } from "../../ops/testing/process.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import type { Ledger } from "../createLedger.js";
import type { DepositCrediting } from "../depositCrediting.js";
import { creditInflow } from "./creditInflow.js";
import { createReconciler, type Reconciler, type RunSummary } from "./reconcile.js";
import { type ReconciledChain, startReconciledChain } from "./testing/reconciledChain.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E17 = 10n ** 17n;
const D_ERIN = freshAddress(501);
const D_FAY = freshAddress(502);
const D_GIL = freshAddress(601);
const D_HAL = freshAddress(503);

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let sender: Hex;
let forwarder: Hex;
let stack: ReconciledChain;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let reconciler: Reconciler;
let operatorCli: ChainCli;

const settle = async () => {
  for (let i = 0; i < 3; i++) await rpc("evm_mine");
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
  await crediting.sweep({ chainId: CHAIN_ID });
};
const inflowBreaks = (s: RunSummary) =>
  s.breaks.filter((b) => b.type === "unattributed_inflow" || b.key === "deposits");
const breakId = async (s: RunSummary, key: string) => {
  const r = await ctx.db.pool.query<{ n: number }>(
    "SELECT n FROM recon.breaks WHERE run_id = $1 AND key = $2",
    [s.runId, key],
  );
  return `${s.runId}:${r.rows[0]!.n}`;
};
const cli = (args: string[]) => operatorCli.run(args);
const erin = async () => ledger.balance({ assetId: ETH, name: "user:erin" });

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        config: { traces: false, confirmations: { kind: "blocks", blocks: 2 } },
      },
    ],
  });
  chain = ctx.config.chains[0]!;
  expect(chain.traces).toBe(false);
  rpc = anvilRpc(chain.rpcUrls[0]!);
  sender = ((await rpc<Hex[]>("eth_accounts"))[0] as Hex).toLowerCase() as Hex;
  forwarder = await deploy(rpc, sender, "Forwarder");
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: D_ERIN, owner: "erin" },
    { address: D_FAY, owner: "fay" },
    { address: D_GIL, owner: "gil" },
    { address: D_HAL, owner: "hal" },
  ]);
  stack = await startReconciledChain(ctx, chain);
  ({ ingestor, ledger, crediting, reconciler } = stack);
  operatorCli = chainCli({ databaseUrl: ctx.db.url, chain });
});

afterAll(async () => {
  await stack?.stop();
  await ctx?.cleanup();
  operatorCli?.remove();
});

describe("unattributed inflows on a chain without traces", () => {
  it("a plain deposit is explained by its fact: no inflow break", async () => {
    await sendAndMine(rpc, { from: sender, to: D_FAY, value: 3n * E17 });
    await settle();
    const run = await reconciler.run({ chain });
    expect(inflowBreaks(run)).toEqual([]);
    expect(run.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)?.chain).toBe(
      3n * E17,
    );
  });

  it("an internal transfer to a deposit address is a break, credited once through the CLI", async () => {
    const r = await sendAndMine(rpc, {
      from: sender,
      to: forwarder,
      value: 7n * E17,
      data: call("Forwarder", "forward", [D_ERIN]),
    });
    expect(r.status).toBe("0x1");
    await settle();
    const facts = await ctx.db.pool.query("SELECT 1 FROM chain.transfers WHERE to_address = $1", [
      D_ERIN,
    ]);
    expect(facts.rows).toEqual([]); // no trace, no fact
    // Two runs (incremental: the address is found by the rotation), the second one older than the credit.
    const first = await reconciler.run({ chain });
    const second = await reconciler.run({ chain, full: true });
    for (const run of [first, second]) {
      expect(inflowBreaks(run).map((b) => [b.type, b.key, b.assetId, b.difference])).toEqual([
        ["unattributed_inflow", `inflow:${D_ERIN}`, ETH, -7n * E17],
      ]);
    }
    const deposits = second.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)!;
    expect([deposits.difference, deposits.unexplained]).toEqual([-7n * E17, 0n]);

    const id = await breakId(second, `inflow:${D_ERIN}`);
    const credited = await cli([
      "recon",
      "credit-inflow",
      id,
      "--by",
      "ops-anna",
      "--reason",
      "forwarded by a contract; checked the sender",
    ]);
    expect(credited.code, credited.out).toBe(0);
    expect(credited.out).toContain("credited:");
    expect((await erin()).available).toBe(7n * E17);

    // The same break again: nothing more. The older run's break of the same inflow: refused.
    const again = await cli([
      "recon",
      "credit-inflow",
      id,
      "--by",
      "ops-anna",
      "--reason",
      "twice",
    ]);
    expect(again.code).toBe(0);
    expect(again.out).toContain("already credited");
    const stale = await cli([
      "recon",
      "credit-inflow",
      await breakId(first, `inflow:${D_ERIN}`),
      "--by",
      "ops-ben",
      "--reason",
      "same money",
    ]);
    expect(stale.code).not.toBe(0);
    expect(stale.out).toContain(`was credited after run ${first.runId}`);
    expect((await erin()).available).toBe(7n * E17);
    const audit = await ctx.db.pool.query(
      "SELECT credited_by, reason, amount, owner FROM ledger.inflow_credits",
    );
    expect(audit.rows).toEqual([
      {
        credited_by: "ops-anna",
        reason: "forwarded by a contract; checked the sender",
        amount: 7n * E17,
        owner: "erin",
      },
    ]);

    // The next run counts the credit: no inflow break, the deposit addresses agree with the ledger.
    const after = await reconciler.run({ chain });
    expect(inflowBreaks(after)).toEqual([]);
    const d = after.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)!;
    expect(d.difference).toBe(0n);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("the rotation reaches an address with no activity, one slice per run, and keeps an open break in view", async () => {
    const slow = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => createEvmAdapter(chain, { common: ctx.common })),
      inflowRotation: 1,
    });
    await slow.run({ chain }); // settle the cursor after the earlier runs
    await sendAndMine(rpc, {
      from: sender,
      to: forwarder,
      value: 2n * E17,
      data: call("Forwarder", "forward", [D_FAY]),
    });
    await settle();
    const checked = async (s: RunSummary) =>
      (
        await ctx.db.pool.query<{ n: number }>(
          "SELECT (inputs->>'inflow_addresses_checked')::int AS n FROM recon.runs WHERE id = $1",
          [s.runId],
        )
      ).rows[0]!.n;
    const has = (r: RunSummary) =>
      inflowBreaks(r).some((b) => b.key === `inflow:${D_FAY}` && b.difference === -2n * E17);
    const r1 = await slow.run({ chain });
    expect(await checked(r1)).toBe(1); // a slice of one, not everything
    const r2 = await slow.run({ chain });
    // Two deposit addresses, one per run: found within two runs, and kept once found.
    expect([has(r1), has(r2)]).toEqual(has(r1) ? [true, true] : [false, true]);
    // Once found, the next runs keep examining it (an open break) whatever their slice.
    const next = await slow.run({ chain });
    expect(inflowBreaks(next).map((b) => b.key)).toEqual([`inflow:${D_FAY}`]);
  });
});

/*
 * An unattributed inflow break is evidence only until a later run measures the address again. Here
 * the fact behind the inflow is written late (a late writer into an old block, as the crediting
 * catch-up pass expects), crediting books it as a deposit, and the next run no longer finds the
 * break (it is resolved). Crediting the old run's break then paid the same money a second time; it
 * is refused, and nothing is booked.
 */
describe("crediting an unattributed inflow a later run no longer finds", () => {
  it("is refused once the inflow's fact was credited and a run measured it again", async () => {
    const r = await sendAndMine(rpc, {
      from: sender,
      to: forwarder,
      value: 7n * E17,
      data: call("Forwarder", "forward", [D_GIL]),
    });
    await settle();
    const first = await reconciler.run({ chain });
    const b = await ctx.db.pool.query<{ n: number }>(
      "SELECT n FROM recon.breaks WHERE run_id = $1 AND key = $2 AND type = 'unattributed_inflow'",
      [first.runId, `inflow:${D_GIL}`],
    );
    expect(b.rows).toHaveLength(1);
    const breakId = `${first.runId}:${b.rows[0]!.n}`;

    // The internal transfer's fact arrives late, in its old block: the catch-up pass credits it.
    await ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
         asset, from_address, to_address, amount, status)
       VALUES ($1, $2, $3, $4, 0, 'trace:0', 'internal', $5, $6, $7, $8, 'confirmed')`,
      [
        CHAIN_ID,
        BigInt(r.blockNumber).toString(),
        r.blockHash.toLowerCase(),
        r.transactionHash.toLowerCase(),
        "0x0000000000000000000000000000000000000000",
        forwarder.toLowerCase(),
        D_GIL,
        (7n * E17).toString(),
      ],
    );
    await settle();
    const gil = () => ledger.balance({ assetId: ETH, name: "user:gil" });
    expect((await gil()).available).toBe(7n * E17);
    // The next run finds the inflow explained: the break is resolved.
    const second = await reconciler.run({ chain, full: true });
    expect(second.breaks.filter((x) => x.key === `inflow:${D_GIL}`)).toEqual([]);

    await expect(
      creditInflow(
        { common: ctx.common, pool: ctx.db.pool, ledger },
        { breakId, by: "ops-anna", reason: "the report of run 1" },
      ),
    ).rejects.toMatchObject({ code: "RECON_INFLOW_NOT_CREDITABLE" });
    expect((await gil()).available).toBe(7n * E17);
  });
});

/*
 * Runs stand at the confirmation rule's block, above the finality rule's: a reorg can still take
 * the block an inflow break was measured at. Until a run measures the address again, that break
 * names value the chain may no longer hold; crediting it would pay the customer for nothing.
 */
describe("crediting an unattributed inflow whose run's block a reorg replaced", () => {
  it("is refused: the run counted a block that is no longer ours", async () => {
    const snapshot = await rpc<Hex>("evm_snapshot");
    await rpc("evm_mine");
    await sendAndMine(rpc, {
      from: sender,
      to: forwarder,
      value: 5n * E17,
      data: call("Forwarder", "forward", [D_HAL]),
    });
    await settle();
    const run = await reconciler.run({ chain });
    const hal = (s: RunSummary) =>
      s.breaks.filter((b) => b.key === `inflow:${D_HAL}`).map((b) => [b.type, b.difference]);
    expect(hal(run)).toEqual([["unattributed_inflow", -5n * E17]]);
    const id = await breakId(run, `inflow:${D_HAL}`);

    // A longer branch without the internal transfer, within the reorg window (8 blocks).
    await rpc("evm_revert", [snapshot]);
    for (let i = 0; i < 3; i++) await rpc("evm_mine");
    await settle();
    const ours = await ctx.db.pool.query<{ hash: string }>(
      "SELECT hash FROM chain.canonical_blocks WHERE chain_id = $1 AND number = $2",
      [CHAIN_ID, run.block],
    );
    const counted = await ctx.db.pool.query<{ block_hash: string }>(
      "SELECT block_hash FROM recon.runs WHERE id = $1",
      [run.runId],
    );
    expect(ours.rows[0]?.hash).not.toBe(counted.rows[0]!.block_hash);

    await expect(
      creditInflow(
        { common: ctx.common, pool: ctx.db.pool, ledger },
        { breakId: id, by: "ops-anna", reason: "the report of the orphaned run" },
      ),
    ).rejects.toMatchObject({ code: "RECON_INFLOW_NOT_CREDITABLE" });
    const booked = await ctx.db.pool.query(
      "SELECT 1 FROM ledger.credited_inflows WHERE chain_id = $1 AND address = $2",
      [CHAIN_ID, D_HAL],
    );
    expect(booked.rows).toEqual([]); // nothing credited to hal
    // The next run measures the address on the new branch: nothing to credit there.
    expect(hal(await reconciler.run({ chain }))).toEqual([]);
  });
});
