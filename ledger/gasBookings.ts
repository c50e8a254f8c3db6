/**
 * Gas and hold settlement in the chart of accounts (DESIGN "Money flows"), the shapes withdrawals,
 * sweeps and cold moves book alike:
 *   gas          debit fees:gas, credit custody:hot:<wallet>, native asset, chain fact `<tx>:fee`
 *   its reversal debit custody:hot:<wallet>, credit fees:gas, `reverses` the booking (no fact: the
 *                transaction left the chain)
 *   settlement   a hold posted against the fact that moved its value, or voided
 * The caller names the ids, kind of a reversal and memos: they are deterministic and already in
 * production databases, so these builders fix only the shape and never derive a name. One name is
 * shared: the gas of a custody transaction the signer sent for sweeps, cold moves and attestations,
 * `fee:<chainId>:<txHash>`, `:g<n>` when booked again after n reorgs, `:unbook` on its reversal
 * (`gasTransfer`, `gasUnbooking`).
 */
import { zeroAddress } from "viem";
import { assetIdOf, transferId } from "./transferId.js";
import type { ChainRef, NewTransfer, ResolveTransfer } from "./types.js";

type GasFields = {
  id: string;
  chainId: number;
  /** The hot wallet that paid, as the chart names it (lowercase); used verbatim. */
  hotWallet: string;
  amount: bigint;
  memo: string;
};

/** Gas a hot wallet paid for a custody transaction, whether it succeeded or reverted. */
export function gasBooking(args: GasFields & { txHash: string }): NewTransfer {
  return {
    id: args.id,
    assetId: assetIdOf(args.chainId, zeroAddress),
    debit: "fees:gas",
    credit: `custody:hot:${args.hotWallet}`,
    amount: args.amount,
    kind: "fee",
    chainRef: { chainId: args.chainId, txHash: args.txHash, position: "fee" },
    memo: args.memo,
  };
}

/**
 * Gas booked for a transaction a reorg took out, given back to the hot wallet. `kind` is the
 * caller's: a withdrawal's reversal has always been `fee`, a sweep's unbooking `compensation`.
 */
export function gasReversal(
  args: GasFields & { reverses: string; kind: "fee" | "compensation" },
): NewTransfer {
  return {
    id: args.id,
    reverses: args.reverses,
    assetId: assetIdOf(args.chainId, zeroAddress),
    debit: `custody:hot:${args.hotWallet}`,
    credit: "fees:gas",
    amount: args.amount,
    kind: args.kind,
    memo: args.memo,
  };
}

/** A hold settled from the chain: posted against `chainRef` when the value moved, else voided. */
export function holdSettlement(args: {
  pendingId: string;
  postId: string;
  voidId: string;
  /** The fact that moved the held value; undefined: it did not move (failed), void the hold. */
  chainRef: ChainRef | undefined;
}): ResolveTransfer {
  return args.chainRef
    ? { type: "post", id: args.postId, pendingId: args.pendingId, chainRef: args.chainRef }
    : { type: "void", id: args.voidId, pendingId: args.pendingId };
}

/** Booking generation suffix: generation 0 keeps the original ids, a re-booking after a reorg `:g<n>`. */
export const generationSuffix = (generation: number | undefined) =>
  generation ? `:g${generation}` : "";

/** The gas of a custody transaction: `fee:<chainId>:<txHash>`, `:g<n>` when booked again. */
export function gasTransferName(args: {
  chainId: number;
  txHash: string;
  generation?: number | undefined;
}): string {
  return `fee:${args.chainId}:${args.txHash.toLowerCase()}${generationSuffix(args.generation)}`;
}

/** Gas paid by a custody transaction, whether it succeeded or reverted (the `fee` chain fact). */
export function gasTransfer(args: {
  chainId: number;
  txHash: string;
  hotWallet: string;
  fee: bigint;
  memo: string;
  generation?: number | undefined;
}): NewTransfer {
  return gasBooking({
    id: transferId(gasTransferName(args)),
    chainId: args.chainId,
    hotWallet: args.hotWallet.toLowerCase(),
    txHash: args.txHash.toLowerCase(),
    amount: args.fee,
    memo: args.memo,
  });
}

/** The reversal of a gas booking, `:unbook` after the booked name (kind compensation). */
export function gasUnbooking(args: {
  chainId: number;
  /** Whose gas, as memos name it: `sweep <id>`, `cold move <id>`, `attestation <id> (<request>)`. */
  of: string;
  txHash: string;
  hotWallet: string;
  fee: bigint;
  generation: number;
}): NewTransfer {
  const name = gasTransferName(args);
  return gasReversal({
    id: transferId(`${name}:unbook`),
    reverses: transferId(name),
    chainId: args.chainId,
    hotWallet: args.hotWallet.toLowerCase(),
    amount: args.fee,
    kind: "compensation",
    memo: `gas of ${args.of} reorged out after booking`,
  });
}
