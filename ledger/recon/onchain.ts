/**
 * On-chain balances of custody addresses at the run's block, through the chains adapter (the ledger
 * itself never builds an RPC client). Calls go out in batches of `batchSize` (address, asset)
 * reads, one batch at a time and at most `requestsPerSecond` batches a second, so a run over many
 * addresses stays inside a provider's rate limit: through Multicall3 (`getEthBalance` and ERC-20
 * `balanceOf` in one `aggregate3` eth_call) where the chain has it, else as JSON-RPC batches of
 * `eth_getBalance` and `eth_call`.
 */
import {
  type Address,
  decodeFunctionResult,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  multicall3Abi,
} from "viem";
import type { EvmAdapter } from "../../chains/index.js";
import { multicall3For } from "../../chains/index.js";
import type { OnchainBalance } from "./balances.js";
import type { CustodyKind } from "./types.js";

export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

export type BalanceReadOptions = {
  /** (address, asset) reads per request: one multicall or one JSON-RPC batch. */
  batchSize: number;
  /** Requests started per second at most (the provider's rate limit). */
  requestsPerSecond: number;
  /** Multicall3 address (default: the chain registry's; none: JSON-RPC batches). */
  multicall3?: Address | undefined;
};

export const DEFAULT_BALANCE_READS: BalanceReadOptions = { batchSize: 500, requestsPerSecond: 20 };

/** Spaces request starts `1000 / rps` ms apart; one per chain, shared by its runs. */
export function createRateLimiter(requestsPerSecond: number): () => Promise<void> {
  const interval = 1000 / requestsPerSecond;
  let next = 0;
  return async () => {
    const now = performance.now();
    const at = Math.max(now, next);
    next = at + interval;
    if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now));
  };
}

type Read = { address: string; kind: CustodyKind; token: string };

export async function readCustodyBalances(
  adapter: EvmAdapter,
  args: {
    /** The addresses to read (lowercase) and their kind. */
    addresses: ReadonlyMap<string, CustodyKind>;
    tokens: readonly string[];
    block: number;
    options?: BalanceReadOptions;
    /** Waits for the chain's rate limit (default: one limiter for this call). */
    limit?: () => Promise<void>;
  },
): Promise<OnchainBalance[]> {
  const chainId = adapter.chain.chainId;
  const options = args.options ?? DEFAULT_BALANCE_READS;
  const limit = args.limit ?? createRateLimiter(options.requestsPerSecond);
  const multicall3 = options.multicall3 ?? multicall3For(chainId);
  const addresses = [...args.addresses.keys()].sort();
  const reads: Read[] = [];
  for (const address of addresses) {
    const kind = args.addresses.get(address)!;
    reads.push({ address, kind, token: ZERO_ADDRESS });
    for (const token of args.tokens)
      if (token !== ZERO_ADDRESS) reads.push({ address, kind, token });
  }
  const blockTag = `0x${args.block.toString(16)}`;
  const out: OnchainBalance[] = [];
  for (let i = 0; i < reads.length; i += options.batchSize) {
    const chunk = reads.slice(i, i + options.batchSize);
    await limit();
    const balances = multicall3
      ? await viaMulticall(adapter, multicall3, chunk, blockTag)
      : await viaBatch(adapter, chunk, blockTag);
    chunk.forEach((r, j) => {
      out.push({
        address: r.address,
        kind: r.kind,
        assetId: `${chainId}:${r.token}`,
        balance: balances[j]!,
      });
    });
  }
  return out;
}

async function viaMulticall(
  adapter: EvmAdapter,
  multicall3: Address,
  reads: readonly Read[],
  blockTag: string,
): Promise<bigint[]> {
  const calls = reads.map((r) =>
    r.token === ZERO_ADDRESS
      ? {
          target: multicall3,
          allowFailure: false,
          callData: encodeFunctionData({
            abi: multicall3Abi,
            functionName: "getEthBalance",
            args: [r.address as Address],
          }),
        }
      : {
          target: r.token as Address,
          allowFailure: false,
          callData: encodeFunctionData({
            abi: erc20Abi,
            functionName: "balanceOf",
            args: [r.address as Address],
          }),
        },
  );
  const data = encodeFunctionData({
    abi: multicall3Abi,
    functionName: "aggregate3",
    args: [calls],
  });
  const raw = await adapter.rpc.request<Hex>("eth_call", [{ to: multicall3, data }, blockTag]);
  const results = decodeFunctionResult({
    abi: multicall3Abi,
    functionName: "aggregate3",
    data: raw,
  });
  // Both getEthBalance and balanceOf return one uint256.
  return results.map((r) => (r.returnData === "0x" ? 0n : BigInt(r.returnData.slice(0, 66))));
}

async function viaBatch(adapter: EvmAdapter, reads: readonly Read[], blockTag: string) {
  const raw = await adapter.rpc.batch<string>(
    reads.map((r) =>
      r.token === ZERO_ADDRESS
        ? { method: "eth_getBalance", params: [r.address, blockTag] }
        : {
            method: "eth_call",
            params: [
              {
                to: r.token,
                data: encodeFunctionData({
                  abi: erc20Abi,
                  functionName: "balanceOf",
                  args: [r.address as Address],
                }),
              },
              blockTag,
            ],
          },
    ),
  );
  return raw.map((r) => BigInt(r === "0x" ? 0 : r));
}
