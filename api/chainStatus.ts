/**
 * Chains and assets as the API shows them: configured chains with the RPC head, the indexer's
 * checkpoint and the lag between them; assets (native + listed tokens) with their ids.
 */
import { getAddress, type PublicClient, zeroAddress } from "viem";
import type { ChainConfig } from "../chains/index.js";
import { endpointLabel, publicClientFor } from "../chains/index.js";
import type { Config } from "../foundation/config.js";
import type { Pool } from "../foundation/db.js";
import { indexedHeights, readHalts } from "../indexers/index.js";
import { InvalidFieldError } from "./errors.js";

export type Asset = {
  assetId: string;
  chainId: number;
  chain: string;
  address: `0x${string}`;
  symbol: string;
  decimals: number;
  native: boolean;
};

export function assetsOf(config: Pick<Config, "chains">): Asset[] {
  return config.chains.flatMap((c) => [
    {
      assetId: `${c.chainId}:${zeroAddress}`,
      chainId: c.chainId,
      chain: c.key,
      address: zeroAddress,
      symbol: c.nativeSymbol,
      decimals: c.nativeDecimals,
      native: true,
    },
    ...c.tokens.map((t) => ({
      assetId: `${c.chainId}:${t.address.toLowerCase()}`,
      chainId: c.chainId,
      chain: c.key,
      address: getAddress(t.address),
      symbol: t.symbol,
      decimals: t.decimals,
      native: false,
    })),
  ]);
}

/** The chain a request names (key or id), or UNKNOWN_CHAIN naming the field. */
export function resolveChain(
  config: Pick<Config, "chains">,
  ref: string,
  field: string,
): ChainConfig {
  const chain = config.chains.find((c) => c.key === ref || String(c.chainId) === ref);
  if (!chain)
    throw new InvalidFieldError(
      "UNKNOWN_CHAIN",
      field,
      `unknown chain "${ref}" (known: ${config.chains.map((c) => `${c.key} (${c.chainId})`).join(", ")})`,
    );
  return chain;
}

/**
 * The listed asset (`native`, a symbol, or a token address) on a chain, or UNKNOWN_ASSET; a symbol
 * two listed assets share (bridged and native USDC) is ASSET_AMBIGUOUS, never the first one listed.
 */
export function resolveAsset(
  config: Pick<Config, "chains">,
  chain: ChainConfig,
  ref: string,
  field: string,
): Asset {
  const assets = assetsOf(config).filter((a) => a.chainId === chain.chainId);
  const lower = ref.toLowerCase();
  const matches = assets.filter(
    (a) =>
      (lower === "native" && a.native) ||
      a.address.toLowerCase() === lower ||
      a.symbol.toLowerCase() === lower ||
      a.assetId === lower,
  );
  const asset = matches[0];
  if (matches.some((a) => a.assetId !== asset?.assetId))
    throw new InvalidFieldError(
      "ASSET_AMBIGUOUS",
      field,
      `asset "${ref}" names more than one asset listed on ${chain.key} (${matches.map((a) => a.address).join(", ")}): name it by its address`,
    );
  if (!asset)
    throw new InvalidFieldError(
      "UNKNOWN_ASSET",
      field,
      `asset "${ref}" is not listed on ${chain.key} (listed: ${assets.map((a) => a.symbol).join(", ")})`,
    );
  return asset;
}

/** The best head among a chain's endpoints and the endpoint (scheme, host, port) that showed it. */
export type ChainHead = { head: bigint; endpoint: string };

export type ChainHeads = { head: (chain: ChainConfig) => Promise<ChainHead | null> };

/**
 * Every endpoint of the chain is asked for its head at once, each with a short timeout, and the
 * highest answer wins: a lagging first node would understate the lag and a chain could look healthy.
 * Only when no endpoint answers is the head unknown (`null`), never an error.
 */
export function createChainHeads(timeoutMs = 1500): ChainHeads {
  const clients = new Map<string, PublicClient>();
  const clientFor = (url: string) => {
    let client = clients.get(url);
    if (!client) {
      client = publicClientFor(url, { timeoutMs, retryCount: 0 });
      clients.set(url, client);
    }
    return client;
  };
  return {
    async head(chain) {
      const answers = await Promise.all(
        chain.rpcUrls.map(async (url) => {
          try {
            return {
              head: await clientFor(url).getBlockNumber({ cacheTime: 0 }),
              endpoint: endpointLabel(url),
            };
          } catch {
            return null;
          }
        }),
      );
      let best: ChainHead | null = null;
      for (const a of answers) if (a && (best === null || a.head > best.head)) best = a;
      return best;
    },
  };
}

export type ChainStatus = {
  key: string;
  chainId: number;
  name: string;
  confirmations: ChainConfig["confirmations"];
  /** The best head among the chain's endpoints; null when none answered. */
  head: bigint | null;
  /** The endpoint that showed `head` (scheme, host and port: paths often carry API keys). */
  headEndpoint: string | null;
  indexed: bigint | null;
  lag: bigint | null;
  maxLagBlocks: number;
  /** The chain's open halt (a reorg reached a final block): nothing is ingested until resumed. */
  halted: { since: Date; reason: string } | null;
};

export async function chainStatuses(
  config: Pick<Config, "chains">,
  pool: Pool,
  heads: ChainHeads,
): Promise<ChainStatus[]> {
  const [indexed, halts] = await Promise.all([indexedHeights(pool), readHalts(pool)]);
  return Promise.all(
    config.chains.map(async (c) => {
      const best = await heads.head(c);
      const head = best?.head ?? null;
      const at = indexed.get(c.chainId) ?? null;
      const halt = halts.find((h) => h.chainId === c.chainId);
      return {
        key: c.key,
        chainId: c.chainId,
        name: c.name,
        confirmations: c.confirmations,
        head,
        headEndpoint: best?.endpoint ?? null,
        indexed: at,
        lag: head !== null && at !== null ? (head > at ? head - at : 0n) : null,
        maxLagBlocks: c.maxLagBlocks,
        halted: halt ? { since: halt.haltedAt, reason: halt.reason } : null,
      };
    }),
  );
}
