/**
 * The one place the broadcaster decides gas: the gas limit of a request's first attempt (intake),
 * of a cancel (0-value self-transfer) and what a mined receipt cost. Replacements keep the gas
 * limit of the attempt they replace. The policy (always eth_estimateGas, the chain's margin and
 * floor, room for state that changes before inclusion, the OP-stack L1 data fee, intrinsic-gas
 * refusal) is signer/gas.ts; nothing here assumes
 * 21,000 (on Arbitrum a plain transfer costs more: the L1 cost is charged as gas).
 */
import type { Hex } from "viem";
import { estimateTxGas, type ReadAt, type TxGasEstimate } from "../gas.js";
import type { BroadcasterContext } from "./context.js";

/**
 * Gas for a request: the caller's limit checked against intrinsic gas (IntrinsicGasTooLowError),
 * else eth_estimateGas with the chain's margin and floor; plus the L1 data fee where the chain
 * charges one outside gas. Every read at `at`'s block (intake: the wallet pair's head, where it
 * reads its L1 yardstick too). Node errors propagate to intake, which classifies them.
 */
export async function requestGas(
  ctx: BroadcasterContext,
  r: { id: string; to: Hex; value: bigint; data: Hex; gasLimit: bigint | null },
  at?: ReadAt | undefined,
): Promise<TxGasEstimate> {
  return estimateTxGas(
    ctx.client,
    ctx.chain,
    {
      from: ctx.from,
      to: r.to,
      value: r.value,
      data: r.data,
      gasLimit: r.gasLimit,
      requestId: r.id,
    },
    at,
  );
}

/**
 * Gas limit for a cancel of a nonce: a 0-value transfer to the hot wallet itself, estimated at
 * block `head` (on Arbitrum its L1 cost is part of the estimate: a node behind prices it on an old
 * L1 fee, and a limit too low is refused as intrinsic gas too low).
 */
export async function cancelGasLimit(ctx: BroadcasterContext, head: bigint): Promise<bigint> {
  const gas = await estimateTxGas(
    ctx.client,
    ctx.chain,
    { from: ctx.from, to: ctx.from, value: 0n, data: "0x" },
    { blockNumber: head },
  );
  return gas.gasLimit;
}
