/**
 * Test set-up shared by the tests of the reconciler role's per-chain locks (a run, an attestation
 * tick): one anvil chain (31337) indexed by the real ingestor, the ledger with the chain's assets,
 * and an RPC proxy in front of the node whose delay a test sets (a slow node, so a lock can be lost
 * mid-read). `startRole` runs the reconciler role on it, reading the chain through the proxy.
 * `stop` ends all of it.
 */
import type { Hex } from "viem";
import { adapterPerChain, type ChainConfig, createEvmAdapter } from "../../../chains/index.js";
import type { Common } from "../../../foundation/common.js";
import { createHealth } from "../../../foundation/health.js";
import type { RoleHandle } from "../../../foundation/roles.js";
import type { Ingestor } from "../../../indexers/index.js";
import { type Rpc, syncToHead, watch } from "../../../indexers/testing/chain.js";
import { startIndexerTest, TEST_CHAIN_ID } from "../../../indexers/testing/indexerTest.js";
import type { TestContext } from "../../../ops/testing/context.js";
import { sweepReader } from "../../../signer/sweeps/sweepReads.js";
import { type RpcProxy, startRpcProxy } from "../../../signer/testing/rpcProxy.js";
import { createLedger, type Ledger } from "../../createLedger.js";
import { reconcilerRole } from "../role.js";
import type { SweepReader } from "../sources.js";

export type SlowNodeChain = {
  ctx: TestContext;
  /** The context's chain (its RPC URL the node's own; a test points a reader at `proxy.url`). */
  chain: ChainConfig;
  /** Raw JSON-RPC to the node itself. */
  rpc: Rpc;
  /** The node's dev accounts (as `custody` was given them). */
  accounts: Hex[];
  proxy: RpcProxy;
  ingestor: Ingestor;
  ledger: Ledger;
  /** Mine `n` blocks and index to the new head. */
  mineAndSync: (n: number) => Promise<void>;
  /**
   * The reconciler role on the chain (30 s blocks: its grace period is one block), through the
   * proxy; with `common`, a test's own (a logger it reads, a shutdown it triggers).
   */
  startRole: (sweeps?: SweepReader, common?: Common) => Promise<RoleHandle>;
  stop: () => Promise<void>;
};

/** `custody` names the chain's custody addresses, given the node's dev accounts. */
export async function startSlowNodeChain(
  custody: (accounts: Hex[]) => Parameters<typeof watch>[2],
): Promise<SlowNodeChain> {
  const t = await startIndexerTest();
  let proxy: RpcProxy | undefined;
  let ledger: Ledger | undefined;
  const stop = async () => {
    await ledger?.close();
    await proxy?.close();
    await t.stop();
  };
  try {
    proxy = await startRpcProxy(t.chain.rpcUrls[0]!);
    const throughProxy = proxy.url;
    await watch(t.ctx.db.pool, TEST_CHAIN_ID, custody(t.accounts));
    const ingestor = await t.ingestor();
    ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
    await ledger.ensureAssetsFromConfig([t.chain]);
    return {
      ctx: t.ctx,
      chain: t.chain,
      rpc: t.rpc,
      accounts: t.accounts,
      proxy,
      ingestor,
      ledger,
      async mineAndSync(n) {
        await t.rpc("anvil_mine", [`0x${n.toString(16)}`]);
        await syncToHead(ingestor, t.ctx.db.pool, t.rpc, TEST_CHAIN_ID);
      },
      startRole: (sweeps = sweepReader, common = t.ctx.common) =>
        reconcilerRole({
          sweeps,
          chains: (common) =>
            adapterPerChain(common, (c) =>
              createEvmAdapter({ ...c, rpcUrls: [throughProxy] }, { common }),
            ),
        }).start({
          common,
          pool: t.ctx.db.pool,
          redis: t.ctx.redis.redis,
          queues: t.ctx.queues,
          health: createHealth(),
          chains: [{ ...t.chain, blockTimeMs: 30_000 }],
          httpPlugins: [],
        }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
