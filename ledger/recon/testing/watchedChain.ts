/**
 * Test set-up shared by the reconciliation tests of one anvil chain with a hot wallet and deposit
 * addresses: the context (its one chain at `CHAIN_ID` 31337 with the given config overrides), the
 * chain's config without tokens, the hot wallet (anvil's second account, its opening balance
 * booked) and the deposit addresses watched, and a `ReconciledChain` on them. `customer` is anvil's
 * first account, the one that pays the deposits. `stop` stops the stack and cleans the context up.
 * Test-only.
 */

import type { Hex } from "viem";
import type { ChainConfig } from "../../../chains/index.js";
import { anvilRpc, type Rpc, syncToHead, watch } from "../../../indexers/testing/chain.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../../ops/testing/context.js";
import { type ReconciledChain, startReconciledChain } from "./reconciledChain.js";

const CHAIN_ID = 31337;

export type WatchedChain = {
  ctx: TestContext;
  rpc: Rpc;
  chain: ChainConfig;
  stack: ReconciledChain;
  customer: Hex;
  hot: Hex;
  stop: () => Promise<void>;
};

export async function startWatchedChain({
  config,
  deposits,
}: {
  config?: TestChainSpec["config"];
  deposits: { address: Hex; owner: string }[];
}): Promise<WatchedChain> {
  const ctx = await createTestContext({
    chains: [{ chainId: CHAIN_ID, ...(config ? { config } : {}) }],
  });
  let stack: ReconciledChain | undefined;
  const stop = async () => {
    await stack?.stop();
    await ctx.cleanup();
  };
  try {
    const rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
    const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
    const customer = accounts[0]!;
    const hot = accounts[1]!;
    const chain: ChainConfig = { ...ctx.config.chains[0]!, tokens: [] };
    await watch(ctx.db.pool, CHAIN_ID, [
      { address: hot, kind: "hot", owner: "hot-1" },
      ...deposits,
    ]);
    stack = await startReconciledChain(ctx, chain);
    await stack.bookHotOpening(hot);
    return { ctx, rpc, chain, stack, customer, hot, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Mines `n` empty blocks. */
export async function mine({ rpc }: WatchedChain, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
}

/** Indexes the chain up to its head. */
export async function sync({ ctx, rpc, chain, stack }: WatchedChain): Promise<void> {
  await syncToHead(stack.ingestor, ctx.db.pool, rpc, chain.chainId);
}
