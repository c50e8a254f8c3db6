/**
 * Writes that become visible to reconciliation long after they were stamped: a ledger transaction
 * that holds its seq for over an hour (waiting on a lock behind a long migration, say) and then
 * commits below every later run's watermark, and an indexer transaction that orphans a credited
 * deposit, stamped (`orphaned_at`, the reorg's `detected_at`: its start) more than the lookback
 * before a run's snapshot and committed after it. Both are what the scheduled incremental runs
 * must see, not only the nightly `--full`: between the two the custody team would read "0 breaks"
 * beside a double credit or an orphaned credit. Real indexer, ledger and crediting on real
 * Postgres and anvil; the long waits are not waited out, their timestamps are moved back.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type ChainConfig, createEvmAdapter } from "../../chains/index.js";
import type { Ingestor } from "../../indexers/createIngestor.js";
import { freshAddress, receipt, syncToHead } from "../../indexers/testing/chain.js";
import { type IndexerTest, startIndexerTest } from "../../indexers/testing/indexerTest.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../depositCrediting.js";
import { transferId } from "../transferId.js";
import { createReconciler, type Reconciler } from "./reconcile.js";
import type { SeqGap } from "./seqGaps.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x${"0".repeat(40)}`;
const D_ALICE = freshAddress(811);
const D_BOB = freshAddress(812);
const E18 = 10n ** 18n;

let t: IndexerTest;
let chain: ChainConfig;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let reconciler: Reconciler;

const mine = async (n: number) => {
  for (let i = 0; i < n; i++) await t.rpc("evm_mine");
};
const ingest = () => syncToHead(ingestor, t.ctx.db.pool, t.rpc, CHAIN_ID);
const settle = async () => {
  await ingest();
  await crediting.sweep({ chainId: CHAIN_ID });
};
/** A deposit of `value` to `to`, confirmed, indexed and credited; its tx hash (lowercase). */
async function creditedDeposit(to: Hex, value: bigint): Promise<string> {
  const hash = await t.rpc<Hex>("eth_sendTransaction", [
    { from: t.from, to, value: `0x${value.toString(16)}` },
  ]);
  await receipt(t.rpc, hash);
  await mine(3);
  await settle();
  return hash.toLowerCase();
}
/**
 * Alice's deposit `txHash` credited `amount` a second time (transfer `ids.credit`) by a writer
 * whose transaction stays open while a later transfer (`ids.note`, a later seq) commits: the runs
 * see a seq gap where it is. `whileOpen` runs then; after it the writer commits, and the chain
 * moves on and is settled.
 */
async function creditAgainLate(
  txHash: string,
  amount: bigint,
  ids: { credit: string; note: string },
  whileOpen: () => Promise<void>,
): Promise<void> {
  const writer = await t.ctx.db.pool.connect();
  let open = true;
  try {
    await writer.query("BEGIN");
    await ledger.transfer(
      {
        id: transferId(ids.credit),
        assetId: ETH,
        debit: "custody:deposits",
        credit: "user:alice",
        amount,
        kind: "deposit",
        chainRef: { chainId: CHAIN_ID, txHash: txHash as Hex, position: "tx" },
      },
      { client: writer },
    );
    await ledger.transfer({
      id: transferId(ids.note),
      assetId: ETH,
      debit: "suspense",
      credit: "treasury",
      amount: 1n,
      kind: "manual",
    });
    await whileOpen();
    await writer.query("COMMIT");
    open = false;
  } finally {
    if (open) await writer.query("ROLLBACK").catch(() => {});
    writer.release();
  }
  await mine(3);
  await settle();
}
const runRow = async (runId: number) =>
  (
    await t.ctx.db.pool.query<{ entry_gaps: SeqGap[]; snapshot_at: Date }>(
      "SELECT entry_gaps, snapshot_at FROM recon.runs WHERE id = $1",
      [runId],
    )
  ).rows[0]!;

beforeAll(async () => {
  t = await startIndexerTest({
    config: { confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 16, traces: false },
    watch: [
      { address: D_ALICE, owner: "alice" },
      { address: D_BOB, owner: "bob" },
    ],
  });
  ({ chain } = t);
  ingestor = await t.ingestor();
  await mine(3);
  await ingest();
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig([chain]);
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

describe("late commits and incremental runs", () => {
  it("a booking that held its seq for over an hour is a break in the next incremental run", async () => {
    const txHash = await creditedDeposit(D_ALICE, E18);
    expect((await reconciler.run({ chain })).breaks).toEqual([]);

    // Alice's deposit credited a second time by a writer whose transaction stays open, while a
    // later transfer (a later seq) commits: the runs see a seq gap where it is.
    await creditAgainLate(
      txHash,
      E18,
      { credit: "slow write: alice again", note: "late commits: treasury note" },
      async () => {
        const gapped = await reconciler.run({ chain });
        expect(gapped.mode).toBe("incremental");
        const [gap] = (await runRow(gapped.runId)).entry_gaps;
        expect(gap).toBeDefined();
        // An hour goes by with the writer still open (its first-seen time is moved an hour back),
        // and a run is made then; then the writer commits: its seq is below every later run's
        // watermark.
        await t.ctx.db.pool.query("UPDATE recon.runs SET entry_gaps = $2::jsonb WHERE id = $1", [
          gapped.runId,
          JSON.stringify([[gap![0], gap![1], gap![2] - 61 * 60_000, ...gap!.slice(3)]]),
        ]);
        const aged = await reconciler.run({ chain });
        expect(aged.breaks).toEqual([]);
      },
    );

    const next = await reconciler.run({ chain });
    expect(next.mode).toBe("incremental");
    expect(next.breaks.map((b) => `${b.type} ${b.key}`)).toContain(`double_credit ${txHash}:tx`);
    expect(next.alerting).toBeGreaterThan(0);
  }, 120_000);

  it("a booking whose seq a full run saw missing far below its watermark is a break in the next incremental run", async () => {
    // old code: expected [ …(the full run's breaks) ] to include 'double_credit 0x…:tx' — the full
    // run recorded the seq gaps among its newest 100,000 seq values only, so the runs continuing
    // from it never read the booking that filled an older gap.
    const txHash = await creditedDeposit(D_ALICE, 3n * E18);
    expect(
      (await reconciler.run({ chain })).breaks.filter((b) => b.key === `${txHash}:tx`),
    ).toEqual([]);
    await creditAgainLate(
      txHash,
      3n * E18,
      {
        credit: "slow write under a full run: alice again",
        note: "late commits: treasury note over the writer",
      },
      async () => {
        const gapped = await reconciler.run({ chain });
        expect((await runRow(gapped.runId)).entry_gaps).not.toEqual([]);
        // Over 100,000 seq values are taken while the writer stays open (the identity is moved on
        // rather than 100,000 transfers written), then the nightly full run.
        await t.ctx.db.pool.query(
          `SELECT setval(pg_get_serial_sequence('ledger.transfers', 'seq'),
                  (SELECT max(seq) FROM ledger.transfers) + 200000)`,
        );
        await ledger.transfer({
          id: transferId("late commits: treasury note after the jump"),
          assetId: ETH,
          debit: "suspense",
          credit: "treasury",
          amount: 1n,
          kind: "manual",
        });
        const full = await reconciler.run({ chain, full: true });
        expect(full.mode).toBe("full");
      },
    );

    const next = await reconciler.run({ chain });
    expect(next.mode).toBe("incremental");
    expect(next.breaks.map((b) => `${b.type} ${b.key}`)).toContain(`double_credit ${txHash}:tx`);
  }, 120_000);

  it("a credit orphaned by a reorg stamped before the previous run's snapshot is a break in the next incremental run", async () => {
    const snapshot = await t.rpc<Hex>("evm_snapshot");
    await mine(1);
    const txHash = await creditedDeposit(D_BOB, 2n * E18);
    const before = await reconciler.run({ chain });
    expect(before.mode).toBe("incremental");
    expect(before.breaks.filter((b) => b.key === `${txHash}:tx`)).toEqual([]);
    const { snapshot_at: snapshotAt } = await runRow(before.runId);

    // A branch without the deposit, longer than the old one: the indexer orphans the credited fact.
    // The crediting worker is down, so no reorg hold covers the credit. The indexer's transaction
    // stamped the orphaning (and the reorg) when it started, ten minutes before the previous run's
    // snapshot, and committed after it.
    await t.rpc("evm_revert", [snapshot]);
    await mine(8);
    await ingest();
    const orphaned = await t.ctx.db.pool.query(
      `UPDATE chain.transfers SET orphaned_at = $3::timestamptz - interval '10 minutes'
        WHERE chain_id = $1 AND tx_hash = $2 AND status = 'orphaned'`,
      [CHAIN_ID, txHash, snapshotAt],
    );
    expect(orphaned.rowCount).toBe(1);
    const reorgs = await t.ctx.db.pool.query(
      `UPDATE chain.reorgs SET detected_at = $2::timestamptz - interval '10 minutes'
        WHERE chain_id = $1 AND detected_at > $2`,
      [CHAIN_ID, snapshotAt],
    );
    expect(reorgs.rowCount).toBe(1);

    const next = await reconciler.run({ chain });
    expect(next.mode).toBe("incremental");
    expect(next.block).toBeGreaterThanOrEqual(before.block);
    expect(next.breaks.map((b) => `${b.type} ${b.key}`)).toContain(`orphaned_credit ${txHash}:tx`);
    expect(next.alerting).toBeGreaterThan(0);
  }, 120_000);
});
