/**
 * The bootstrap every signer integration test starts from, in one place: a test context with one
 * anvil, the signer harness's parts (KMS emulator, funded hot wallet, request helpers), optionally
 * a proxy in front of the node that the signer's chain goes through, and optionally a wallet
 * signer for the harness's account; `run()` starts more signers the same way. `stop()` tears it down in order (signer,
 * proxy, harness, context). What a test does with them stays in the test. Test-only.
 */
import type { ChainConfig } from "../../chains/index.js";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/index.js";
import {
  createTestContext,
  type TestChainSpec,
  type TestContext,
} from "../../ops/testing/context.js";
import type { SignerAccount } from "../broadcaster/index.js";
import { getTxOutcomes, type TxOutcome } from "../outcomes.js";
import { startWalletSigner, type WalletSigner, type WalletSignerOptions } from "../walletSigner.js";
import { createSignerHarness, type SignerHarness, waitFor } from "./harness.js";

export const TEST_CHAIN_ID = 31337;

/** anvil with 1,000,000-gas blocks: a request can ask for more gas than any block holds. */
export const SMALL_BLOCKS = ["--gas-limit", "1000000"];

type Proxy = { url: string; close: () => Promise<void> };

/**
 * What a test may set on a wallet signer (`databaseUrl`: its lease's; `common`: its own logger,
 * metrics or shutdown, as another process has); the rest comes from the test.
 */
export type TestSignerOptions = Partial<Omit<WalletSignerOptions, "pool" | "queues" | "account">>;

export type SignerTestOptions<P extends Proxy = Proxy> = {
  /** The anvil and the context's chain entry (chainId 31337 unless given). */
  chain?: Omit<TestChainSpec, "chainId"> & { chainId?: number };
  /** Starts a proxy in front of the anvil (startRpcProxy, startLyingProxy): `chain` uses it. */
  proxy?: (url: string) => Promise<P>;
  /** Start a wallet signer for the harness's account on `chain`, with these options. */
  signer?: TestSignerOptions;
};

export type SignerTest<P extends Proxy = Proxy> = Omit<SignerHarness, "close"> & {
  ctx: TestContext;
  /** The proxy, when one was asked for. */
  proxy: P | undefined;
  /** The context's chain, through the proxy when there is one. */
  chain: ChainConfig;
  /** The signer `stop()` stops first: started with `signer`, or set by the test. */
  signer: WalletSigner | undefined;
  /** A wallet signer for `account` (default the harness's) on `chain`, polling every 50 ms. */
  run: (account?: SignerAccount, options?: TestSignerOptions) => WalletSigner;
  /** Request `id` as the API reads it (`getTxOutcomes`); the request must exist. */
  outcome: (id: string) => Promise<TxOutcome>;
  /**
   * Mines until request `id` is confirmed (or finalized) and returns it; each outcome seen with a
   * fee (mined) must pass `check` on the way.
   */
  confirmedWith: (id: string, check?: (o: TxOutcome) => void) => Promise<TxOutcome>;
  /** How many times `custody_signer_alerts_total` counted `alert` for `wallet` so far. */
  alertCount: (alert: string, wallet: string) => Promise<number>;
  stop: () => Promise<void>;
};

export async function startSignerTest<P extends Proxy = Proxy>(
  options: SignerTestOptions<P> = {},
): Promise<SignerTest<P>> {
  const ctx = await createTestContext({ chains: [{ chainId: TEST_CHAIN_ID, ...options.chain }] });
  let harness: SignerHarness | undefined;
  let proxy: P | undefined;
  try {
    harness = await createSignerHarness(ctx);
    if (options.proxy) proxy = await options.proxy(ctx.config.chains[0]!.rpcUrls[0]!);
  } catch (error) {
    await harness?.close();
    await ctx.cleanup();
    throw error;
  }
  const { close, ...h } = harness;
  const test: SignerTest<P> = {
    ...h,
    ctx,
    proxy,
    chain: proxy ? { ...ctx.config.chains[0]!, rpcUrls: [proxy.url] } : ctx.config.chains[0]!,
    signer: undefined,
    run(account = h.account, o = {}) {
      return startWalletSigner({
        common: ctx.common,
        pool: ctx.db.pool,
        queues: ctx.queues,
        chain: test.chain,
        account: async () => account,
        databaseUrl: ctx.db.url,
        pollMs: 50,
        ...o,
      });
    },
    async outcome(id) {
      return (await getTxOutcomes(ctx.db.pool, { requestIds: [id] }))[0]!;
    },
    confirmedWith(id, check = () => {}) {
      return waitFor(
        `${id} confirmed`,
        async () => {
          const o = await test.outcome(id);
          if (o.fee !== null) check(o);
          if (o.status === "confirmed" || o.status === "finalized") return o;
          await h.rpc("evm_mine");
          return undefined;
        },
        { timeoutMs: 60_000, everyMs: 300 },
      );
    },
    async alertCount(alert, wallet) {
      const m = await ctx.common.metrics.registry
        .getSingleMetric("custody_signer_alerts_total")
        ?.get();
      return (
        m?.values.find((v) => v.labels.alert === alert && v.labels.wallet === wallet.toLowerCase())
          ?.value ?? 0
      );
    },
    async stop() {
      await test.signer?.stop();
      await proxy?.close();
      await close();
      await ctx.cleanup();
    },
  };
  if (options.signer) test.signer = test.run(h.account, options.signer);
  return test;
}

export type LyingSignerTest = SignerTest<LyingProxy>;

/**
 * A signer test whose chain goes through the lying proxy (chains/testing/lyingChain: a lagging or
 * syncing node, bogus heads, refused or lost sends), confirming after `blocks` blocks.
 */
export function startLyingSignerTest(
  blocks: number,
  options: { chain?: TestChainSpec["config"]; signer?: TestSignerOptions } = {},
): Promise<LyingSignerTest> {
  return startSignerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks }, ...options.chain } },
    proxy: (url) => startLyingProxy(url),
    ...(options.signer && { signer: options.signer }),
  });
}
