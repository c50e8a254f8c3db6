/**
 * A native sweep on a chain without traces (no fact shows the value leaving the deposit address)
 * that a reorg takes out after a run read the swept address: the address holds its deposit again
 * on the new branch, and once the booking is reversed (signer/sweeps/followSweeps.ts) the ledger
 * says so too. No fact of the undone blocks names the address, and the reversal leaves no settled
 * sweep behind, so only the reorg says its balance must be read again: a run counting it at the
 * balance read on the old branch (recon.onchain_balances) showed a difference in the deposits
 * until the slow rotation reached the address.
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
import { sweepTransfer, sweepUnbooking } from "../../signer/sweeps/bookings.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { gasTransfer, gasUnbooking } from "../gasBookings.js";
import { createReconciler, type RunSummary } from "./reconcile.js";
import { type ReconciledChain, startReconciledChain } from "./testing/reconciledChain.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const E18 = 10n ** 18n;
const D = freshAddress(242);
const ELSEWHERE = freshAddress(243);

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
        config: { traces: false, confirmations: { kind: "blocks", blocks: 2 }, reorgWindow: 16 },
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

describe("a native sweep reorged out after a run read the swept address", () => {
  it("has its address read again by the next run: no break", async () => {
    // old code: expected [ 'balance custody:deposits…' ] to deeply equal [] (see the run below).
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
    const beforeSweep = await rpc<Hex>("evm_snapshot");
    await mine(1);
    const hotBefore = BigInt(await rpc<Hex>("eth_getBalance", [hot, "latest"]));
    await rpc("anvil_setBalance", [D, "0x0"]);
    await rpc("anvil_setBalance", [hot, `0x${(hotBefore + E18).toString(16)}`]);
    const r = await sendAndMine(rpc, { from: hot, to: ELSEWHERE, value: 0n });
    expect(r.status).toBe("0x1");
    await mine(3);
    await sync();
    // Booked as the signer books a confirmed sweep.
    const txHash = r.transactionHash.toLowerCase();
    const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
    const sweep = { chainId: CHAIN_ID, sweepId: "s-reorged", hotWallet: hot };
    await stack.ledger.transfer(
      sweepTransfer({ ...sweep, address: D, asset: ZERO, amount: E18, chainRef: undefined }),
    );
    await stack.ledger.transfer(
      gasTransfer({ chainId: CHAIN_ID, txHash, hotWallet: hot, fee, memo: "sweep s-reorged" }),
    );
    await ctx.db.pool.query(
      `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens, status, tx_hash, settled_at)
       VALUES ('s-reorged', $1, $2, $2, '{}', 'booked', $3, now())`,
      [CHAIN_ID, hot, txHash],
    );
    await ctx.db.pool.query(
      `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
       VALUES ('s-reorged', $1, $2, $3, $4, $5, $5)`,
      [CHAIN_ID, D, `0x${"3".padStart(64, "0")}`, ZERO, E18.toString()],
    );
    // The run reads D on this branch: nothing left.
    const swept = await role.run({ chain });
    expect(kinds(swept)).toEqual([]);
    const read = await ctx.db.pool.query<{ balance: bigint }>(
      "SELECT balance FROM recon.onchain_balances WHERE chain_id = $1 AND address = $2",
      [CHAIN_ID, D],
    );
    expect(read.rows.map((x) => BigInt(x.balance))).toEqual([0n]);

    // A longer branch without the sweep: the indexer records the reorg and orphans the old
    // blocks' facts; the signer reverses the booking (as followSweeps does) and the sweep is open.
    await rpc("evm_revert", [beforeSweep]);
    await mine(8);
    await sync();
    expect(BigInt(await rpc<Hex>("eth_getBalance", [D, "latest"]))).toBe(E18);
    await stack.ledger.transfer(
      sweepUnbooking({ ...sweep, address: D, asset: ZERO, amount: E18, generation: 0 }),
    );
    await stack.ledger.transfer(
      gasUnbooking({
        chainId: CHAIN_ID,
        of: "sweep s-reorged",
        txHash,
        hotWallet: hot,
        fee,
        generation: 0,
      }),
    );
    await ctx.db.pool.query(
      "UPDATE custody.sweep_items SET swept = NULL WHERE sweep_id = 's-reorged'",
    );
    await ctx.db.pool.query(
      `UPDATE custody.sweeps SET status = 'open', tx_hash = NULL, fee = NULL, settled_at = NULL
        WHERE id = 's-reorged'`,
    );

    const next = await role.run({ chain });
    expect(next.mode).toBe("incremental");
    expect(next.block).toBeGreaterThan(swept.block);
    expect(kinds(next)).toEqual([]);
    expect(kinds(await role.run({ chain, full: true }))).toEqual([]);
  });
});
