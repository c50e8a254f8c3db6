/**
 * What a mined transaction cost its sender, the one rule the signer (gas booked for a withdrawal,
 * sweep or cold move), the indexer (the sender's `fee` fact) and deploy-gas bookings share, so
 * reconciliation compares like with like: gas used × effective gas price, plus the L1 data fee
 * OP-stack receipts (Optimism, Base) carry as `l1Fee` and charge outside gas. On L1 chains and
 * Arbitrum (whose L1 cost is charged as gas) receipts carry no `l1Fee`: it adds nothing.
 */
import { hexToBigInt, isHex, size } from "viem";

/** `l1Fee` is hex as the node sends it (raw receipts, viem without the OP formatters) or a bigint (viem's OP formatter; null there when absent). */
export function feePaid(receipt: {
  gasUsed: bigint;
  effectiveGasPrice: bigint;
  l1Fee?: unknown;
}): bigint {
  const l1 = receipt.l1Fee;
  let l1Fee = 0n;
  if (typeof l1 === "bigint") l1Fee = l1;
  else if (typeof l1 === "string" && isHex(l1) && size(l1) > 0) l1Fee = hexToBigInt(l1);
  return receipt.gasUsed * receipt.effectiveGasPrice + l1Fee;
}
