/**
 * The Ponder app's deployment file from a running custody's own records: the chain's config entry
 * (RPC, listed tokens, cold address) and the contracts it deployed (chain.contracts, read through
 * the indexers' exported `getContract`). What `npm --prefix subgraphs run serve` (run.ts) writes before it
 * starts the app beside the service.
 */
import type { ChainConfig } from "../../chains/config.js";
import type { Pool } from "../../foundation/db.js";
import { FORWARDER_FACTORY, getContract } from "../../indexers/index.js";
import { type CustodyDeployment, parseDeployment } from "./deployment.js";

export async function deploymentFromDatabase(
  pool: Pool,
  chain: ChainConfig,
  options: { pollingIntervalMs?: number } = {},
): Promise<CustodyDeployment> {
  const factory = await getContract(pool, chain.chainId, FORWARDER_FACTORY);
  const attestor = await getContract(pool, chain.chainId, "ReservesAttestor");
  if (!factory) throw new Error(`chain ${chain.key}: no ForwarderFactory deployed yet`);
  return parseDeployment({
    chain: chain.key,
    chainId: chain.chainId,
    rpcUrls: chain.rpcUrls,
    startBlock: Number(factory.blockNumber),
    forwarderFactory: factory.address,
    // Not deployed yet (e.g. `custody-node dev`): the zero address emits nothing; rewrite the file
    // and restart the app once the attestor exists.
    reservesAttestor: attestor?.address ?? "0x0000000000000000000000000000000000000000",
    attestorStartBlock: Number(attestor?.blockNumber ?? factory.blockNumber),
    hotWallets: [factory.hotWallet],
    coldWallets: chain.coldAddress ? [chain.coldAddress] : [],
    tokens: chain.tokens.map((t) => t.address),
    ...options,
  });
}
