/**
 * Runs of one chain are not always at rising blocks: the reconciler role stays `graceBlocks`
 * behind the final block, a `recon run` from the CLI does not, and `--block` names any final
 * block. A run at a lower block than the run that found a break cannot see the fact it is about:
 * not finding it there is no evidence that it was fixed, so it must not resolve it (nor lose the
 * operator's acknowledgement, so that the next run pages for it again). Nor may it count a deposit
 * address the higher run read at that read's balance: it holds what the later block says.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain } from "../../chains/index.js";
import { freshAddress, type Rpc, sendAndMine } from "../../indexers/testing/chain.js";
import type { TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { acknowledgeBreak, breakStatesOf } from "./breakStates.js";
import { createReconciler, type RunSummary } from "./reconcile.js";
import type { ReconciledChain } from "./testing/reconciledChain.js";
import { mine, startWatchedChain, sync, type WatchedChain } from "./testing/watchedChain.js";

const CHAIN_ID = 31337;
const E18 = 10n ** 18n;
const D_ALICE = freshAddress(211);
const D_BOB = freshAddress(212);

let w: WatchedChain;
let ctx: TestContext;
let rpc: Rpc;
let chain: ChainConfig;
let stack: ReconciledChain;
let customer: Hex;
let hot: Hex;

beforeAll(async () => {
  w = await startWatchedChain({
    deposits: [
      { address: D_ALICE, owner: "alice" },
      { address: D_BOB, owner: "bob" },
    ],
  });
  ({ ctx, rpc, chain, stack, customer, hot } = w);
});

afterAll(async () => {
  await w?.stop();
});

describe("a run at a lower block than the run that found a break", () => {
  it("neither resolves it nor drops its acknowledgement", async () => {
    await mine(w, 3);
    await sync(w);
    const before = await stack.reconciler.run({ chain });
    expect(before.clean).toBe(true);
    // A deposit nobody credits: a missing credit above `before`'s block.
    await sendAndMine(rpc, { from: customer, to: D_ALICE, value: E18 });
    await mine(w, 3);
    await sync(w);
    const found = await stack.reconciler.run({ chain });
    const missing = found.breaks.findIndex((b) => b.type === "missing_credit");
    expect(missing).toBeGreaterThanOrEqual(0);
    const identity = (
      await acknowledgeBreak(ctx.db.pool, {
        ref: `${found.runId}:${missing}`,
        by: "ops-ann",
        reason: "alice's deposit is being looked at",
      })
    ).identity;
    // The role's run, its grace period behind: at `before`'s block, below the deposit.
    const behind = await stack.reconciler.run({ chain, graceBlocks: found.block - before.block });
    expect(behind.block).toBe(before.block);
    expect(behind.breaks.some((b) => b.type === "missing_credit")).toBe(false);
    expect((await breakStatesOf(ctx.db.pool, [identity])).get(identity)?.state).toBe(
      "acknowledged",
    );
    // The next run at the final block finds it again, as acknowledged: no page.
    const again = await stack.reconciler.run({ chain });
    expect(again.breaks.find((b) => b.type === "missing_credit")?.state).toBe("acknowledged");
    expect(again.alerting).toBe(0);
  });

  it("counts a deposit address a higher run read at the balance it holds at the lower block", async () => {
    // The role in its own process, reading no rotation slice: deposit addresses it does not read
    // count at their last read (at 100,000 addresses, nearly all of them).
    const role = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => stack.adapter),
      inflowRotation: 0,
    });
    await mine(w, 3);
    await sync(w);
    const base = await role.run({ chain });
    // Bob's deposit, credited, above the role's block.
    const r = await sendAndMine(rpc, { from: customer, to: D_BOB, value: 2n * E18 });
    expect(Number(r.blockNumber)).toBe(base.block + 3);
    await mine(w, 3);
    await sync(w);
    await stack.crediting.sweep({ chainId: CHAIN_ID });
    const unexplained = (s: { breaks: { type: string }[] }) =>
      s.breaks.filter(
        (b) => b.type === "unexplained_balance_difference" || b.type === "solvency_shortfall",
      );
    // The CLI's run, at the final block, reads bob's address (active) after the deposit.
    const cli = await stack.reconciler.run({ chain });
    expect(unexplained(cli)).toEqual([]);
    // The role's run, its grace period behind, below the deposit: the ledger without its credit.
    const behind = await role.run({ chain, block: Number(r.blockNumber) - 1 });
    expect(unexplained(behind)).toEqual([]);
    const deposits = behind.checks.find((c) => c.scope === "deposits");
    expect(deposits?.chain).toBe(E18); // alice's deposit only
    expect(behind.breaks).toEqual([]);
    // Bob's address was read at the lower block and counted there; the next runs count it again.
    expect((await role.run({ chain })).breaks).toEqual([]);
    expect((await stack.reconciler.run({ chain })).breaks).toEqual([]);
  });

  it("that finds an acknowledged break at another difference leaves it acknowledged", async () => {
    // The hot wallet's balance moves with no fact: 1 ETH more, then 3 ETH more, block by block.
    const balance = async () => BigInt(await rpc<Hex>("eth_getBalance", [hot, "latest"]));
    const opening = await balance();
    await rpc("anvil_setBalance", [hot, `0x${(opening + E18).toString(16)}`]);
    await mine(w, 1);
    const oneMore = Number(await rpc<Hex>("eth_blockNumber"));
    await mine(w, 1); // anvil sets a balance in the newest block's state
    await rpc("anvil_setBalance", [hot, `0x${(opening + 3n * E18).toString(16)}`]);
    await mine(w, 4);
    await sync(w);
    const hotBreak = (s: RunSummary) =>
      s.breaks.find((b) => b.type === "unexplained_balance_difference" && b.key === `hot:${hot}`);
    const cli = await stack.reconciler.run({ chain });
    expect(cli.block).toBeGreaterThan(oneMore);
    const seen = hotBreak(cli);
    expect(seen?.difference).toBe(-3n * E18);
    const acked = await acknowledgeBreak(ctx.db.pool, {
      ref: `${cli.runId}:${cli.breaks.indexOf(seen!)}`,
      by: "ops-ann",
      reason: "the float top-up is being booked",
    });
    // The role's run, its grace period behind the CLI's: the balance as it stood a block earlier.
    const behind = await stack.reconciler.run({ chain, block: oneMore });
    const old = hotBreak(behind);
    expect(old?.difference).toBe(-E18);
    // What the operator acknowledged was found at a later block: the earlier one's difference is
    // no news. It does not page, and the acknowledgement stands.
    expect(old?.state).toBe("acknowledged");
    expect(behind.alerting).toBe(
      behind.breaks.filter((b) => b.state === "open" && b !== old).length,
    );
    const state = (await breakStatesOf(ctx.db.pool, [acked.identity])).get(acked.identity);
    expect([state?.state, state?.lastDifference, state?.lastRunId]).toEqual([
      "acknowledged",
      (-3n * E18).toString(),
      cli.runId,
    ]);
    // The next run at the final block finds what was acknowledged: still no page.
    const again = await stack.reconciler.run({ chain });
    expect(hotBreak(again)?.state).toBe("acknowledged");
  });
});
