/**
 * Per-endpoint head tracking against a real anvil behind the lying-chain proxy: a lagging endpoint
 * is not asked for blocks it lacks (not even first in priority), one answering null for a block is
 * marked behind and the read moves on, eth_getLogs never goes to an endpoint below the range's end
 * (it would answer "no logs"), and with no endpoint at the block the read fails with
 * NoHealthyEndpointError instead of returning nothing. An endpoint of another chain (its
 * eth_chainId) is never asked a read.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import { anvilRpc, call, deploy, type Rpc, sendAndMine } from "../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../ops/devstack/anvil.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import type { ChainConfig } from "./config.js";
import { createEvmAdapter, NoHealthyEndpointError, RpcUnavailableError } from "./index.js";
import { type FaultyProxy, startFaultyProxy } from "./testing/faultyProxy.js";

let ctx: TestContext;
let rpc: Rpc;
let lagging: FaultyProxy;
let good: FaultyProxy;
let chain: ChainConfig;
let token: Hex;
let head: bigint;

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: 31337 }] });
  rpc = anvilRpc(ctx.anvils[0]!.rpcUrl);
  lagging = await startFaultyProxy(ctx.anvils[0]!.rpcUrl);
  good = await startFaultyProxy(ctx.anvils[0]!.rpcUrl);
  lagging.setLag(5);
  const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
  token = await deploy(rpc, from, "TestToken", [10n ** 24n]);
  for (let i = 1n; i <= 10n; i++)
    await sendAndMine(rpc, {
      from,
      to: token,
      data: call("TestToken", "transfer", [`0x${"11".repeat(20)}`, i]),
    });
  head = BigInt(await rpc<Hex>("eth_blockNumber"));
  chain = { ...ctx.config.chains[0]!, rpcUrls: [lagging.url, good.url] };
});

afterAll(async () => {
  await lagging?.close();
  await good?.close();
  await ctx?.cleanup();
});

it("tracks each endpoint's head and skips the lagging one for blocks it lacks", async () => {
  // The lagging head is believed for a minute here, not the default second: on a loaded machine
  // more than a second passed between the two reads once, and the block read rightly tried the
  // lagging endpoint again (its head behind was old news), a third call where two were counted.
  const adapter = createEvmAdapter(chain, { common: ctx.common }, { headProbeIntervalMs: 60_000 });
  expect(await adapter.getHead()).toBe(head - 5n); // the first endpoint's answer
  const before = { lagging: lagging.requests(), good: good.requests() };
  const [block] = await adapter.getBlocks([head]);
  expect(BigInt(block!.number)).toBe(head);
  expect(lagging.requests()).toBe(before.lagging); // not asked at all
  expect(good.requests()).toBe(before.good + 2); // its chain id (first use), then the block
  // It still serves what it has, in priority order.
  const [old] = await adapter.getBlocks([head - 5n]);
  expect(BigInt(old!.number)).toBe(head - 5n);
  expect(lagging.requests()).toBe(before.lagging + 1);
  expect(adapter.rpc.heads().map((h) => h.head)).toEqual([head - 5n, null]);
});

it("the endpoint whose head raised the best head is not asked again for blocks above it, however the clock ticks meanwhile", async () => {
  // A loaded machine: every reading of the clock a millisecond later than the one before. Its
  // head and the best head's rise were once dated by two readings, so the lagging endpoint's head
  // looked older than the best head it raised itself (as if the chain had moved since), and the
  // block read asked it again (CI beside a simulation: 3 calls where 2 were counted).
  let at = Date.now();
  const adapter = createEvmAdapter(
    chain,
    { common: ctx.common },
    { headProbeIntervalMs: 60_000, clock: () => at++ },
  );
  expect(await adapter.getHead()).toBe(head - 5n);
  const before = lagging.requests();
  const [block] = await adapter.getBlocks([head]);
  expect(BigInt(block!.number)).toBe(head);
  expect(lagging.requests()).toBe(before);
});

it("an endpoint answering null for a block is marked behind and the read moves on", async () => {
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  // Head unknown: a block read just tries it (the null answer is detectable).
  const [block] = await adapter.getBlocks([head]);
  expect(BigInt(block!.number)).toBe(head);
  expect(adapter.rpc.heads()[0]!.head).toBe(head - 1n);
});

it("eth_getLogs asks an endpoint of unknown head its head first, never reading a range it lacks", async () => {
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  const logs = await adapter.getTransferLogs({ fromBlock: 0n, toBlock: head, tokens: [token] });
  const direct = await rpc<unknown[]>("eth_getLogs", [
    { fromBlock: "0x0", toBlock: `0x${head.toString(16)}`, address: token },
  ]);
  expect(logs.length).toBe(direct.length);
  expect(logs.length).toBe(11); // the mint and 10 transfers
  expect(adapter.rpc.heads()[0]!.head).toBe(head - 5n);
});

it("with no endpoint at the block, the read fails with NoHealthyEndpointError", async () => {
  const adapter = createEvmAdapter({ ...chain, rpcUrls: [lagging.url] }, { common: ctx.common });
  await adapter.getHead();
  const error = await adapter.getBlocks([head]).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(NoHealthyEndpointError);
  expect((error as NoHealthyEndpointError).code).toBe("CHAIN_NO_HEALTHY_ENDPOINT");
});

it("an endpoint of another chain (its eth_chainId) is set aside before any read, counted, and never answers one", async () => {
  // A testnet's URL first in the list: its blocks would be ingested as ours.
  let testnet: Anvil | undefined;
  try {
    testnet = await startAnvil({ chainId: 11155111, port: 0 });
    const otherChain = async () =>
      (
        await ctx.common.metrics.registry
          .getSingleMetric("custody_rpc_endpoint_other_chain_total")
          ?.get()
      )?.values
        .filter((v) => v.labels.chain_id === "31337")
        .reduce((n, v) => n + v.value, 0) ?? 0;
    const before = await otherChain();
    const adapter = createEvmAdapter(
      { ...chain, rpcUrls: [testnet.rpcUrl, good.url] },
      { common: ctx.common },
    );
    // The testnet is at block 0; our chain is at `head`.
    expect(await adapter.getHead()).toBe(head);
    const [block] = await adapter.getBlocks([head]);
    expect(BigInt(block!.number)).toBe(head);
    expect(adapter.rpc.heads().map((h) => h.head)).toEqual([null, head]);
    expect((await otherChain()) - before).toBe(1);

    // Alone, it answers nothing: the read fails rather than return the other chain's head.
    const alone = createEvmAdapter({ ...chain, rpcUrls: [testnet.rpcUrl] }, { common: ctx.common });
    const error = await alone.getHead().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcUnavailableError);
    expect((await otherChain()) - before).toBe(2);
  } finally {
    await testnet?.stop();
  }
});
