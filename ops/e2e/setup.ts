/**
 * The end-to-end tests' custody set-up: a test context on one anvil chain with the KMS emulator
 * (`startCustodyTest`), and `prepareCustody` (ops/devstack/custody.ts, what the demo and
 * `custody-node dev` run) on it.
 */
import { createPublicClient, type Hex, http, type PublicClient } from "viem";
import { adapterPerChain, type ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import type { Rpc } from "../../indexers/testing/chain.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { type PreparedCustody, prepareCustody } from "../devstack/custody.js";
import { demoPolicies } from "../devstack/scenario.js";
import { createTestContext, type TestChainSpec, type TestContext } from "../testing/context.js";
import { waitFor } from "../testing/wait.js";

export type { PreparedCustody } from "../devstack/custody.js";

/**
 * For tests: `prepareCustody` on the test context's first chain, with its database and the KMS
 * emulator at `kms.url`; `policies: "demo"` (the default) gives the demo's withdrawal policies,
 * `"config"` keeps the context's own.
 */
export function prepareTestCustody(
  ctx: { common: Common; db: { pool: Pool }; config: Config },
  kms: { url: string },
  { policies = "demo" }: { policies?: "demo" | "config" } = {},
): Promise<PreparedCustody> {
  const chain = ctx.config.chains[0]!;
  return prepareCustody({
    common: ctx.common,
    pool: ctx.db.pool,
    chain,
    kmsEndpoint: kms.url,
    ...(policies === "demo" ? { policies: demoPolicies(chain.chainId) } : {}),
  });
}

/** The end-to-end tests' chain: anvil 31337 as `local-a`, deposits confirmed after 2 blocks. */
export const CUSTODY_TEST_CHAIN: TestChainSpec = {
  chainId: 31337,
  key: "local-a",
  config: { confirmations: { kind: "blocks", blocks: 2 } },
};

export type CustodyTest = {
  ctx: TestContext;
  kms: KmsEmulator;
  /** The context's one chain, and a client of its anvil (no cache: tests read fresh state). */
  chain: ChainConfig;
  client: PublicClient;
  rpc: <T>(method: string, params?: unknown[]) => Promise<T>;
  mine: () => Promise<unknown>;
  /** Stops the KMS emulator and the context (stop a service started on them first). */
  cleanup: () => Promise<void>;
};

/** A test context on one anvil chain (`spec`, default `CUSTODY_TEST_CHAIN`) and the KMS emulator. */
export async function startCustodyTest(spec = CUSTODY_TEST_CHAIN): Promise<CustodyTest> {
  const ctx = await createTestContext({ chains: [spec] });
  let kms: KmsEmulator;
  try {
    kms = await startKmsEmulator();
  } catch (error) {
    await ctx.cleanup();
    throw error;
  }
  const chain = ctx.config.chains[0]!;
  const client = createPublicClient({
    cacheTime: 0,
    transport: http(chain.rpcUrls[0]),
  }) as PublicClient;
  const rpc = <T>(method: string, params: unknown[] = []) =>
    client.request({ method: method as never, params: params as never }) as Promise<T>;
  return {
    ctx,
    kms,
    chain,
    client,
    rpc,
    mine: () => rpc("evm_mine"),
    async cleanup() {
      await kms.stop();
      await ctx.cleanup();
    },
  };
}

/**
 * A full reconciliation at the chain's head once the index has made that block final, mining a
 * block per look (the e2e chains mine only when told).
 */
export async function reconcileAtFinal({
  ctx,
  chain,
  rpc,
}: {
  ctx: { common: Common; db: { pool: Pool } };
  chain: ChainConfig;
  rpc: Rpc;
}) {
  const head = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
  await waitFor(
    `block ${head} final in the index`,
    async () => {
      await rpc("evm_mine");
      const r = await ctx.db.pool.query<{ block_number: string }>(
        "SELECT block_number FROM chain.checkpoints WHERE chain_id = $1",
        [chain.chainId],
      );
      return Number(r.rows[0]?.block_number ?? -1) - chain.reorgWindow >= head || undefined;
    },
    { timeoutMs: 60_000, everyMs: 50 },
  );
  return createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool: ctx.db.pool,
    chains: adapterPerChain(ctx.common),
  }).run({ chain, block: head, full: true });
}
