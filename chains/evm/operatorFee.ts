/**
 * The operator fee OP-stack chains charge outside gas since Isthmus, read from the chain's own
 * GasPriceOracle predeploy (`getOperatorFee(uint256)`), never from our copy of its formula (Jovian
 * changed it). The signer budgets a send with it (signer/gas.ts), and every booking of a mined
 * send's fee adds it (feePaid.ts): receipts carry only its parameters (`operatorFeeScalar`,
 * `operatorFeeConstant`), not the fee.
 */
import { type PublicClient, parseAbi } from "viem";
import { NoHealthyEndpointError, RpcUnavailableError } from "../errors.js";

/** Where OP-stack chains (Optimism, Base, …) expose the L1 data fee and the operator fee. */
export const OP_GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F";

export const GAS_PRICE_ORACLE_ABI = parseAbi([
  "function getL1Fee(bytes) view returns (uint256)",
  "function getOperatorFee(uint256) view returns (uint256)",
]);

/** An OP-stack deposit (L1 to L2) transaction: its gas was bought on L1, it pays no operator fee. */
const OP_DEPOSIT_TYPES: readonly unknown[] = ["0x7e", "deposit"];

/**
 * The node executed the call and it reverted without revert data: what a Solidity contract does
 * when asked a function it does not have (the GasPriceOracle before Isthmus, asked
 * `getOperatorFee`). Read from the node's own JSON-RPC error, the innermost one with a code (3, or
 * geth's -32000 for a revert without data, saying "execution reverted"), not from viem's wrapping
 * of it: viem calls a node's internal error (-32603) a revert too, and maps -32000 to "invalid
 * input" whatever the node said. A transport failure or no endpoint at the block (chains/rpc.ts)
 * is never one, whatever it wraps.
 */
export function isMissingFunctionRevert(error: unknown): boolean {
  let node: { code: number; message?: unknown; data?: unknown } | undefined;
  let e: unknown = error;
  for (let depth = 0; e && typeof e === "object" && depth < 12; depth++) {
    if (e instanceof RpcUnavailableError || e instanceof NoHealthyEndpointError) return false;
    const o = e as { code?: unknown; cause?: unknown };
    if (typeof o.code === "number") node = o as typeof node;
    e = o.cause;
  }
  return (
    node !== undefined &&
    (node.code === 3 || node.code === -32000) &&
    typeof node.message === "string" &&
    /\bexecution reverted\b/i.test(node.message) &&
    (node.data === undefined || node.data === null || node.data === "0x")
  );
}

/**
 * Whether the chain may have charged this receipt's sender an operator fee, so it must be asked: a
 * chain configured OP-stack (`l1DataFee`), or a receipt carrying the operator fee parameters
 * (OP-stack receipts since Isthmus); never an L1-to-L2 deposit (its gas was bought on L1).
 */
export function operatorFeeAsked(
  chain: { l1DataFee?: "none" | "op-stack" | undefined },
  receipt: { type?: unknown; operatorFeeScalar?: unknown; operatorFeeConstant?: unknown },
): boolean {
  if (OP_DEPOSIT_TYPES.includes(receipt.type)) return false;
  return (
    chain.l1DataFee === "op-stack" ||
    (receipt.operatorFeeScalar !== undefined && receipt.operatorFeeScalar !== null) ||
    (receipt.operatorFeeConstant !== undefined && receipt.operatorFeeConstant !== null)
  );
}

/**
 * `GasPriceOracle.getOperatorFee(gas)` at `blockNumber` (latest without one): the operator fee the
 * chain charges for that much gas. `null` when the oracle there has no such function (before
 * Isthmus): it reverts without revert data, in a call the node executed, which is the chain's answer
 * that it charges none. Any other failure (no answer, another node error, a node not at the block,
 * an answer that is no number) is no evidence of a fee of 0: it throws.
 */
export async function readOperatorFee(
  client: Pick<PublicClient, "readContract">,
  gas: bigint,
  blockNumber?: bigint | undefined,
): Promise<bigint | null> {
  try {
    return await client.readContract({
      address: OP_GAS_PRICE_ORACLE,
      abi: GAS_PRICE_ORACLE_ABI,
      functionName: "getOperatorFee",
      args: [gas],
      ...(blockNumber !== undefined ? { blockNumber } : {}),
    });
  } catch (error) {
    if (isMissingFunctionRevert(error)) return null;
    throw error;
  }
}

/**
 * The operator fee a mined transaction paid: `GasPriceOracle.getOperatorFee(gasUsed)` at its
 * receipt's block (the L1Block values it reads are set by the block's first, deposit, transaction,
 * so the state after the block is the one the transaction was charged at). Asked only on a chain
 * configured OP-stack (`l1DataFee`) or for a receipt that carries the operator fee fields; 0 for
 * others, for an L1-to-L2 deposit and where the oracle has no such function (`readOperatorFee`).
 * Any other failure throws, and the caller books nothing on it (it reads again later).
 */
export async function operatorFeePaid(
  client: Pick<PublicClient, "readContract">,
  chain: { l1DataFee?: "none" | "op-stack" | undefined },
  receipt: {
    gasUsed: bigint;
    blockNumber: bigint;
    type?: unknown;
    operatorFeeScalar?: unknown;
    operatorFeeConstant?: unknown;
  },
): Promise<bigint> {
  if (!operatorFeeAsked(chain, receipt)) return 0n;
  return (await readOperatorFee(client, receipt.gasUsed, receipt.blockNumber)) ?? 0n;
}
