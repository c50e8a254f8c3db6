/**
 * A hot wallet's contract deploy that reverts when it mines: something is already at its
 * contract's address. The code is put there while the deploy waits in the node's pool (its gas
 * was estimated and its bytes signed against a free address). Test-only.
 */
import { type Address, getContractAddress, type PublicClient } from "viem";
import { waitFor } from "../../ops/testing/wait.js";

/**
 * Turns anvil's automine off, starts `deploy` (the wallet's next transaction, at `nonce`), and once
 * it is in the pool puts code at its contract's address. Automine stays off: the caller mines (and
 * turns it back on). `outcome` is what `deploy` gave, or the error it threw.
 */
export async function deployWillRevert<T>(
  client: PublicClient,
  from: Address,
  deploy: () => Promise<T>,
): Promise<{ outcome: Promise<T | Error>; nonce: number }> {
  const rpc = (method: string, params: unknown[]) =>
    client.request({ method: method as never, params: params as never });
  const nonce = await client.getTransactionCount({ address: from });
  await rpc("evm_setAutomine", [false]);
  const outcome = deploy().catch((e: unknown) => e as Error);
  await waitFor(
    "the deploy in the pool",
    async () => (await client.getTransactionCount({ address: from, blockTag: "pending" })) > nonce,
  );
  await rpc("anvil_setCode", [getContractAddress({ from, nonce: BigInt(nonce) }), "0x00"]);
  return { outcome, nonce };
}
