/**
 * `contracts deploy` run again once the factory is recorded, with a syncing first endpoint: the
 * recorded factory is checked on chain (its init code hash and hot wallet) before "already
 * deployed" is said. The check read the factory at `latest` of the first endpoint, whatever its
 * head: a node syncing below the deploy's block has no code there, and the run failed with viem's
 * "returned no data". It reads at the deploy's block now, asked of a node at or past it.
 */
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { type LyingProxy, startLyingProxy } from "../../chains/testing/lyingChain/index.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { deployForwarderFactory } from "./index.js";

const HOT_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const hot = privateKeyToAccount(HOT_KEY);

let ctx: TestContext;
let syncing: LyingProxy;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  syncing = await startLyingProxy(ctx.anvils[0]!.rpcUrl);
});

afterAll(async () => {
  await syncing?.close();
  await ctx?.cleanup();
});

describe("contracts deploy with a syncing first endpoint", () => {
  it("says the recorded factory is deployed, checked at its deploy block", async () => {
    const client = createPublicClient({ transport: http(ctx.anvils[0]!.rpcUrl) });
    const chain = ctx.config.chains[0]!;
    const first = await deployForwarderFactory({
      common: ctx.common,
      pool: ctx.db.pool,
      chain,
      client: client as never,
      account: hot,
      sendRawTransaction: (raw) =>
        client.request({ method: "eth_sendRawTransaction", params: [raw] }),
    });
    expect(first.deployed).toBe(true);
    await client.request({ method: "anvil_mine" as never, params: ["0x3"] as never });
    syncing.setLag("syncing");
    const adapter = createEvmAdapter(
      { ...chain, rpcUrls: [syncing.url, ctx.anvils[0]!.rpcUrl] },
      { common: ctx.common },
    );
    // old code: ContractFunctionZeroDataError: The contract function "FORWARDER_INIT_CODE_HASH"
    // returned no data ("0x").
    const again = await deployForwarderFactory({
      common: ctx.common,
      pool: ctx.db.pool,
      chain,
      client: adapter.client,
      account: hot,
      sendRawTransaction: adapter.sendRawTransaction,
    });
    expect(again.deployed).toBe(false);
    expect(again.contract.address).toBe(first.contract.address);
  });
});
