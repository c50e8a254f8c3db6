/**
 * A credited deposit whose signed transaction a reorg mines again in another block: the indexer
 * stores a new row under the same (chain, tx hash, position), while the credit booked against the
 * old row is old and was closed by an earlier run. An incremental run must still read that credit:
 * the first incremental run after the re-mine is as clean as a full run, whether the old row was
 * orphaned after the previous run or before it (under a reorg hold), and a second credit booked
 * against the re-mined transaction is a `double_credit`.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type ChainConfig, createEvmAdapter } from "../../chains/index.js";
import type { Ingestor } from "../../indexers/createIngestor.js";
import { freshAddress, type Receipt, receipt, syncToHead } from "../../indexers/testing/chain.js";
import { type IndexerTest, startIndexerTest } from "../../indexers/testing/indexerTest.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../depositCrediting.js";
import { transferId } from "../transferId.js";
import { createReconciler, type Reconciler, type RunSummary } from "./reconcile.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x${"0".repeat(40)}`;
const D = freshAddress(401);
const GWEI = 1_000_000_000n;
const E18 = 10n ** 18n;
const hex = (n: bigint) => `0x${n.toString(16)}`;

let t: IndexerTest;
let chain: ChainConfig;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let reconciler: Reconciler;

const shape = (s: RunSummary) =>
  s.breaks.map((b) => `${b.type}${b.direction ? `/${b.direction}` : ""} ${b.key}`).sort();

const mine = async (n: number) => {
  for (let i = 0; i < n; i++) await t.rpc("evm_mine");
};
const settle = async () => {
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  await crediting.sweep({ chainId: CHAIN_ID });
  await crediting.sweep({ chainId: CHAIN_ID });
};
const available = async () => (await ledger.balance({ assetId: ETH, name: "user:dora" })).available;

/**
 * From a chain snapshot, an empty block then a deposit of `value` to Dora, confirmed, indexed and
 * credited. Returns the snapshot to revert to, the signed bytes to mine again and the receipt.
 */
async function creditedDeposit(value: bigint) {
  const payer = t.accounts[0]! as Hex;
  const snapshot = await t.rpc<Hex>("evm_snapshot");
  const nonce = await t.rpc<Hex>("eth_getTransactionCount", [payer, "latest"]);
  const raw = await t.rpc<Hex>("eth_signTransaction", [
    {
      from: payer,
      to: D,
      value: hex(value),
      gas: hex(21_000n),
      nonce,
      maxFeePerGas: hex(100n * GWEI),
      maxPriorityFeePerGas: hex(1n * GWEI),
    },
  ]);
  await mine(1);
  const hash = await t.rpc<Hex>("eth_sendRawTransaction", [raw]);
  const first = await receipt(t.rpc, hash);
  await mine(3);
  await settle();
  return { snapshot, raw, hash, first };
}

/** The same signed bytes mined on a branch from `snapshot`, one block lower, that outgrows the old. */
async function remine(snapshot: Hex, raw: Hex, hash: Hex, first: Receipt) {
  await t.rpc("evm_revert", [snapshot]);
  expect(await t.rpc<Hex>("eth_sendRawTransaction", [raw])).toBe(hash);
  const second = await receipt(t.rpc, hash);
  expect(second.blockHash).not.toBe(first.blockHash);
  await mine(6);
  await settle();
}

beforeAll(async () => {
  t = await startIndexerTest({
    config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 8, traces: false },
    watch: [{ address: D, owner: "dora" }],
  });
  ({ chain } = t);
  ingestor = await t.ingestor();
  await mine(3);
  await syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
  await ledger.ensureAccount({ assetId: ETH, name: "user:dora" });
  crediting = createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
  const adapter = createEvmAdapter(chain, { common: t.ctx.common });
  reconciler = createReconciler({
    sweeps: sweepReader,
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    chains: adapterPerChain(t.ctx.common, () => adapter),
  });
});

afterAll(async () => {
  await ledger?.close();
  await t?.stop();
});

describe("a credited deposit mined again by a reorg", () => {
  it("re-mined after the previous run matched it: the next incremental run is clean", async () => {
    const start = await available();
    const { snapshot, raw, hash, first } = await creditedDeposit(E18);
    const before = await reconciler.run({ chain, full: true });
    expect(before.block).toBeGreaterThanOrEqual(Number(first.blockNumber));
    expect(shape(before)).toEqual([]);

    await remine(snapshot, raw, hash, first);
    expect(await available()).toBe(start + E18); // credited once

    const incremental = await reconciler.run({ chain });
    expect(incremental.mode).toBe("incremental");
    expect(shape(incremental)).toEqual([]);
    expect(incremental.alerting).toBe(0);
    expect(shape(await reconciler.run({ chain, full: true }))).toEqual([]);
  });

  it("orphaned before the previous run, re-mined after it: the next incremental run is clean", async () => {
    const start = await available();
    const { snapshot, raw, hash, first } = await creditedDeposit(2n * E18);
    expect(await available()).toBe(start + 2n * E18);
    // A branch without the deposit: its credit goes under a reorg hold, and a run sees it so.
    await t.rpc("evm_revert", [snapshot]);
    await mine(6);
    await settle();
    expect(await available()).toBe(start);
    const orphaned = await reconciler.run({ chain });
    expect(orphaned.block).toBeGreaterThanOrEqual(Number(first.blockNumber));

    // The same signed bytes mined on that branch: the hold is voided, the credit stands again.
    expect(await t.rpc<Hex>("eth_sendRawTransaction", [raw])).toBe(hash);
    const again = await receipt(t.rpc, hash);
    await mine(3);
    await settle();
    expect(await available()).toBe(start + 2n * E18);

    const incremental = await reconciler.run({ chain });
    expect(incremental.mode).toBe("incremental");
    expect(incremental.block).toBeGreaterThanOrEqual(Number(again.blockNumber));
    expect(shape(incremental)).toEqual([]);
    expect(incremental.alerting).toBe(0);
    expect(shape(await reconciler.run({ chain, full: true }))).toEqual([]);
  });

  it("a second credit booked against the re-mined transaction is a double credit", async () => {
    const { snapshot, raw, hash, first } = await creditedDeposit(4n * E18);
    expect(shape(await reconciler.run({ chain }))).toEqual([]);

    await remine(snapshot, raw, hash, first);
    // Booked outside crediting (which credits a re-mined deposit once), since the previous run.
    const booked = ledger.transfer({
      id: transferId("a second credit of the re-mined deposit"),
      assetId: ETH,
      debit: "custody:deposits",
      credit: "user:dora",
      amount: 4n * E18,
      kind: "deposit",
      chainRef: { chainId: CHAIN_ID, txHash: hash, position: "tx" },
    });
    expect(await booked).toBe("created");

    const incremental = await reconciler.run({ chain });
    expect(incremental.mode).toBe("incremental");
    // The second credit is the double credit; the liability it adds is not covered on chain.
    expect(shape(incremental)).toEqual([
      `double_credit/ledger_without_chain ${hash}:tx`,
      "solvency_shortfall solvency",
    ]);
    expect(shape(incremental)).toEqual(shape(await reconciler.run({ chain, full: true })));
  });
});

/*
 * Runs stand at the confirmation rule's block; the finality rule (the reorg window) is deeper, so a
 * reorg can replace blocks at or below a completed run's block. The next run continues from that
 * run: an address whose fact the reorg orphaned must be read on chain again, not counted at the
 * balance read at the orphaned block.
 */
describe("a reorg below the previous run's block", () => {
  it("orphans a credited deposit the previous run read: the next incremental run reads the address again", async () => {
    // No rotation slice: the address is read only when the run knows of activity at it.
    const noRotation = createReconciler({
      sweeps: sweepReader,
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      chains: adapterPerChain(t.ctx.common, () =>
        createEvmAdapter(chain, { common: t.ctx.common }),
      ),
      inflowRotation: 0,
    });
    const start = await available();
    const { snapshot, first } = await creditedDeposit(8n * E18);
    const before = await noRotation.run({ chain });
    expect(before.mode).toBe("incremental");
    expect(before.block).toBeGreaterThanOrEqual(Number(first.blockNumber));
    // The double credit the test above booked stays; nothing else.
    const known = shape(before);
    expect(known).toEqual(shape(await noRotation.run({ chain, full: true })));

    // A branch without the deposit, longer than the confirmation rule, within the reorg window.
    await t.rpc("evm_revert", [snapshot]);
    await mine(6);
    await settle();
    expect(await available()).toBe(start); // the credit is under a reorg hold

    const after = await noRotation.run({ chain });
    expect(after.mode).toBe("incremental");
    expect(after.block).toBeGreaterThanOrEqual(before.block);
    const onchain = await t.rpc<Hex>("eth_getBalance", [D, hex(BigInt(after.block))]);
    expect(after.checks.find((c) => c.scope === "deposits" && c.assetId === ETH)?.chain).toBe(
      BigInt(onchain),
    );
    expect(shape(after)).toEqual(known);
    expect(shape(after)).toEqual(shape(await noRotation.run({ chain, full: true })));
  });
});
