/**
 * A run reads on-chain balances at its block as OUR chain has it: by the block's hash (EIP-1898,
 * `requireCanonical`), not by its number. Two real anvils of one chain id on different chains at
 * the same height: the indexer stored ours (the hot wallet holds 7 wei); the endpoint recon asks
 * first is on the other (it holds 9,000,007 there). Read by number, that endpoint answers for its
 * own block at that height: a false break, or a real shortfall hidden. By hash it does not know
 * our block and refuses; the next endpoint is asked, and with none that knows it the run fails:
 * a node that lacks our block is never a balance. The same for the reserves an attestation of
 * that run publishes (native and ERC-20), read at the run's block.
 */
import { type Address, type Hex, zeroAddress } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  call,
  deploy,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { type Anvil, startAnvil } from "../../ops/devstack/anvil.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createAttestor } from "../attest/attest.js";
import type { AttestationSender } from "../attest/sender.js";
import { createReconciler } from "./reconcile.js";
import { deployMulticall3 } from "./testing/multicall3.js";

const CHAIN_ID = 31337;
const HOT = freshAddress(611).toLowerCase();
const OURS = 7n;
const THEIRS = 9_000_007n;
/** What the hot wallet holds of the token on our chain and on theirs. */
const OUR_TOKENS = 5n;
const THEIR_TOKENS = 500n;

let ctx: TestContext;
let chain: ChainConfig;
let rpc: Rpc;
let other: Anvil;
let ingestor: Ingestor;
let multicall3: Hex;
let token: Address;
let block: number;

const hex = (n: bigint | number) => `0x${n.toString(16)}`;

/** A reconciler whose chain reads go to `rpcUrls`, in that priority order. */
function reconcilerOn(rpcUrls: string[], recon: ChainConfig["recon"]) {
  const reconChain: ChainConfig = { ...chain, rpcUrls, ...(recon ? { recon } : {}) };
  return {
    chain: reconChain,
    reconciler: createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool: ctx.db.pool,
      chains: adapterPerChain(ctx.common, () =>
        createEvmAdapter(reconChain, { common: ctx.common }),
      ),
    }),
  };
}

beforeAll(async () => {
  ctx = await createTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        config: { traces: false, confirmations: { kind: "blocks", blocks: 0 } },
      },
    ],
  });
  chain = ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  other = await startAnvil({ chainId: CHAIN_ID, port: 0 });
  const otherRpc = anvilRpc(other.rpcUrl);
  // The first transaction of each fresh anvil: Multicall3 at the same address on both chains.
  multicall3 = await deployMulticall3(chain.rpcUrls[0]!);
  expect(await deployMulticall3(other.rpcUrl)).toBe(multicall3);
  await watch(ctx.db.pool, CHAIN_ID, [{ address: HOT, kind: "hot", owner: "hot-1" }]);
  // The second: a token at the same address on both, of which the hot wallet gets a different
  // amount on each (and a different balance of ether): two chains.
  const [sender] = await rpc<Hex[]>("eth_accounts");
  token = await deploy(rpc, sender!, "TestToken", [1_000_000n]);
  expect(await deploy(otherRpc, sender!, "TestToken", [1_000_000n])).toBe(token);
  for (const [r, amount] of [
    [rpc, OUR_TOKENS],
    [otherRpc, THEIR_TOKENS],
  ] as const)
    await sendAndMine(r, {
      from: sender!,
      to: token,
      data: call("TestToken", "transfer", [HOT, amount]),
    });
  await rpc("anvil_setBalance", [HOT, hex(OURS)]);
  await otherRpc("anvil_setBalance", [HOT, hex(THEIRS)]);
  await rpc("anvil_mine", ["0x3"]);
  const ourHead = Number(BigInt(await rpc<Hex>("eth_blockNumber")));
  const theirHead = Number(BigInt(await otherRpc<Hex>("eth_blockNumber")));
  await otherRpc("anvil_mine", [hex(ourHead - theirHead + 2)]);
  const adapter = createEvmAdapter(chain, { common: ctx.common });
  ingestor = await createIngestor({ common: ctx.common, pool: ctx.db.pool, adapter });
  await syncToHead(ingestor, ctx.db.pool, rpc, CHAIN_ID);
  block = ourHead;
  // The other chain is past our block, holds another balance there, under another hash.
  const [ourBlock, theirBlock] = await Promise.all(
    [rpc, otherRpc].map((r) => r<{ hash: Hex }>("eth_getBlockByNumber", [hex(block), false])),
  );
  expect(theirBlock!.hash).not.toBe(ourBlock!.hash);
  expect(BigInt(await otherRpc<Hex>("eth_getBalance", [HOT, hex(block)]))).toBe(THEIRS);
});

afterAll(async () => {
  await ingestor?.stop();
  await other?.stop();
  await ctx?.cleanup();
});

const hotOnChain = (run: { checks: { scope: string; address: string | null; chain: bigint }[] }) =>
  run.checks.find((c) => c.scope === "hot" && c.address === HOT)?.chain;

describe("balance reads with an endpoint on another fork at the run's block", () => {
  const paths: [string, () => ChainConfig["recon"]][] = [
    [
      "balance loop",
      () => ({
        rotation: 2,
        batchSize: 10,
        requestsPerSecond: 1000,
        inFlight: 4,
        balanceLoop: true,
      }),
    ],
    [
      "Multicall3",
      () => ({
        rotation: 2,
        batchSize: 10,
        requestsPerSecond: 1000,
        inFlight: 4,
        balanceLoop: false,
        multicall3,
      }),
    ],
    [
      "JSON-RPC batches",
      () => ({
        rotation: 2,
        batchSize: 10,
        requestsPerSecond: 1000,
        inFlight: 4,
        balanceLoop: false,
      }),
    ],
  ];

  it.each(paths)("read our chain's balance, not the first endpoint's (%s)", async (_, recon) => {
    const { chain: reconChain, reconciler } = reconcilerOn(
      [other.rpcUrl, chain.rpcUrls[0]!],
      recon(),
    );
    const run = await reconciler.run({ chain: reconChain, block, full: true });
    expect(run.block).toBe(block);
    expect(hotOnChain(run)).toBe(OURS);
  });

  it.each(paths)("fail the run when no endpoint knows our block (%s)", async (_, recon) => {
    const { chain: reconChain, reconciler } = reconcilerOn([other.rpcUrl], recon());
    await expect(reconciler.run({ chain: reconChain, block, full: true })).rejects.toMatchObject({
      code: "CHAIN_RPC_ERROR",
    });
  });
});

/** A signer that must not be asked (figures write nothing). */
const noSender: AttestationSender = {
  requestTransaction: async () => {
    throw new Error("not expected");
  },
  getTxOutcomes: async () => [],
};

describe("attestation reserves at a run's block with an endpoint on another fork", () => {
  it.each([
    ["ether", zeroAddress as Address, OURS],
    ["the token", undefined, OUR_TOKENS],
  ])("are our chain's balances (%s)", async (_, asset, ours) => {
    const { chain: reconChain, reconciler } = reconcilerOn([chain.rpcUrls[0]!], undefined);
    const run = await reconciler.run({ chain: reconChain, block, full: true });
    const attestor = createAttestor({
      common: ctx.common,
      pool: ctx.db.pool,
      sender: noSender,
      chains: adapterPerChain(ctx.common, () =>
        createEvmAdapter(
          { ...chain, rpcUrls: [other.rpcUrl, chain.rpcUrls[0]!] },
          { common: ctx.common },
        ),
      ),
    });
    const figures = await attestor.figures(chain, run.runId, asset ?? token);
    expect(figures.block).toBe(block);
    expect(figures.addresses.map((a) => [a.address.toLowerCase(), a.balance])).toEqual([
      [HOT, ours],
    ]);
    expect(figures.reserves).toBe(ours);
  });
});
