/**
 * The bootstrap every indexer integration test starts from, in one place: a test context with one
 * anvil, its dev accounts, optionally a listed TestToken and fault proxies in front of the node, the
 * chain config ingestors use, and a factory for ingestors; `stop()` tears all of it down (ingestors,
 * then proxies, then the context). What a test does with the chain stays in the test. Test-only.
 */
import type { Hex } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import { createEvmAdapter, type EvmAdapter, type EvmAdapterOptions } from "../../chains/index.js";
import { type FaultyProxy, startFaultyProxy } from "../../chains/testing/faultyProxy.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../ops/testing/context.js";
import {
  createIngestor,
  type FactsDoorbell,
  type Ingestor,
  type IngestorOptions,
} from "../createIngestor.js";
import { anvilRpc, deploy, type Rpc, watch } from "./chain.js";

export const TEST_CHAIN_ID = 31337;

export type IndexerTestOptions = {
  /** The anvil and the context's chain entry (chainId 31337 unless given). */
  chain?: Omit<TestChainSpec, "chainId"> & { chainId?: number };
  /** Deploy a TestToken (10^24 to accounts[0]) and list it in `chain.tokens`. */
  token?: boolean;
  /** Fault proxies in front of the anvil: `chain.rpcUrls` are theirs, in this order. */
  proxies?: number;
  /** Overrides of the chain config ingestors use (not of the context's config). */
  config?: Partial<ChainConfig>;
  /** Addresses watched in the context's database before any ingestor starts. */
  watch?: Parameters<typeof watch>[2];
};

export type TestIngestorOptions = {
  chain?: ChainConfig;
  common?: Common;
  pool?: Pool;
  /** The adapter to use (a test that counts its calls); else one on `chain` with these options. */
  adapter?: EvmAdapter;
  adapterOptions?: EvmAdapterOptions;
  doorbell?: FactsDoorbell;
  options?: IngestorOptions;
};

export type IndexerTest = {
  ctx: TestContext;
  /** Raw JSON-RPC to the anvil itself (not through the proxies). */
  rpc: Rpc;
  /** The anvil's dev accounts as it returns them. */
  accounts: Hex[];
  /** accounts[0]: pays for everything unless a test says otherwise. */
  from: Hex;
  /** The listed TestToken (with `token: true`). */
  token: Hex | undefined;
  proxies: FaultyProxy[];
  /** The context's chain with the token listed, the proxies' URLs and `config` applied. */
  chain: ChainConfig;
  /** An ingestor on `chain` (or another), stopped by `stop()` unless the test stopped it. */
  ingestor: (options?: TestIngestorOptions) => Promise<Ingestor>;
  stop: () => Promise<void>;
};

export async function startIndexerTest(options: IndexerTestOptions = {}): Promise<IndexerTest> {
  const spec: TestChainSpec = { chainId: TEST_CHAIN_ID, ...options.chain };
  const ctx = await createTestContext({ chains: [spec] });
  const proxies: FaultyProxy[] = [];
  const ingestors: Ingestor[] = [];
  const test: IndexerTest = {
    ctx,
    rpc: anvilRpc(ctx.anvils[0]!.rpcUrl),
    accounts: [],
    from: "0x",
    token: undefined,
    proxies,
    chain: ctx.config.chains[0]!,
    async ingestor(o = {}) {
      const common = o.common ?? ctx.common;
      const ingestor = await createIngestor({
        common,
        pool: o.pool ?? ctx.db.pool,
        adapter: o.adapter ?? createEvmAdapter(o.chain ?? test.chain, { common }, o.adapterOptions),
        ...(o.doorbell ? { doorbell: o.doorbell } : {}),
        ...(o.options ? { options: o.options } : {}),
      });
      // Stopped once, whether by the test or by stop() (a second stop would release its
      // LISTEN connection twice).
      let stopped: Promise<void> | undefined;
      const once: Ingestor = { ...ingestor, stop: () => (stopped ??= ingestor.stop()) };
      ingestors.push(once);
      return once;
    },
    async stop() {
      for (const ingestor of ingestors) await ingestor.stop();
      for (const proxy of proxies) await proxy.close();
      await ctx.cleanup();
    },
  };
  try {
    test.accounts = await test.rpc<Hex[]>("eth_accounts");
    test.from = test.accounts[0]!;
    for (let i = 0; i < (options.proxies ?? 0); i++)
      proxies.push(await startFaultyProxy(ctx.anvils[0]!.rpcUrl));
    if (options.token) test.token = await deploy(test.rpc, test.from, "TestToken", [10n ** 24n]);
    test.chain = {
      ...test.chain,
      ...(proxies.length > 0 ? { rpcUrls: proxies.map((p) => p.url) } : {}),
      ...(test.token ? { tokens: [{ address: test.token, symbol: "TT", decimals: 18 }] } : {}),
      ...options.config,
    };
    if (options.watch) await watch(ctx.db.pool, spec.chainId, options.watch);
    return test;
  } catch (error) {
    await test.stop();
    throw error;
  }
}
