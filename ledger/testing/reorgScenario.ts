/**
 * For reorg-hold tests on anvil: the real indexer and the real deposit crediting on one chain with
 * confirmations 3 and finality 40 blocks (so a hold stays pending until a test mines past
 * finality), and `creditThenReorg`: credit a deposit, then replace the chain from before it with a
 * longer branch (evm_snapshot/evm_revert), sync and sweep. Used by the ledger's reorg-holds test and
 * the console's reorg-holds page test. The caller owns the test context (and deploys the factory
 * first when withdrawals are involved); `stop` ends what this started.
 */
import type { Hex } from "viem";
import { expect } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { createEvmAdapter } from "../../chains/index.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import type { TestChainSpec, TestContext } from "../../ops/testing/context.js";
import { createLedger, type Ledger } from "../createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../depositCrediting.js";

export const REORG_CHAIN_ID = 31337;
/** The one chain of a reorg scenario: confirmations 3, finality and reorg window 40 blocks. */
export const REORG_CHAIN: TestChainSpec = {
  chainId: REORG_CHAIN_ID,
  key: "local-a",
  config: {
    confirmations: { kind: "blocks", blocks: 3 },
    finality: { kind: "blocks", blocks: 40 },
    reorgWindow: 40,
  },
};

type Sweep = Awaited<ReturnType<DepositCrediting["sweep"]>>;

export type ReorgScenario = {
  chain: ChainConfig;
  rpc: Rpc;
  /** An unlocked anvil account that sends the deposits. */
  sender: Hex;
  ingestor: Ingestor;
  ledger: Ledger;
  crediting: DepositCrediting;
  mine: (blocks: number) => Promise<void>;
  /** Index to the chain's head. */
  sync: () => Promise<void>;
  /** Index to the head, then run the crediting sweep. */
  settle: () => Promise<Sweep>;
  /**
   * Credit a deposit of `value` to `to`, then replace the chain from before it with a longer branch
   * built by `branch` (default: empty blocks), and settle. `beforeReorg` runs while it is credited.
   */
  creditThenReorg: (
    to: Hex,
    value: bigint,
    hooks?: { beforeReorg?: () => Promise<void>; branch?: () => Promise<void> },
  ) => Promise<{ txHash: Hex; raw: Hex; swept: Sweep }>;
  stop: () => Promise<void>;
};

export async function startReorgScenario(
  ctx: TestContext,
  watched: { address: Hex; owner: string }[],
): Promise<ReorgScenario> {
  const chain = ctx.config.chains.find((c) => c.chainId === REORG_CHAIN_ID)!;
  const rpc = anvilRpc(chain.rpcUrls[0]!);
  const sender = ((await rpc<Hex[]>("eth_accounts"))[3] as Hex).toLowerCase() as Hex;
  await watch(ctx.db.pool, REORG_CHAIN_ID, watched);
  const ingestor = await createIngestor({
    common: ctx.common,
    pool: ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: ctx.common }),
    options: { batchBlocks: 8 },
  });
  const ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  const crediting = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger });

  const mine = async (blocks: number) => {
    for (let i = 0; i < blocks; i++) await rpc("evm_mine");
  };
  const sync = () => syncToHead(ingestor, ctx.db.pool, rpc, REORG_CHAIN_ID);
  const settle = async () => {
    await sync();
    return crediting.sweep({ chainId: REORG_CHAIN_ID });
  };
  await sync();

  return {
    chain,
    rpc,
    sender,
    ingestor,
    ledger,
    crediting,
    mine,
    sync,
    settle,
    async creditThenReorg(to, value, { beforeReorg, branch } = {}) {
      const snapshot = await rpc<Hex>("evm_snapshot");
      const r = await sendAndMine(rpc, { from: sender, to, value });
      const txHash = r.transactionHash.toLowerCase() as Hex;
      const raw = await rpc<Hex>("eth_getRawTransactionByHash", [txHash]);
      await mine(3);
      expect((await settle()).credited).toBe(1);
      const tip = BigInt(await rpc<Hex>("eth_blockNumber"));
      await beforeReorg?.();
      await rpc("evm_revert", [snapshot]);
      await branch?.();
      // A longer branch without the deposit: a reorg deeper than the confirmation rule.
      while (BigInt(await rpc<Hex>("eth_blockNumber")) <= tip + 1n) await mine(1);
      const swept = await settle();
      return { txHash, raw, swept };
    },
    async stop() {
      await ingestor.stop();
      await ledger.close();
    },
  };
}
