/**
 * A hot wallet's deploy (the CLI's stored deploy, in process) with the first endpoint behind the
 * chain: the wallet's newest transaction, the signer's, is mined in a block that endpoint does not
 * have yet. The deploy takes its nonce from a node at the best head (every endpoint asked its
 * head), not from the first endpoint's `latest`: before, that node counted the signer's mined
 * transaction unused and the deploy was refused, blaming signer transactions "not mined yet".
 * Real anvil behind the lying proxy, real Postgres.
 */
import {
  createPublicClient,
  createWalletClient,
  getContractAddress,
  http,
  type PublicClient,
  parseEther,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createEvmAdapter } from "../chains/index.js";
import { type FaultyProxy, startFaultyProxy } from "../chains/testing/faultyProxy.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import type { Lease } from "./lease.js";
import { storedDeploySender } from "./storedDeploy.js";
import { TINY_CONTRACT, whileMining } from "./testing/killedDeploy.js";

// Anvil's account 3: funded, used by no other part of this file's chain.
const HOT_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const hot = privateKeyToAccount(HOT_KEY);
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
