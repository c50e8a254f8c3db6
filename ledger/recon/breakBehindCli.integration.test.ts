/**
 * A transaction break the CLI's full run found stays a break until a run examines its subject
 * again. An incremental run examines what changed since the run it continues from and that run's
 * breaks; a booking its watermarks never showed (one whose seq gap a run stored by the previous
 * revision dropped after an hour while its writer was still open; now a gap is kept until that
 * writer has ended, seqGaps.ts) is none of these, and only a full run finds the break it makes. The
 * scheduled role runs its grace period behind the newest final block, so after an operator's
 * `custody-node reconcile --full` at block B its next run is often below B, and the run after
 * that continues from that one, not from the CLI's: a run that never examined the subject must not
 * resolve its break (principle 8: not looking is no evidence). Real indexer, ledger and crediting,
 * two reconcilers (the role's and the CLI's) on real Postgres and anvil.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain } from "../../chains/index.js";
import { freshAddress, type Rpc, sendAndMine } from "../../indexers/testing/chain.js";
import type { TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { transferId } from "../transferId.js";
import { createReconciler, type Reconciler } from "./reconcile.js";
import type { SeqGap } from "./seqGaps.js";
import { expectFoundAgainBehindCli } from "./testing/behindCliRun.js";
import type { ReconciledChain } from "./testing/reconciledChain.js";
import { mine, startWatchedChain, sync, type WatchedChain } from "./testing/watchedChain.js";

const CHAIN_ID = 31337;
const E18 = 10n ** 18n;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const D_ALICE = freshAddress(731);

let w: WatchedChain;
let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let customer: Hex;
let stack: ReconciledChain;
let role: Reconciler;
let operator: Reconciler;

const settle = async () => {
  await mine(w, 3);
  await sync(w);
  await stack.crediting.sweep({ chainId: CHAIN_ID });
};

beforeAll(async () => {
  w = await startWatchedChain({ deposits: [{ address: D_ALICE, owner: "alice" }] });
  ({ ctx, chain, rpc, customer, stack } = w);
  const reconciler = () =>
    createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => stack.adapter),
    });
  role = reconciler();
  operator = reconciler();
});

afterAll(async () => {
  await w?.stop();
});

const gapsOf = async (runId: number) =>
  (
    await ctx.db.pool.query<{ entry_gaps: SeqGap[] }>(
      "SELECT entry_gaps FROM recon.runs WHERE id = $1",
      [runId],
    )
  ).rows[0]!.entry_gaps;

describe("a double credit found only by the CLI's full run", () => {
  it("is not resolved by the role's later run that never examined it", async () => {
    const deposit = await sendAndMine(rpc, { from: customer, to: D_ALICE, value: E18 });
    const txHash = deposit.transactionHash.toLowerCase();
    await settle();
    const first = await role.run({ chain });
    expect(first.clean).toBe(true);

    // Alice's deposit credited a second time by a writer whose transaction stays open, while a
    // later transfer (a later seq) commits: the role's runs see a seq gap where it is.
    const writer = await ctx.db.pool.connect();
    let open = true;
    try {
      await writer.query("BEGIN");
      await stack.ledger.transfer(
        {
          id: transferId("slow write: alice again"),
          assetId: ETH,
          debit: "custody:deposits",
          credit: "user:alice",
          amount: E18,
          kind: "deposit",
          chainRef: { chainId: CHAIN_ID, txHash: deposit.transactionHash, position: "tx" },
        },
        { client: writer },
      );
      await stack.ledger.transfer({
        id: transferId("treasury note"),
        assetId: ETH,
        debit: "suspense",
        credit: "treasury",
        amount: 1n,
        kind: "manual",
      });
      const gapped = await role.run({ chain });
      const [gap] = await gapsOf(gapped.runId);
      expect(gap).toBeDefined();
      // The run lost track of the gap with the writer still open (as the previous revision's
      // runs did after an hour, taking it for a rolled-back transaction): its stored gaps are gone.
      await ctx.db.pool.query("UPDATE recon.runs SET entry_gaps = '[]'::jsonb WHERE id = $1", [
        gapped.runId,
      ]);
      const aged = await role.run({ chain });
      expect(await gapsOf(aged.runId)).toEqual([]);
      // … and then it commits: its seq is below every later run's watermark, in no gap.
      await writer.query("COMMIT");
      open = false;
    } finally {
      if (open) await writer.query("ROLLBACK").catch(() => {});
      writer.release();
    }
    // Where the role's next run will stand: its grace period behind the final block the CLI uses.
    const behind = await role.finalBlock(chain);
    await settle();

    await expectFoundAgainBehindCli({
      pool: ctx.db.pool,
      chain,
      role,
      operator,
      behind,
      settle,
      key: `${txHash}:tx`,
      type: "double_credit",
    });
  }, 120_000);
});
