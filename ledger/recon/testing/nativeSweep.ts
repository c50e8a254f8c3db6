/**
 * Native sweeps on a `WatchedChain` without traces, for the tests of what runs make of a deposit
 * address swept by an internal call (no fact shows the value leaving it): the role's reconciler,
 * the deposit and its crediting, the sweep's transaction, and its booking as the signer books a
 * confirmed sweep. Test-only.
 */

import type { Hex } from "viem";
import { adapterPerChain } from "../../../chains/index.js";
import { type Receipt, sendAndMine } from "../../../indexers/testing/chain.js";
import { gasTransfer, sweepTransfer } from "../../../signer/sweeps/bookings.js";
import { sweepReader } from "../../../signer/sweeps/sweepReads.js";
import { createReconciler, type Reconciler } from "../reconcile.js";
import { mine, sync, type WatchedChain } from "./watchedChain.js";

const NATIVE = "0x0000000000000000000000000000000000000000";

/**
 * The reconciler role in its own process, reading no rotation slice (at 100,000 deposit addresses
 * a slice of 200 reaches an address about once in 500 runs): only what a run is told of reads a
 * deposit address again.
 */
export function noRotationRole({ ctx, stack }: WatchedChain): Reconciler {
  return createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool: ctx.db.pool,
    chains: adapterPerChain(ctx.common, () => stack.adapter),
    inflowRotation: 0,
  });
}

/** The customer pays `amount` to `address`; buried under the confirmation rule, indexed, credited. */
export async function depositAndCredit(w: WatchedChain, address: Hex, amount: bigint) {
  await sendAndMine(w.rpc, { from: w.customer, to: address, value: amount });
  await mine(w, 3);
  await sync(w);
  await w.stack.crediting.sweep({ chainId: w.chain.chainId });
}

/**
 * The sweep as a chain without traces shows it: the hot wallet's transaction to `to` (another
 * contract, the factory) and `amount` moved from `address` to the hot wallet inside it. anvil sets
 * a balance in the head block's state, so a block is mined first: the sweep block's parent shows
 * the balances of before.
 */
export async function sweepByBalances(
  w: WatchedChain,
  { address, amount, to }: { address: Hex; amount: bigint; to: Hex },
): Promise<Receipt> {
  const { rpc, hot } = w;
  await mine(w, 1);
  const hotBefore = BigInt(await rpc<Hex>("eth_getBalance", [hot, "latest"]));
  await rpc("anvil_setBalance", [address, "0x0"]);
  await rpc("anvil_setBalance", [hot, `0x${(hotBefore + amount).toString(16)}`]);
  return sendAndMine(rpc, { from: hot, to, value: 0n });
}

/**
 * Books the native sweep `sweepId` of `amount` from `address`, mined in `receipt`, as the signer
 * books a confirmed sweep: the sweep (without a chain reference for the native move) and its fee,
 * then `custody.sweeps` as `booked` with `settledAt` (default now()) and its one item (`salt`).
 */
export async function bookNativeSweep(
  { ctx, stack, hot, chain }: WatchedChain,
  args: {
    sweepId: string;
    address: Hex;
    amount: bigint;
    receipt: Receipt;
    salt: Hex;
    settledAt?: Date;
  },
): Promise<{ txHash: string; fee: bigint }> {
  const { sweepId, address, amount, receipt: r } = args;
  const chainId = chain.chainId;
  const txHash = r.transactionHash.toLowerCase();
  const fee = BigInt(r.gasUsed) * BigInt(r.effectiveGasPrice);
  await stack.ledger.transfer(
    sweepTransfer({
      chainId,
      sweepId,
      hotWallet: hot,
      address,
      asset: NATIVE,
      amount,
      chainRef: undefined,
    }),
  );
  await stack.ledger.transfer(
    gasTransfer({ chainId, txHash, hotWallet: hot, fee, memo: `sweep ${sweepId}` }),
  );
  await ctx.db.pool.query(
    `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens, status, tx_hash, settled_at)
     VALUES ($1, $2, $3, $3, '{}', 'booked', $4, coalesce($5::timestamptz, now()))`,
    [sweepId, chainId, hot, txHash, args.settledAt ?? null],
  );
  await ctx.db.pool.query(
    `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned, swept)
     VALUES ($1, $2, $3, $4, $5, $6, $6)`,
    [sweepId, chainId, address, args.salt, NATIVE, amount.toString()],
  );
  return { txHash, fee };
}
