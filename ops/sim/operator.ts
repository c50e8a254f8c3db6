/**
 * The sim's operator, deciding on a withdrawal in `needs_review` the way `custody-node withdrawals
 * fail` asks a real one to: check the chain first. The signer puts a request in `needs_review`
 * either because its cancels are unsendable (CANCEL_UNSENDABLE: the nonce is unused) or because
 * its nonce was used at a final block while every endpoint answered without a receipt of ours
 * (NONCE_CONSUMED_NO_KNOWN_ATTEMPT). With the sim's endpoints withholding receipts, the second
 * happens to a request whose own cancel mined; the signer finds the receipt again once the nodes
 * return it (receipt_found), so an operator who looks at the chain leaves it alone. The operator
 * reads the chain itself (anvil, past the lying endpoints the signer is given).
 */
import type { Hex } from "viem";
import type { Rpc } from "../../indexers/testing/chain.js";

/** The first of these transactions the chain has in a block, or undefined when none is mined. */
export async function minedOnChain(
  rpc: Rpc,
  hashes: readonly Hex[],
): Promise<{ hash: Hex; blockNumber: bigint } | undefined> {
  for (const hash of hashes) {
    const receipt = await rpc<{ blockNumber: Hex | null } | null>("eth_getTransactionReceipt", [
      hash,
    ]);
    // A receipt without a block is a pending tx on some clients: not mined.
    if (receipt?.blockNumber) return { hash, blockNumber: BigInt(receipt.blockNumber) };
  }
  return undefined;
}
