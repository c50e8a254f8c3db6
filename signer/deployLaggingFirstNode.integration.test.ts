/**
 * A hot wallet's deploy (the CLI's stored deploy, in process) with the first endpoint behind the
 * chain. Its nonce: the wallet's newest transaction, the signer's, is mined in a block that
 * endpoint does not have yet. The deploy takes its nonce from a node at the best head (every
 * endpoint asked its head), not from the first endpoint's `latest`: before, that node counted the
 * signer's mined transaction unused and the deploy was refused, blaming signer transactions "not
 * mined yet". Its fees: they come from a node at that head too, as a withdrawal's do
 * (signer/laggingPrimaryLegacyFees): before, a legacy chain's deploy was priced at the first
 * endpoint's `eth_gasPrice`, a lagging node's old blocks, and signed below the next block's base fee
 * (no block includes it; its replacement waits a bump interval). Both fee models (the EIP-1559
 * one's `latest` block already came from the best head's node through the adapter's transport).
 * Its follower: the deploy's receipt and the wallet's counts come from a node at the best head
 * first; before, a first endpoint behind the deploy's block had the same bytes sent every poll.
 * Real anvil behind the lying proxy (a lagging view answers `eth_gasPrice`, fee history and its
 * blocks as a node there), real Postgres.
 */
import {
  createPublicClient,
  createWalletClient,
  getContractAddress,
  type Hex,
  http,
  type PublicClient,
  parseEther,
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

// Anvil's account 3: funded, used by no other part of this file's chain.
const HOT_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const hot = privateKeyToAccount(HOT_KEY);
// Anvil's account 4, for the fee cases.
const FEES_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
const LAG = 5;

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
  await proxy?.close();
  await ctx?.cleanup();
});

it("takes the nonce after the signer's newest mined transaction, which the lagging first endpoint lacks", async () => {
  const chain = ctx.config.chains[0]!;
  const anvilUrl = ctx.anvils[0]!.rpcUrl;
  // The signer's newest transaction: sent at nonce k, stored, mined.
  const k = await publicClient.getTransactionCount({ address: hot.address });
  const wallet = createWalletClient({ account: hot, chain: foundry, transport: http(anvilUrl) });
  const hash = await wallet.sendTransaction({ to: `0x${"ab".repeat(20)}`, value: parseEther("1") });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  expect(receipt.status).toBe("success");
  await ctx.db.pool.query(
    `INSERT INTO custody.tx_requests (id, chain_id, from_address, to_address, value, kind, ref_id, status, nonce)
     VALUES ('w-mined', 31337, $1, $2, 1, 'withdrawal', 'w-mined', 'confirmed', $3)`,
    [hot.address.toLowerCase(), `0x${"ab".repeat(20)}`, k],
  );
  // The first endpoint is LAG blocks behind: it has not seen that transaction's block.
  proxy.setLag(LAG);
  const lagging = createPublicClient({ chain: foundry, transport: http(proxy.url) });
  expect(await lagging.getTransactionCount({ address: hot.address })).toBe(k);

  const adapter = createEvmAdapter(
    { ...chain, rpcUrls: [proxy.url, anvilUrl] },
    { common: ctx.common },
  );
  const leases: Lease[] = [];
  const send = storedDeploySender({
    common: ctx.common,
    databaseUrl: ctx.db.url,
    chain: { ...chain, rpcUrls: [proxy.url, anvilUrl] },
    client: adapter.client,
    rpc: adapter.rpc,
    account: hot,
    sendRawTransaction: adapter.sendRawTransaction,
    getFinalizedBlock: adapter.getFinalizedBlock,
    onLease: (lease) => leases.push(lease),
    pollMs: 50,
  });
  try {
    // Old code: "has signer transactions not mined yet (nonces k to k)".
    const done = await whileMining(
      publicClient,
      send({ name: "LaggingFirst", data: TINY_CONTRACT.init }),
    );
    expect(done.address).toBe(getContractAddress({ from: hot.address, nonce: BigInt(k + 1) }));
  } finally {
    proxy.setLag(null);
    for (const lease of leases) await lease.release();
  }
  expect(await publicClient.getTransactionCount({ address: hot.address })).toBe(k + 2);
});

/**
 * Deploy `name` from anvil's account 4 through [the lying proxy, anvil]: `afterSend` runs after
 * each send (with the count so far), `meanwhile` once the first bytes are out (before the deploy is
 * mined on); then the proxy catches up and the deploy is mined to its end.
 */
async function deployThroughProxy(
  feeModel: "eip1559" | "legacy",
  name: string,
  {
    afterSend = () => {},
    meanwhile,
  }: { afterSend?: (sends: number) => void; meanwhile: (sent: Hex[]) => Promise<void> | void },
) {
  const anvilUrl = ctx.anvils[0]!.rpcUrl;
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
    account: privateKeyToAccount(FEES_KEY),
    sendRawTransaction: async (raw) => {
      sent.push(raw);
      const hash = await adapter.sendRawTransaction(raw);
      afterSend(sent.length);
      return hash;
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
    await meanwhile(sent);
    proxy.setLag(null);
    const deployed = await whileMining(publicClient, done);
    expect(deployed.receipt.status).toBe("success");
  } finally {
    proxy.setLag(null);
    for (const lease of leases) await lease.release();
  }
}

/**
 * Deploy with the first endpoint three blocks behind two blocks of a 100 gwei base fee (its own
 * blocks at a low one); the first bytes sent and the next block's base fee when they were signed
 * go to `check` before the deploy is mined on (bytes below the base fee would wait for a
 * replacement).
 */
async function deployBehindRisingFees(
  feeModel: "eip1559" | "legacy",
  name: string,
  check: (first: ReturnType<typeof parseTransaction>, nextBaseFee: bigint) => void,
) {
  const rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  await rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("1"))]);
  await rpc("anvil_mine", ["0x3"]);
  await rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("100"))]);
  await rpc("anvil_mine", ["0x2"]);
  const nextBaseFee = (await publicClient.getBlock({ blockTag: "pending" })).baseFeePerGas!;
  proxy.setLag(3);
  const laggingBlock = await createPublicClient({ transport: http(proxy.url) }).getBlock();
  expect(laggingBlock.baseFeePerGas!).toBeLessThan(parseGwei("10"));
  await deployThroughProxy(feeModel, name, {
    meanwhile: (sent) => check(parseTransaction(sent[0]!), nextBaseFee),
  });
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
    // Passed on the old code too (viem's estimate at the `latest` block the adapter's transport
    // asks of the best head's node): kept so that a fee read moved to the first endpoint fails.
    expect(first.maxFeePerGas!).toBeGreaterThanOrEqual(nextBaseFee);
  });
});

it("a deploy followed while the first endpoint falls behind its block is not sent again", async () => {
  const rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  // Back to a low base fee: the deploy mines at once (automine).
  await rpc("anvil_setNextBlockBaseFeePerGas", [toHex(parseGwei("1"))]);
  await rpc("anvil_mine", ["0x1"]);
  await deployThroughProxy("eip1559", "FollowedBehind", {
    // Mined at once; from then on the first endpoint is behind that block.
    afterSend: (sends) => {
      if (sends === 1) proxy.setLag(LAG);
    },
    async meanwhile(sent) {
      // A second of polls while the first endpoint lacks the deploy's block (no new ones).
      await new Promise((r) => setTimeout(r, 1_000));
      // Old code: its receipt and counts from the lagging node ("not mined and not pending"):
      // the same bytes sent again every poll (17 here), each refused.
      expect(sent.length).toBe(1);
    },
  });
});
