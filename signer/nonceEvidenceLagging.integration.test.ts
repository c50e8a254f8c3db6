/**
 * `tx-requests fail`'s nonce evidence reads at the best head of all endpoints: a first endpoint
 * that lags (a provider's backend behind, answering as if its head were 5 blocks back) set the
 * height it read at, and a nonce used since was "unused" there, so an operator could fail a
 * request that mined and send its amount again. Real anvil, the first endpoint a lagging proxy in
 * front of it, the second the anvil.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createRpcClient } from "../chains/rpc.js";
import { type FaultyProxy, startFaultyProxy } from "../chains/testing/faultyProxy.js";
import { anvilRpc, freshAddress, sendAndMine } from "../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { readNonceEvidence } from "./nonceEvidence.js";

let ctx: TestContext;
let anvil: Anvil;
let lagging: FaultyProxy;

beforeAll(async () => {
  ctx = await createTestContext();
  anvil = await startAnvil({ chainId: 31337, port: 0 });
  lagging = await startFaultyProxy(anvil.rpcUrl);
});

afterAll(async () => {
  await lagging?.close();
  await anvil?.stop();
  await ctx?.cleanup();
});

it("a nonce used within the first endpoint's lag is consumed, never unused", async () => {
  const rpc = anvilRpc(anvil.rpcUrl);
  const [, from] = await rpc<Hex[]>("eth_accounts");
  await rpc("anvil_mine", ["0xa"]);
  const sent = await sendAndMine(rpc, { from: from!, to: freshAddress(7), value: 1n });
  lagging.setLag(5);
  const chain = { ...ctx.config.chains[0]!, chainId: 31337, rpcUrls: [lagging.url, anvil.rpcUrl] };
  const client = createRpcClient({ chainId: 31337, urls: chain.rpcUrls });
  // before the fix: { kind: "unused", head: 6n, latestCount: 0n } (the first endpoint's head)
  expect(await readNonceEvidence(chain, client, from!, 0n, null)).toMatchObject({
    kind: "consumed",
    blockNumber: BigInt(sent.blockNumber),
    txHash: sent.transactionHash.toLowerCase(),
    final: false,
  });
});
