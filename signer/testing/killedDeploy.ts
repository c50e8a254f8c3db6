/**
 * `custody-node contracts deploy`'s sender (signer/storedDeploy.ts) run in process and "killed"
 * (thrown out) at a point, as kill -9 would leave it: after storing its signed bytes
 * (`deploy_after_commit`) or after sending them (`deploy_after_send`: the CLI's crash point there is
 * in hotWalletDeploy.ts, right after the sender's `onSent`). Its lease is released either way.
 */
import type { Account, Hex, PublicClient } from "viem";
import { type ChainConfig, createRpcClient } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Lease } from "../lease.js";
import { storedDeploySender } from "../storedDeploy.js";

/** Init code of a tiny contract, and its runtime code (returns 42). */
export const TINY_CONTRACT = {
  init: "0x600a600c600039600a6000f3602a60005260206000f3" as Hex,
  runtime: "0x602a60005260206000f3" as Hex,
};

export type DeployKillPoint = "deploy_after_commit" | "deploy_after_send";

/**
 * Resolves once the sender was killed at `point`; rejects with the sender's own error when it
 * stopped before reaching it (e.g. the CLI refused: the signer holds the lease, a nonce unmined).
 */
export async function killedDeploy({
  common,
  databaseUrl,
  chain,
  client,
  account,
  name,
  point,
}: {
  common: Common;
  databaseUrl: string;
  chain: ChainConfig;
  client: PublicClient;
  account: Account;
  name: string;
  point: DeployKillPoint;
}): Promise<void> {
  const killed = `killed at ${point}`;
  let lease: Lease | undefined;
  try {
    const send = storedDeploySender({
      common,
      databaseUrl,
      chain,
      client,
      rpc: createRpcClient({ chainId: chain.chainId, urls: chain.rpcUrls }),
      account,
      sendRawTransaction: (raw) => client.sendRawTransaction({ serializedTransaction: raw }),
      getFinalizedBlock: () => client.getBlock({ blockTag: "finalized" }),
      onLease: (l) => {
        lease = l;
      },
      crash: (p) => {
        if (p === point) throw new Error(killed);
      },
    });
    await send({
      name,
      data: TINY_CONTRACT.init,
      onSent: () => {
        if (point === "deploy_after_send") throw new Error(killed);
      },
    });
  } catch (error) {
    if ((error as Error).message === killed) return;
    throw error;
  } finally {
    await lease?.release().catch(() => {});
  }
  throw new Error(`the ${name} deploy was not killed at ${point}`);
}
