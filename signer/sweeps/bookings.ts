/**
 * The ledger transfers of a settled sweep or cold move (DESIGN.md money flows), with deterministic
 * ids so settling twice (a crash between the ledger write and the status update, two workers)
 * can only ever book once:
 *   sweep     `sweep:<sweepId>:<address>:<asset>`  debit custody:hot:<hot>, credit custody:deposits
 *   gas       `fee:<chainId>:<txHash>`             debit fees:gas, credit custody:hot:<hot> (native)
 *   (a sweep re-booked after a reorg appends `:g<n>`, n the signer's reorg count; the reversal of a
 *   booking appends `:unbook` to the id it reverses)
 *   cold move `cold_move:<moveId>` (hold) → `cold_move:<moveId>:post` | `cold_move:<moveId>:void`,
 *             gas as above; a move reorged out after its post has the post and gas reversed
 *             (`:unbook`) and is held again: hold `cold_move:<moveId>:hold:g<n>` → `…:post:g<n>` |
 *             `…:void:g<n>`, gas `fee:<chainId>:<txHash>:g<n>`, n the move's hold generation;
 *             a token that takes a fee on transfer: the post is what left less the token's fees,
 *             and each fee `cold_move:<moveId>:token_fee:<i>[:g<n>]` (debit fees:gas, credit
 *             custody:hot:<hot>, in the token), reversed with the post (`:unbook`)
 * Each carries the chain reference of the fact it explains, for reconciliation.
 */
import {
  assetIdOf,
  type ChainRef,
  generationSuffix,
  type NewTransfer,
  type TransferResult,
  transferId,
} from "../../ledger/index.js";
import { BookingFailedError } from "./errors.js";

// The gas of the transactions sweeps and cold moves send is named and booked as every custody
// transaction's is (ledger/gasBookings.ts).
export { gasTransfer, gasTransferName, gasUnbooking } from "../../ledger/index.js";

export function hotAccount(hotWallet: string): string {
  return `custody:hot:${hotWallet.toLowerCase()}`;
}

export function coldAccount(coldAddress: string): string {
  return `custody:cold:${coldAddress.toLowerCase()}`;
}

export function sweepTransferName(args: {
  sweepId: string;
  address: string;
  asset: string;
  generation?: number | undefined;
}): string {
  return `sweep:${args.sweepId}:${args.address.toLowerCase()}:${args.asset.toLowerCase()}${generationSuffix(args.generation)}`;
}

export function sweepTransfer(args: {
  chainId: number;
  sweepId: string;
  hotWallet: string;
  address: string;
  asset: string;
  amount: bigint;
  chainRef: ChainRef | undefined;
  /** The signer's reorg count when booked (0: the original ids). */
  generation?: number | undefined;
}): NewTransfer {
  return {
    id: transferId(sweepTransferName(args)),
    assetId: assetIdOf(args.chainId, args.asset),
    debit: hotAccount(args.hotWallet),
    credit: "custody:deposits",
    amount: args.amount,
    kind: "sweep",
    ...(args.chainRef ? { chainRef: args.chainRef } : {}),
    memo: `sweep ${args.sweepId} from ${args.address.toLowerCase()}`,
  };
}

/** The reversal of a sweep's booking of one (address, asset), `:unbook` after the booked name. */
export function sweepUnbooking(args: {
  chainId: number;
  sweepId: string;
  hotWallet: string;
  address: string;
  asset: string;
  amount: bigint;
  /** The generation the sweep was booked in. */
  generation: number;
}): NewTransfer {
  const name = sweepTransferName(args);
  return {
    id: transferId(`${name}:unbook`),
    reverses: transferId(name),
    assetId: assetIdOf(args.chainId, args.asset),
    debit: "custody:deposits",
    credit: hotAccount(args.hotWallet),
    amount: args.amount,
    kind: "compensation",
    memo: `sweep ${args.sweepId} reorged out after booking: reversed until it mines again`,
  };
}

/** The ids of a cold move's hold of one generation, its settlement and the reversal of its post. */
export function coldMoveTransferIds(moveId: string, generation: number) {
  const g = generationSuffix(generation);
  return {
    // Generation 0 keeps the names booked before holds had generations.
    hold: transferId(generation ? `cold_move:${moveId}:hold${g}` : `cold_move:${moveId}`),
    post: transferId(`cold_move:${moveId}:post${g}`),
    void: transferId(`cold_move:${moveId}:void${g}`),
    unbook: transferId(`cold_move:${moveId}:post${g}:unbook`),
  };
}

/**
 * The ids of the `index`-th fee (0-based, one per fee Transfer) a fee-on-transfer token took on a
 * cold move, booked with the post of `generation`, and of its reversal.
 */
export function coldMoveTokenFeeIds(moveId: string, generation: number, index: number) {
  const name = `cold_move:${moveId}:token_fee:${index}${generationSuffix(generation)}`;
  return { charge: transferId(name), unbook: transferId(`${name}:unbook`) };
}

type ColdMoveFields = {
  chainId: number;
  moveId: string;
  hotWallet: string;
  coldAddress: string;
  asset: string;
  amount: bigint;
  /** The move's hold generation (0: the hold placed at request). */
  generation: number;
};

/** A cold move's hold: debit custody:cold, credit custody:hot, pending until the chain decides. */
export function coldMoveHold(args: ColdMoveFields): NewTransfer {
  return {
    type: "pending",
    id: coldMoveTransferIds(args.moveId, args.generation).hold,
    assetId: assetIdOf(args.chainId, args.asset),
    debit: coldAccount(args.coldAddress),
    credit: hotAccount(args.hotWallet),
    amount: args.amount,
    kind: "cold_move",
    memo: args.generation
      ? `cold move ${args.moveId} (held again after a reorg, generation ${args.generation})`
      : `cold move ${args.moveId}`,
  };
}

type ColdMoveTokenFee = Omit<ColdMoveFields, "coldAddress" | "amount"> & {
  /** Which fee Transfer of the move's transaction (0-based, in log order). */
  index: number;
  /** What the token took. */
  fee: bigint;
};

/**
 * A fee a token took on a cold move's transfer, out of the hot wallet (to its collector, or a
 * burn): the custody's cost of the move, an expense as its gas is (fees:gas, in the token),
 * against the fee's own Transfer.
 */
export function coldMoveTokenFee(args: ColdMoveTokenFee & { chainRef: ChainRef }): NewTransfer {
  return {
    id: coldMoveTokenFeeIds(args.moveId, args.generation, args.index).charge,
    assetId: assetIdOf(args.chainId, args.asset),
    debit: "fees:gas",
    credit: hotAccount(args.hotWallet),
    amount: args.fee,
    kind: "cold_move",
    chainRef: args.chainRef,
    memo: `fee the token took on cold move ${args.moveId}`,
  };
}

/** The reversal of a token fee booked with a cold move's post of `generation`. */
export function coldMoveTokenFeeUnbooking(args: ColdMoveTokenFee): NewTransfer {
  const ids = coldMoveTokenFeeIds(args.moveId, args.generation, args.index);
  return {
    id: ids.unbook,
    reverses: ids.charge,
    assetId: assetIdOf(args.chainId, args.asset),
    debit: hotAccount(args.hotWallet),
    credit: "fees:gas",
    amount: args.fee,
    kind: "compensation",
    memo: `cold move ${args.moveId} reorged out after booking: the token's fee reversed`,
  };
}

/**
 * The reversal of a cold move's posted hold of `generation`, `:unbook` after the post's name;
 * `amount` is what was posted (less than the move for a token that took a fee on it).
 */
export function coldMoveUnbooking(args: ColdMoveFields): NewTransfer {
  const ids = coldMoveTransferIds(args.moveId, args.generation);
  return {
    id: ids.unbook,
    reverses: ids.post,
    assetId: assetIdOf(args.chainId, args.asset),
    debit: hotAccount(args.hotWallet),
    credit: coldAccount(args.coldAddress),
    amount: args.amount,
    kind: "compensation",
    memo: `cold move ${args.moveId} reorged out after booking: reversed until it mines again`,
  };
}

/** Every transfer was created now or earlier with the same fields; otherwise roll back. */
export function assertBooked(results: readonly TransferResult[], what: string): void {
  const failed = results.filter((r) => r.status === "failed");
  if (failed.length > 0) throw new BookingFailedError(what, failed);
}
