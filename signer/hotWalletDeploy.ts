/**
 * A contract deploy from a chain's hot wallet: what a deploy function needs (`HotWalletDeployArgs`)
 * and the body of the CLI commands that run one with the wallet's KMS key (`custody-node contracts
 * deploy`, signer/deposit-addresses/cli.ts; `custody-node por deploy`, ops/por/cli.ts).
 */
import type { Account, Hex, PublicClient } from "viem";
import { type ChainConfig, chainSchema, createEvmAdapter } from "../chains/index.js";
import { type Common, createCommon } from "../foundation/common.js";
import { chainByKey, loadConfig } from "../foundation/config.js";
import { createPool, type Pool } from "../foundation/db.js";
import type { DeployedContract } from "../indexers/index.js";
import { createKmsAccount, createKmsClient } from "./kmsAccount.js";

/** What a contract deploy from the chain's hot wallet needs. */
export type HotWalletDeployArgs = {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  /** Reads, nonce, fees and receipts (e.g. the chain adapter's client). */
  client: PublicClient;
  /** The hot wallet's signing account (KMS-backed in production). */
  account: Account;
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
};

/**
 * The body of a `<command> --chain X [--key K]` deploy: the chain's hot wallet (its KMS key, or
 * `--key`) deploys the contract with `deploy`, and one line tells what was deployed or kept.
 */
export async function deployFromHotWallet(
  opts: { chain: string; key?: string },
  {
    command,
    contractName,
    walletRole,
    deploy,
  }: {
    /** For the shutdown reason, e.g. "contracts deploy". */
    command: string;
    contractName: string;
    /** What the recorded hot wallet is to the contract, e.g. "attester". */
    walletRole: string;
    deploy: (
      args: HotWalletDeployArgs,
    ) => Promise<{ contract: DeployedContract; deployed: boolean }>;
  },
): Promise<void> {
  const config = loadConfig(chainSchema);
  const chain = chainByKey(config, opts.chain);
  const keyId =
    opts.key ?? config.hotWallets.find((w) => w.chain === chain.key)?.kmsKeyId ?? undefined;
  if (!keyId) {
    throw new Error(`no hot wallet configured for chain ${chain.key} (hotWallets[].kmsKeyId)`);
  }
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 2 });
  const kms = createKmsClient({
    region: config.env.AWS_REGION,
    endpoint: config.env.AWS_ENDPOINT_URL_KMS,
  });
  try {
    const account = await createKmsAccount({ kms, keyId });
    const adapter = createEvmAdapter(chain, { common });
    const { contract, deployed } = await deploy({
      common,
      pool,
      chain,
      client: adapter.client,
      account,
      sendRawTransaction: adapter.sendRawTransaction,
    });
    console.log(
      `${deployed ? "deployed" : "already deployed:"} ${contractName} ${contract.address} on ${chain.key} (${walletRole} ${contract.hotWallet}, tx ${contract.deployTxHash})`,
    );
  } finally {
    kms.destroy();
    await pool.end();
    await common.shutdown.kill(`${command} done`);
  }
}
