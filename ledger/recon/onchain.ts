/**
 * On-chain balances of every custody address at the run's block, through the chains adapter (the
 * ledger itself never calls RPC): native balances as one JSON-RPC batch, token balances with the
 * adapter's multicall/batched eth_call.
 */
import type { Address } from "viem";
import type { EvmAdapter } from "../../chains/index.js";
import type { OnchainBalance } from "./balances.js";
import type { CustodyKind } from "./types.js";

export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

export async function readCustodyBalances(
  adapter: EvmAdapter,
  args: { custody: ReadonlyMap<string, CustodyKind>; tokens: readonly string[]; block: number },
): Promise<OnchainBalance[]> {
  const chainId = adapter.chain.chainId;
  const addresses = [...args.custody.keys()].sort();
  if (addresses.length === 0) return [];
  const blockTag = `0x${args.block.toString(16)}`;
  const out: OnchainBalance[] = [];
  const native = await adapter.rpc.batch<string>(
    addresses.map((a) => ({ method: "eth_getBalance", params: [a, blockTag] })),
  );
  addresses.forEach((address, i) => {
    out.push({
      address,
      kind: args.custody.get(address)!,
      assetId: `${chainId}:${ZERO_ADDRESS}`,
      balance: BigInt(native[i]!),
    });
  });
  for (const token of args.tokens) {
    if (token === ZERO_ADDRESS) continue;
    const balances = await adapter.getTokenBalances({
      token: token as Address,
      holders: addresses as Address[],
      blockNumber: BigInt(args.block),
    });
    addresses.forEach((address, i) => {
      out.push({
        address,
        kind: args.custody.get(address)!,
        assetId: `${chainId}:${token}`,
        balance: balances[i]!,
      });
    });
  }
  return out;
}
