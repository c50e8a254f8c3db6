/**
 * An unattributed inflow the CLI's run found stays a break until a run reads that address again.
 * The scheduled role runs its grace period behind the newest final block, so after an operator's
 * `custody-node reconcile` (or the nightly `--full`) at block B its next run is often below B, and
 * the run after that continues from that one, not from the CLI's. An incremental run reads the
 * addresses with activity, the previous run's inflow breaks and a rotating slice: an inflow has no
 * fact (that is what makes it unattributed), so its address is none of these, and a run that never
 * read it must not resolve its break (principle 8: not reading is no evidence). Anvil without
 * traces, the real indexer, two reconcilers (the role's and the CLI's) on real Postgres.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain } from "../../chains/index.js";
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
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createReconciler, type Reconciler } from "./reconcile.js";
import { expectFoundAgainBehindCli } from "./testing/behindCliRun.js";
import { type ReconciledChain, startReconciledChain } from "./testing/reconciledChain.js";

const CHAIN_ID = 31337;
const E17 = 10n ** 17n;
// In address order; the inflow goes to the last, so the role's rotating slice (one address a
// run, from the lowest) does not reach it in this test.
const DEPOSITS = [701, 702, 703, 704].map((n) => freshAddress(n));
const TARGET = DEPOSITS.at(-1)!;

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let sender: Hex;
let forwarder: Hex;
let stack: ReconciledChain;
let ingestor: Ingestor;
let role: Reconciler;
let operator: Reconciler;

const settle = async () => {
  for (let i = 0; i < 3; i++) await rpc("evm_mine");
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
  await stack.crediting.sweep({ chainId: CHAIN_ID });
};

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
  await watch(
    ctx.db.pool,
    CHAIN_ID,
    DEPOSITS.map((address, i) => ({ address, owner: `c${i}` })),
  );
  stack = await startReconciledChain(ctx, chain);
  ingestor = stack.ingestor;
  const reconciler = () =>
    createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => stack.adapter),
      inflowRotation: 1,
    });
  role = reconciler();
  operator = reconciler();
});

afterAll(async () => {
  await stack?.stop();
  await ctx?.cleanup();
});

describe("an unattributed inflow found by the CLI's run", () => {
  it("is not resolved by the role's later run that never read its address", async () => {
    await sendAndMine(rpc, { from: sender, to: DEPOSITS[0]!, value: 3n * E17 });
    await settle();
    const first = await role.run({ chain });
    expect(first.breaks.filter((b) => b.type === "unattributed_inflow")).toEqual([]);
    await settle();
    // Where the role's next run will stand: its grace period behind the final block the CLI uses.
    const behind = await role.finalBlock(chain);

    // A contract pays the last deposit address in an internal call: no fact.
    const paid = await sendAndMine(rpc, {
      from: sender,
      to: forwarder,
      value: 7n * E17,
      data: call("Forwarder", "forward", [TARGET]),
    });
    expect(paid.status).toBe("0x1");
    await settle();

    const again = await expectFoundAgainBehindCli({
      pool: ctx.db.pool,
      chain,
      role,
      operator,
      behind,
      settle,
      key: `inflow:${TARGET}`,
      type: "unattributed_inflow",
    });
    expect(again?.difference).toBe(-7n * E17);
  }, 120_000);
});
