/**
 * A native sweep on a chain without traces: no fact shows the value leaving the deposit address
 * (an internal call), and its booking carries no chain reference. The signer settles it once its
 * block meets the confirmation rule; the reconciler role's run stays its grace period behind the
 * final block, so its next run may be at a block below the sweep's. The run there, and the runs
 * after, must count the swept address at what it holds at their block, and the sweep in the ledger
 * only where it had happened: no break on either side.
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
const D = freshAddress(231);
/** Runtime code: send this address's whole balance to the caller (a forwarder's flush). */
const FLUSH = "0x600060006000600047335af100";

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

describe("a native sweep without traces, settled above the role's block", () => {
  it("is no break at a block below it, nor in the runs after", async () => {
    // The role in its own process, reading no rotation slice (at 100,000 deposit addresses a
    // slice of 200 reaches an address about once in 500 runs).
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
    const base = await role.run({ chain });
    expect(kinds(base)).toEqual([]);

    // The sweep: the hot wallet calls the deposit address, which sends its balance back inside.
    await rpc("anvil_setCode", [D, FLUSH]);
    const r = await sendAndMine(rpc, { from: hot, to: D, value: 0n, gas: 100_000n });
    expect(r.status).toBe("0x1");
    const B = Number(r.blockNumber);
    expect(BigInt(await rpc<Hex>("eth_getBalance", [D, "latest"]))).toBe(0n);
    await mine(3);
    await sync();
    // Settled as the signer settles it: booked, without a chain reference for the native move.
    const txHash = r.transactionHash.toLowerCase();
    const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
    await stack.ledger.transfer(
      sweepTransfer({
        chainId: CHAIN_ID,
        sweepId: "s1",
        hotWallet: hot,
        address: D,
        asset: ZERO,
        amount: E18,
        chainRef: undefined,
      }),
    );
    await stack.ledger.transfer(
      gasTransfer({ chainId: CHAIN_ID, txHash, hotWallet: hot, fee, memo: "sweep s1" }),
    );
    await ctx.db.pool.query(
      `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens, status, tx_hash, settled_at)
       VALUES ('s1', $1, $2, $2, '{}', 'booked', $3, now())`,
      [CHAIN_ID, hot, txHash],
    );
    await ctx.db.pool.query(
      `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
       VALUES ('s1', $1, $2, $3, $4, $5, $5)`,
      [CHAIN_ID, D, `0x${"1".padStart(64, "0")}`, ZERO, E18.toString()],
    );

    // The role's run, its grace period behind: below the sweep's block.
    const behind = await role.run({ chain, block: B - 1 });
    expect(kinds(behind)).toEqual([]);
    // And the next ones, at and above it.
    const at = await role.run({ chain });
    expect(at.block).toBeGreaterThanOrEqual(B);
    expect(kinds(at)).toEqual([]);
    expect(kinds(await role.run({ chain, full: true }))).toEqual([]);
  });
});
