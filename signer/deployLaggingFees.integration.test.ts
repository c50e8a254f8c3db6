/**
 * A hot wallet's deploy (the CLI's stored deploy, in process) priced with the first endpoint behind
 * the chain. Its fees come from a node at the best head every endpoint was asked (the head its
 * nonce was read at), as a withdrawal's do (signer/laggingPrimaryLegacyFees): before, viem priced
 * it from the first endpoint's `latest` block and `eth_gasPrice`, a lagging node's old blocks, and
 * the deploy was signed below the next block's base fee (no block includes it; its replacement
 * waits a bump interval, then is refused or bumped again). Both fee models. Real anvil behind the
 * lying proxy (a lagging view answers `eth_gasPrice`, fee history and its blocks as a node there).
 */
import {
  createPublicClient,
  type Hex,
  http,
  type PublicClient,
  parseGwei,
  parseTransaction,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEvmAdapter } from "../chains/index.js";
import { type FaultyProxy, startFaultyProxy } from "../chains/testing/faultyProxy.js";
import { anvilRpc } from "../indexers/testing/chain.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import type { Lease } from "./lease.js";
import { storedDeploySender } from "./storedDeploy.js";
import { waitFor } from "./testing/harness.js";
import { TINY_CONTRACT, whileMining } from "./testing/killedDeploy.js";

// Anvil's account 4: funded, used by no other part of this file's chain.
const HOT_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
const hot = privateKeyToAccount(HOT_KEY);
const LAG = 3;

let ctx: TestContext;
let proxy: FaultyProxy;
let publicClient: PublicClient;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  const anvilUrl = ctx.anvils[0]!.rpcUrl;
  proxy = await startFaultyProxy(anvilUrl);
  publicClient = createPublicClient({
    cacheTime: 0,
    chain: foundry,
    transport: http(anvilUrl),
  }) as PublicClient;
}, 120_000);

afterAll(async () => {
  proxy?.setLag(null);
  await proxy?.close();
  await ctx?.cleanup();
});

/**
 * Deploy with the first endpoint LAG blocks behind two blocks of a 100 gwei base fee (its own
 * blocks at a low one); the first bytes sent and the next block's base fee when they were signed
 * go to `check` before the deploy is mined on.
 */
async function deployBehindRisingFees(
  feeModel: "eip1559" | "legacy",
  name: string,
  check: (first: ReturnType<typeof parseTransaction>, nextBaseFee: bigint) => void,
) {
  const anvilUrl = ctx.anvils[0]!.rpcUrl;
  const rpc = anvilRpc(anvilUrl);
  await rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("1"))]);
  await rpc("anvil_mine", ["0x3"]);
  await rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("100"))]);
  await rpc("anvil_mine", ["0x2"]);
  const nextBaseFee = (await publicClient.getBlock({ blockTag: "pending" })).baseFeePerGas!;
  proxy.setLag(LAG);
  const laggingBlock = await createPublicClient({ transport: http(proxy.url) }).getBlock();
  expect(laggingBlock.baseFeePerGas!).toBeLessThan(parseGwei("10"));

  const chain = { ...ctx.config.chains[0]!, feeModel, rpcUrls: [proxy.url, anvilUrl] };
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  const leases: Lease[] = [];
  const sent: Hex[] = [];
  const send = storedDeploySender({
    common: ctx.common,
    databaseUrl: ctx.db.url,
    chain,
    client: adapter.client,
    rpc: adapter.rpc,
    account: hot,
    sendRawTransaction: (raw) => {
      sent.push(raw);
      return adapter.sendRawTransaction(raw);
    },
    getFinalizedBlock: adapter.getFinalizedBlock,
    onLease: (lease) => leases.push(lease),
    pollMs: 50,
  });
  let failed: unknown;
  const done = send({ name, data: TINY_CONTRACT.init });
  done.catch((error) => {
    failed = error;
  });
  try {
    await waitFor("the deploy's first bytes sent", async () => {
      if (failed) throw failed;
      return sent.length > 0;
    });
    // Checked before mining on: bytes signed below the base fee would wait for a replacement.
    check(parseTransaction(sent[0]!), nextBaseFee);
    proxy.setLag(null);
    const deployed = await whileMining(publicClient, done);
    expect(deployed.receipt.status).toBe("success");
  } finally {
    proxy.setLag(null);
    for (const lease of leases) await lease.release();
  }
}

it("a legacy chain's deploy is signed at a gas price of a node at the head", async () => {
  await deployBehindRisingFees("legacy", "LaggingLegacyFees", (first, nextBaseFee) => {
    expect(first.type).toBe("legacy");
    // Old code: the lagging node's eth_gasPrice (a few gwei) against a next base fee of ~76.6 gwei.
    expect(first.gasPrice!).toBeGreaterThanOrEqual(nextBaseFee);
  });
});

it("an EIP-1559 chain's deploy is signed at a max fee over the head's next base fee", async () => {
  await deployBehindRisingFees("eip1559", "Lagging1559Fees", (first, nextBaseFee) => {
    expect(first.type).toBe("eip1559");
    // Old code: 1.2 x the lagging node's latest base fee plus a tip (a few gwei).
    expect(first.maxFeePerGas!).toBeGreaterThanOrEqual(nextBaseFee);
  });
});
