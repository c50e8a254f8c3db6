/**
 * The chain registry: built-in definitions of the chains we support (public RPC placeholders that a
 * deployment replaces with its providers' URLs) and lookup of the configured chains.
 * The config file (`chains[]`, validated by chains/config.ts's schema) is the source of truth at
 * run time; `knownChains` gives the defaults a deployment starts from and facts the config does not
 * carry (multicall3).
 * A public chain's facts (id, name, native currency, block explorers, Multicall3 and its deploy
 * block) come from viem's definition (`viem/chains`); this file keeps only what viem lacks: our
 * confirmation and reorg rules, polling and lag settings, listed tokens, trace support notes, and
 * the placeholder RPCs (publicnode, not viem's defaults).
 */
import { type Address, type Chain, getAddress } from "viem";
import { arbitrum, base, bsc, mainnet, optimism, polygon } from "viem/chains";
import type { z } from "zod";
import { type ChainConfig, chainSchema } from "./config.js";

/** Multicall3 is deployed at the same address on every public chain we support (not on anvil). */
export const MULTICALL3_ADDRESS: Address = getAddress(mainnet.contracts.multicall3.address);

export type TracesMethod = "trace_block" | "debug_traceBlockByHash";

/**
 * Whether the built-in definition records internal value transfers, and why. `definition.traces`
 * is only true where the configured RPC is known to serve a trace method. The public placeholder
 * endpoints are not (free public RPCs generally refuse the debug_ and trace_ namespaces), so public
 * chains ship with traces off: a native deposit sent through a contract (Safe, ERC-4337 wallet,
 * exchange batch payout) is then NOT seen by the indexer and is found only by reconciliation as an
 * `unattributed_inflow` break at final blocks. A deployment whose provider or own node serves a
 * method sets `traces: true` and `tracesMethod` in its config file.
 */
export type TraceSupport = {
  /** Methods this chain's common node software serves (what to set `tracesMethod` to). */
  methods: TracesMethod[];
  note: string;
};

export type KnownChain = {
  definition: ChainConfig;
  /** Where Multicall3 is deployed (checksummed); undefined on local chains. */
  multicall3?: Address;
  /**
   * viem's definition of a public chain, where its facts come from: block explorers, Multicall3's
   * deploy block (`contracts.multicall3.blockCreated`). Undefined on local chains.
   */
  viemChain?: Chain;
  traceSupport: TraceSupport;
};

const PUBLIC_RPC_NO_TRACES =
  "traces off: the placeholder public RPC is not known to serve trace methods; without traces, native value sent through contracts is found only by reconciliation (unattributed_inflow)";

/** A local chain: every field is ours. */
function define(raw: Record<string, unknown>, traceSupport: TraceSupport): KnownChain {
  return { definition: chainSchema.parse(raw), traceSupport };
}

/** What a public chain's definition adds to viem's facts. */
type Ours = Omit<
  z.input<typeof chainSchema>,
  "chainId" | "name" | "nativeSymbol" | "nativeDecimals"
>;

/** A public chain: viem's facts, then ours (rules, settings, tokens, placeholder RPC). */
function definePublic(viemChain: Chain, ours: Ours, traceSupport: TraceSupport): KnownChain {
  const definition = chainSchema.parse({
    chainId: viemChain.id,
    name: viemChain.name,
    nativeSymbol: viemChain.nativeCurrency.symbol,
    nativeDecimals: viemChain.nativeCurrency.decimals,
    traces: false,
    ...ours,
  });
  const multicall3 = viemChain.contracts?.multicall3?.address;
  return {
    definition,
    ...(multicall3 ? { multicall3: getAddress(multicall3) } : {}),
    viemChain,
    traceSupport,
  };
}

const ANVIL_TRACES: TraceSupport = {
  methods: ["trace_block", "debug_traceBlockByHash"],
  note: "traces on: anvil serves both trace_block and debug_traceBlockByHash (callTracer)",
};

/**
 * Confirmation rules: Ethereum and the OP-stack/Arbitrum rollups use the `finalized` tag (L1
 * finality); BSC and Polygon PoS finalise quickly enough that a block count is the norm there.
 */
export const knownChains: Readonly<Record<string, KnownChain>> = {
  ethereum: definePublic(
    mainnet,
    {
      key: "ethereum",
      rpcUrls: ["https://ethereum-rpc.publicnode.com"],
      confirmations: { kind: "finalized" },
      reorgWindow: 64,
      blockTimeMs: 12_000,
      feeModel: "eip1559",
      maxLagBlocks: 10,
      tokens: [
        { address: "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", symbol: "USDC", decimals: 6 },
        { address: "0xdAC17F958D2ee523a2206206994597C13D831ec7", symbol: "USDT", decimals: 6 },
      ],
    },
    {
      methods: ["debug_traceBlockByHash", "trace_block"],
      note: `${PUBLIC_RPC_NO_TRACES}; geth serves debug_traceBlockByHash (callTracer); erigon, reth and nethermind also serve trace_block`,
    },
  ),
  bsc: definePublic(
    bsc,
    {
      key: "bsc",
      rpcUrls: ["https://bsc-rpc.publicnode.com"],
      confirmations: { kind: "blocks", blocks: 15 },
      reorgWindow: 64,
      blockTimeMs: 3_000,
      feeModel: "legacy",
      maxLagBlocks: 40,
      tokens: [
        { address: "0x55d398326f99059fF775485246999027B3197955", symbol: "USDT", decimals: 18 },
      ],
    },
    {
      methods: ["debug_traceBlockByHash", "trace_block"],
      note: `${PUBLIC_RPC_NO_TRACES}; bsc-geth serves debug_traceBlockByHash (callTracer); erigon/reth BSC builds serve trace_block`,
    },
  ),
  polygon: definePublic(
    polygon,
    {
      key: "polygon",
      rpcUrls: ["https://polygon-bor-rpc.publicnode.com"],
      confirmations: { kind: "blocks", blocks: 128 },
      reorgWindow: 256,
      blockTimeMs: 2_000,
      feeModel: "eip1559",
      maxLagBlocks: 60,
      tokens: [
        { address: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", symbol: "USDC", decimals: 6 },
      ],
    },
    {
      methods: ["debug_traceBlockByHash", "trace_block"],
      note: `${PUBLIC_RPC_NO_TRACES}; bor serves debug_traceBlockByHash (callTracer); erigon serves trace_block`,
    },
  ),
  arbitrum: definePublic(
    arbitrum,
    {
      key: "arbitrum",
      rpcUrls: ["https://arbitrum-one-rpc.publicnode.com"],
      confirmations: { kind: "finalized" },
      reorgWindow: 64,
      blockTimeMs: 250,
      feeModel: "eip1559",
      maxLagBlocks: 400,
      tokens: [
        { address: "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", symbol: "USDC", decimals: 6 },
      ],
    },
    {
      methods: ["debug_traceBlockByHash"],
      note: `${PUBLIC_RPC_NO_TRACES}; nitro serves debug_traceBlockByHash (callTracer) for post-Nitro blocks; its trace_block equivalent (arbtrace_block) covers only pre-Nitro history`,
    },
  ),
  base: definePublic(
    base,
    {
      key: "base",
      rpcUrls: ["https://base-rpc.publicnode.com"],
      confirmations: { kind: "finalized" },
      reorgWindow: 64,
      blockTimeMs: 2_000,
      feeModel: "eip1559",
      maxLagBlocks: 60,
      tokens: [
        { address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", symbol: "USDC", decimals: 6 },
      ],
    },
    {
      methods: ["debug_traceBlockByHash", "trace_block"],
      note: `${PUBLIC_RPC_NO_TRACES}; op-geth serves debug_traceBlockByHash (callTracer); op-reth also serves trace_block`,
    },
  ),
  optimism: definePublic(
    optimism,
    {
      key: "optimism",
      rpcUrls: ["https://optimism-rpc.publicnode.com"],
      confirmations: { kind: "finalized" },
      reorgWindow: 64,
      blockTimeMs: 2_000,
      feeModel: "eip1559",
      maxLagBlocks: 60,
      tokens: [
        { address: "0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", symbol: "USDC", decimals: 6 },
      ],
    },
    {
      methods: ["debug_traceBlockByHash", "trace_block"],
      note: `${PUBLIC_RPC_NO_TRACES}; op-geth serves debug_traceBlockByHash (callTracer); op-reth also serves trace_block`,
    },
  ),
  "local-a": define(
    {
      key: "local-a",
      chainId: 31337,
      name: "Local anvil A (1 s blocks, EIP-1559, traces)",
      rpcUrls: ["http://127.0.0.1:8545"],
      confirmations: { kind: "blocks", blocks: 3 },
      reorgWindow: 16,
      blockTimeMs: 1_000,
      feeModel: "eip1559",
      traces: true,
    },
    ANVIL_TRACES,
  ),
  "local-b": define(
    {
      key: "local-b",
      chainId: 31338,
      name: "Local anvil B (2 s blocks, legacy gas)",
      rpcUrls: ["http://127.0.0.1:8546"],
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 16,
      blockTimeMs: 2_000,
      feeModel: "legacy",
      traces: true,
    },
    ANVIL_TRACES,
  ),
};

/** Multicall3 address for a chain id, if it is a known public chain. */
export function multicall3For(chainId: number): Address | undefined {
  return Object.values(knownChains).find((c) => c.definition.chainId === chainId)?.multicall3;
}
