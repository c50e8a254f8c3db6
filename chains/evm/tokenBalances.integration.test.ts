/**
 * getTokenBalances at a past block, on both of its paths: JSON-RPC batches of eth_call (a local
 * chain, no Multicall3 in the registry) and Multicall3's aggregate3 (chain id 1, whose registry
 * entry has it; anvil gets its code at the canonical address). A lagging endpoint is not asked for
 * a block it lacks (the next one is), and an answer without a balance is ours to name:
 * CHAIN_BALANCE_UNKNOWN, never 0 and never a decoding error of viem's.
 */
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { anvilRpc, call, deploy, freshAddress, sendAndMine } from "../../indexers/testing/chain.js";
import { deployMulticall3 } from "../../ledger/recon/testing/multicall3.js";
import { type Anvil, startAnvil } from "../../ops/devstack/anvil.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import type { ChainConfig } from "../config.js";
import { MULTICALL3_ADDRESS, multicall3For } from "../registry.js";
import { createEvmAdapter, type EvmAdapter } from "./createEvmAdapter.js";

let ctx: TestContext;
const started: Anvil[] = [];

/** A chain of `chainId`: one anvil we write to, and one left behind at block 0 (lagging). */
type Setup = { chain: ChainConfig; url: string; lagging: string };
const setups = new Map<number, Setup>();

async function setUp(chainId: number): Promise<Setup> {
  const [ours, lagging] = await Promise.all([0, 1].map(() => startAnvil({ chainId, port: 0 })));
  started.push(ours!, lagging!);
  const chain: ChainConfig = { ...ctx.config.chains[0]!, chainId, rpcUrls: [ours!.rpcUrl] };
  return { chain, url: ours!.rpcUrl, lagging: lagging!.rpcUrl };
}

const adapterOf = (s: Setup, urls = [s.url]): EvmAdapter =>
  createEvmAdapter({ ...s.chain, rpcUrls: urls }, { common: ctx.common });

beforeAll(async () => {
  ctx = await createTestContext();
  setups.set(31337, await setUp(31337));
  const mainnet = await setUp(1);
  // Multicall3 where the registry says chain 1 has it (anvil has none): its code, from block 1 on
  // (block 0 has none).
  const rpc = anvilRpc(mainnet.url);
  const deployed = await deployMulticall3(mainnet.url);
  await rpc("anvil_setCode", [
    MULTICALL3_ADDRESS,
    await rpc<Hex>("eth_getCode", [deployed, "latest"]),
  ]);
  setups.set(1, mainnet);
  expect(multicall3For(1)).toBe(MULTICALL3_ADDRESS);
  expect(multicall3For(31337)).toBeUndefined();
});

afterAll(async () => {
  await Promise.all(started.map((a) => a.stop()));
  await ctx?.cleanup();
});

describe.each([
  ["JSON-RPC batches", 31337],
  ["Multicall3", 1],
])("getTokenBalances through %s", (_, chainId) => {
  const setup = () => setups.get(chainId)!;

  /** A token whose supply is with the first account, 40 of it sent to a fresh holder at `block`. */
  async function token(): Promise<{ token: Address; holders: Address[]; block: bigint }> {
    const rpc = anvilRpc(setup().url);
    const [from] = await rpc<Hex[]>("eth_accounts");
    const token = await deploy(rpc, from!, "TestToken", [1_000_000n]);
    const holder = freshAddress(chainId + 1);
    const r = await sendAndMine(rpc, {
      from: from!,
      to: token,
      data: call("TestToken", "transfer", [holder, 40n]),
    });
    await rpc("anvil_mine", ["0x3"]);
    return { token, holders: [from!, holder], block: BigInt(r.blockNumber) };
  }

  it("reads at a past block from an endpoint that has it, not from one behind it", async () => {
    const { token: t, holders, block } = await token();
    // The lagging endpoint first: it has no block past 0 to answer from.
    const adapter = adapterOf(setup(), [setup().lagging, setup().url]);
    expect(await adapter.getTokenBalances({ token: t, holders, blockNumber: block })).toEqual([
      999_960n,
      40n,
    ]);
  });

  it("reads the block named by its hash; a hash no endpoint has is no balance", async () => {
    const { token: t, holders, block } = await token();
    const rpc = anvilRpc(setup().url);
    const { hash } = await rpc<{ hash: Hex }>("eth_getBlockByNumber", [
      `0x${block.toString(16)}`,
      false,
    ]);
    const adapter = adapterOf(setup(), [setup().lagging, setup().url]);
    const read = (blockHash: Hex) =>
      adapter.getTokenBalances({ token: t, holders, blockNumber: block, blockHash });
    expect(await read(hash)).toEqual([999_960n, 40n]);
    await expect(read(`0x${"11".repeat(32)}`)).rejects.toMatchObject({ code: "CHAIN_RPC_ERROR" });
  });

  it("an answer without a balance is CHAIN_BALANCE_UNKNOWN", async () => {
    const { token: t, holders, block } = await token();
    const adapter = adapterOf(setup());
    // No code at the token address, now or (deployed 2 blocks before the transfer) then.
    await expect(
      adapter.getTokenBalances({ token: freshAddress(chainId + 2), holders }),
    ).rejects.toMatchObject({ code: "CHAIN_BALANCE_UNKNOWN" });
    await expect(
      adapter.getTokenBalances({ token: t, holders, blockNumber: block - 2n }),
    ).rejects.toMatchObject({ code: "CHAIN_BALANCE_UNKNOWN" });
  });
});

it("a block before Multicall3 had code answers no balance: CHAIN_BALANCE_UNKNOWN", async () => {
  const setup = setups.get(1)!;
  const rpc = anvilRpc(setup.url);
  expect(await rpc<Hex>("eth_getCode", [MULTICALL3_ADDRESS, "0x0"])).toBe("0x");
  await expect(
    adapterOf(setup).getTokenBalances({
      token: freshAddress(3),
      holders: [freshAddress(4)],
      blockNumber: 0n,
    }),
  ).rejects.toMatchObject({ code: "CHAIN_BALANCE_UNKNOWN" });
});

it("reads thousands of holders through Multicall3 in chunks, each balance at its holder's place", async () => {
  // A sweep's candidates can be thousands: one aggregate3 of them all could pass a node's gas cap
  // for calls, so they go 500 at a time; a chunk's offset wrong would move balances between holders.
  const setup = setups.get(1)!;
  const rpc = anvilRpc(setup.url);
  const [from] = await rpc<Hex[]>("eth_accounts");
  const t = await deploy(rpc, from!, "TestToken", [1_000_000n]);
  const holders = Array.from({ length: 1_201 }, (_, i) => freshAddress(10_000 + i));
  for (const [i, amount] of [
    [499, 7n],
    [500, 11n],
    [1_200, 13n],
  ] as const)
    await sendAndMine(rpc, {
      from: from!,
      to: t,
      data: call("TestToken", "transfer", [holders[i]!, amount]),
    });
  const balances = await adapterOf(setup).getTokenBalances({ token: t, holders });
  expect(balances).toHaveLength(1_201);
  expect([balances[499], balances[500], balances[1_200]]).toEqual([7n, 11n, 13n]);
  expect(balances.reduce((a, b) => a + b, 0n)).toBe(31n);
});
