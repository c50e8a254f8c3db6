/**
 * A native sweep on a chain without traces (no fact shows the value leaving the deposit address)
 * whose settlement is stamped (`custody.sweeps.settled_at`, its transaction's start) before a run's
 * snapshot and committed after it: that run did not see it, and the next run must still read the
 * swept address again, as it does for facts orphaned or reorgs recorded in such a transaction.
 * Otherwise the address counts at its balance before the sweep (recon.onchain_balances) while the
 * ledger has it swept, an unexplained difference in the deposits until the rotation reaches it.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterPerChain, type ChainConfig } from "../../chains/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { gasTransfer, sweepTransfer } from "../../signer/sweeps/bookings.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createReconciler, type RunSummary } from "./reconcile.js";
import { type ReconciledChain, startReconciledChain } from "./testing/reconciledChain.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const E18 = 10n ** 18n;
const D = freshAddress(232);
const ELSEWHERE = freshAddress(233);

let ctx: TestContext;
let rpc: Rpc;
let chain: ChainConfig;
let stack: ReconciledChain;
let customer: Hex;
let hot: Hex;

const mine = async (n: number) => {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
};
const sync = () => syncToHead(stack.ingestor, ctx.db.pool, rpc, CHAIN_ID);
const kinds = (s: RunSummary) => s.breaks.map((b) => `${b.type} ${b.key}`);

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        config: { traces: false, confirmations: { kind: "blocks", blocks: 2 } },
      },
    ],
  });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
  customer = accounts[0]!;
  hot = accounts[1]!;
  chain = { ...ctx.config.chains[0]!, tokens: [] };
  await watch(ctx.db.pool, CHAIN_ID, [
    { address: hot, kind: "hot", owner: "hot-1" },
    { address: D, owner: "alice" },
  ]);
  stack = await startReconciledChain(ctx, chain);
  await stack.bookHotOpening(hot);
});

afterAll(async () => {
  await stack?.stop();
  await ctx?.cleanup();
});

describe("a native sweep settled in a transaction that spanned a run's snapshot", () => {
  it("has its address read again by the next run: no break", async () => {
    // The role reads no rotation slice (at 100,000 deposit addresses a slice of 200 reaches an
    // address about once in 500 runs).
    const role = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () => stack.adapter),
      inflowRotation: 0,
    });
    await sendAndMine(rpc, { from: customer, to: D, value: E18 });
    await mine(3);
    await sync();
    await stack.crediting.sweep({ chainId: CHAIN_ID });
    expect(kinds(await role.run({ chain }))).toEqual([]);

    // The sweep, as the chain shows it without traces: the hot wallet's transaction (to another
    // contract, the factory) and the deposit's value moved from D to the hot wallet inside it.
    // (anvil sets a balance in the head block's state: the sweep block's parent shows it too.)
    await mine(1);
    const hotBefore = BigInt(await rpc<Hex>("eth_getBalance", [hot, "latest"]));
    await rpc("anvil_setBalance", [D, "0x0"]);
    await rpc("anvil_setBalance", [hot, `0x${(hotBefore + E18).toString(16)}`]);
    const r = await sendAndMine(rpc, { from: hot, to: ELSEWHERE, value: 0n });
    expect(r.status).toBe("0x1");
    const B = Number(r.blockNumber);
    await mine(3);
    await sync();
    // A run before the settlement commits (below the sweep, as the role's grace period puts it).
    const before = await role.run({ chain, block: B - 2 });
    expect(kinds(before)).toEqual([]);
    const { rows } = await ctx.db.pool.query<{ snapshot_at: Date }>(
      "SELECT snapshot_at FROM recon.runs WHERE id = $1",
      [before.runId],
    );
    // Settled as the signer settles it, in a transaction that started a second before that run's
    // snapshot (its settled_at) and committed after it.
    const txHash = r.transactionHash.toLowerCase();
    const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
    await stack.ledger.transfer(
      sweepTransfer({
        chainId: CHAIN_ID,
        sweepId: "s-late",
        hotWallet: hot,
        address: D,
        asset: ZERO,
        amount: E18,
        chainRef: undefined,
      }),
    );
    await stack.ledger.transfer(
      gasTransfer({ chainId: CHAIN_ID, txHash, hotWallet: hot, fee, memo: "sweep s-late" }),
    );
    await ctx.db.pool.query(
      `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens, status, tx_hash, settled_at)
       VALUES ('s-late', $1, $2, $2, '{}', 'booked', $3, $4::timestamptz - interval '1 second')`,
      [CHAIN_ID, hot, txHash, rows[0]!.snapshot_at],
    );
    await ctx.db.pool.query(
      `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
       VALUES ('s-late', $1, $2, $3, $4, $5, $5)`,
      [CHAIN_ID, D, `0x${"2".padStart(64, "0")}`, ZERO, E18.toString()],
    );

    const next = await role.run({ chain });
    expect(next.block).toBeGreaterThanOrEqual(B);
    expect(next.mode).toBe("incremental");
    expect(kinds(next)).toEqual([]);
    expect(kinds(await role.run({ chain, full: true }))).toEqual([]);
  });
});
