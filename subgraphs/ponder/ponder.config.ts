/**
 * One custody deployment on one chain (deployment.ts): the ForwarderFactory's sweeps, the
 * ReservesAttestor's attestations, and the listed tokens' transfers into or out of the hot and cold
 * wallets. The wallet filter is applied to the logs requested from the node (two filters: from a
 * wallet, to a wallet), so a busy token costs only the custody's own transfers.
 */
import { createConfig } from "ponder";
import { erc20TransferAbi, forwarderFactoryAbi, reservesAttestorAbi } from "./abis.js";
import { readDeployment } from "./deployment.js";

const deployment = readDeployment();
const wallets = [...deployment.hotWallets, ...deployment.coldWallets];

export default createConfig({
  chains: {
    [deployment.chain]: {
      id: deployment.chainId,
      rpc: deployment.rpcUrls.length === 1 ? deployment.rpcUrls[0] : deployment.rpcUrls,
      ...(deployment.pollingIntervalMs ? { pollingInterval: deployment.pollingIntervalMs } : {}),
    },
  },
  contracts: {
    ForwarderFactory: {
      chain: deployment.chain,
      abi: forwarderFactoryAbi,
      address: deployment.forwarderFactory,
      startBlock: deployment.startBlock,
    },
    ReservesAttestor: {
      chain: deployment.chain,
      abi: reservesAttestorAbi,
      address: deployment.reservesAttestor,
      startBlock: deployment.attestorStartBlock,
    },
    Token: {
      chain: deployment.chain,
      abi: erc20TransferAbi,
      // Ponder wants at least one address; with no listed token the factory stands in (it emits no
      // Transfer), so the app still starts.
      address: deployment.tokens.length > 0 ? deployment.tokens : [deployment.forwarderFactory],
      startBlock: deployment.startBlock,
      filter: [
        { event: "Transfer", args: { from: wallets } },
        { event: "Transfer", args: { to: wallets } },
      ],
    },
  },
});
