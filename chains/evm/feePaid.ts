/**
 * What a mined transaction cost its sender, the one rule the signer (gas booked for a withdrawal,
 * sweep or cold move), the indexer (the sender's `fee` fact) and deploy-gas bookings share, so
 * reconciliation compares like with like: gas used × effective gas price, plus the L1 data fee
 * OP-stack receipts (Optimism, Base) carry as `l1Fee` and charge outside gas. On L1 chains and
 * Arbitrum (whose L1 cost is charged as gas) receipts carry no `l1Fee`: it adds nothing. Since
 * Isthmus OP-stack chains also charge an operator fee outside gas, which receipts do not carry
 * (only its parameters): callers read it from the chain (operatorFee.ts `operatorFeePaid`) and pass
 * it as `operatorFee`.
 */
import { hexToBigInt, isHex, size } from "viem";

/** `l1Fee` is hex as the node sends it (raw receipts, viem without the OP formatters) or a bigint (viem's OP formatter; null there when absent). */
export function feePaid(receipt: {
  gasUsed: bigint;
  effectiveGasPrice: bigint;
  l1Fee?: unknown;
  /** The operator fee the chain charged (operatorFee.ts `operatorFeePaid`); 0 when not given. */
  operatorFee?: bigint;
}): bigint {
  const l1 = receipt.l1Fee;
  let l1Fee = 0n;
  if (typeof l1 === "bigint") l1Fee = l1;
  else if (typeof l1 === "string" && isHex(l1) && size(l1) > 0) l1Fee = hexToBigInt(l1);
  return receipt.gasUsed * receipt.effectiveGasPrice + l1Fee + (receipt.operatorFee ?? 0n);
}

/** An OP-stack deposit (L1 to L2) transaction: its gas was bought on L1 and its receipt has no `l1Fee`. */
const OP_DEPOSIT_TYPES: readonly unknown[] = ["0x7e", "deposit"];

/**
 * The field feePaid needs that this receipt lacks on `chain` (null: what it cost is known). A node
 * or proxy that drops fields it does not know sends such receipts, and the fee read from one would
 * be 0 gas or gas without the L1 data fee: missing data, never a fee. Callers take the receipt as
 * one this node does not have yet. On an OP-stack chain every receipt but a deposit's carries
 * `l1Fee`; on the others none is needed.
 */
export function feeFieldMissing(
  receipt: { effectiveGasPrice?: unknown; l1Fee?: unknown; type?: unknown },
  chain: { l1DataFee?: "none" | "op-stack" | undefined },
): "effectiveGasPrice" | "l1Fee" | null {
  if (receipt.effectiveGasPrice === undefined || receipt.effectiveGasPrice === null)
    return "effectiveGasPrice";
  if (
    chain.l1DataFee === "op-stack" &&
    (receipt.l1Fee === undefined || receipt.l1Fee === null) &&
    !OP_DEPOSIT_TYPES.includes(receipt.type)
  )
    return "l1Fee";
  return null;
}

/**
 * The field a mined receipt lacks that reading it needs: its `status` (without it a success would
 * read as a revert: a paid withdrawal as failed, a deposit as none), else a fee field
 * (feeFieldMissing). Null: the receipt is whole. Callers take such a receipt as one this node does
 * not have yet, and ask another endpoint.
 */
export function receiptFieldMissing(
  receipt: { status?: unknown; effectiveGasPrice?: unknown; l1Fee?: unknown; type?: unknown },
  chain: { l1DataFee?: "none" | "op-stack" | undefined },
): "status" | "effectiveGasPrice" | "l1Fee" | null {
  if (typeof receipt.status !== "string") return "status";
  return feeFieldMissing(receipt, chain);
}
