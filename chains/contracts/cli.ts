/**
 * `custody-node contracts deploy --chain X`: deploy the ForwarderFactory from the chain's hot
 * wallet (its KMS key) and record it. Safe to repeat: an existing factory is verified and kept.
 */
import type { Command } from "commander";
import { createCommon } from "../../foundation/common.js";
import { chainByKey, loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import type { DeployedContract } from "../../signer/deposit-addresses/factories.js";
import { createKmsAccount, createKmsClient } from "../../signer/kmsAccount.js";
import { createEvmAdapter } from "../evm/createEvmAdapter.js";
import { deployForwarderFactory, type HotWalletDeployArgs } from "./deploy.js";

export function registerCommands(program: Command): void {
  const contracts = program.command("contracts").description("the custody's Solidity contracts");
  contracts
    .command("deploy")
    .description("deploy the deposit-address ForwarderFactory from the chain's hot wallet (KMS)")
    .requiredOption("--chain <chain>", "chain key or id from the config")
    .option("--key <kmsKeyId>", "hot wallet KMS key (default: the chain's first hot wallet)")
    .action((opts: { chain: string; key?: string }) =>
      deployFromHotWallet(opts, {
        command: "contracts deploy",
        contractName: "ForwarderFactory",
        walletRole: "hot wallet",
        deploy: deployForwarderFactory,
      }),
    );
}

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
  const config = loadConfig();
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
