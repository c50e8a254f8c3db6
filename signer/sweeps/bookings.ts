/**
 * The ledger transfers of a settled sweep or cold move (DESIGN.md money flows), with deterministic
 * ids so settling twice (a crash between the ledger write and the status update, two workers)
 * can only ever book once:
 *   sweep     `sweep:<sweepId>:<address>:<asset>`  debit custody:hot:<hot>, credit custody:deposits
 *   gas       `fee:<chainId>:<txHash>`             debit fees:gas, credit custody:hot:<hot> (native)
 *   cold move `cold_move:<moveId>` (hold) → `cold_move:<moveId>:post` | `cold_move:<moveId>:void`
 * Each carries the chain reference of the fact it explains, for reconciliation.
 */
import { zeroAddress } from "viem";
import {
  assetIdOf,
  type ChainRef,
  type NewTransfer,
  type TransferResult,
  transferId,
} from "../../ledger/index.js";
import { BookingFailedError } from "./errors.js";

export function hotAccount(hotWallet: string): string {
  return `custody:hot:${hotWallet.toLowerCase()}`;
}

export function coldAccount(coldAddress: string): string {
  return `custody:cold:${coldAddress.toLowerCase()}`;
}

export function sweepTransfer(args: {
  chainId: number;
  sweepId: string;
  hotWallet: string;
  address: string;
  asset: string;
  amount: bigint;
  chainRef: ChainRef | undefined;
}): NewTransfer {
  return {
    id: transferId(
      `sweep:${args.sweepId}:${args.address.toLowerCase()}:${args.asset.toLowerCase()}`,
    ),
    assetId: assetIdOf(args.chainId, args.asset),
    debit: hotAccount(args.hotWallet),
    credit: "custody:deposits",
    amount: args.amount,
    kind: "sweep",
    ...(args.chainRef ? { chainRef: args.chainRef } : {}),
    memo: `sweep ${args.sweepId} from ${args.address.toLowerCase()}`,
  };
}

/** Gas paid by a custody transaction, whether it succeeded or reverted (the `fee` chain fact). */
export function gasTransfer(args: {
  chainId: number;
  txHash: string;
  hotWallet: string;
  fee: bigint;
  memo: string;
}): NewTransfer {
  const txHash = args.txHash.toLowerCase();
  return {
    id: transferId(`fee:${args.chainId}:${txHash}`),
    assetId: assetIdOf(args.chainId, zeroAddress),
    debit: "fees:gas",
    credit: hotAccount(args.hotWallet),
    amount: args.fee,
    kind: "fee",
    chainRef: { chainId: args.chainId, txHash, position: "fee" },
    memo: args.memo,
  };
}

/** Every transfer was created now or earlier with the same fields; otherwise roll back. */
export function assertBooked(results: readonly TransferResult[], what: string): void {
  const failed = results.filter((r) => r.status === "failed");
  if (failed.length > 0) throw new BookingFailedError(what, failed);
}
