/**
 * `custody-node contracts deploy --chain X`: deploy the ForwarderFactory from the chain's hot
 * wallet (its KMS key) and record it. Safe to repeat: an existing factory is verified and kept.
 * (`custody-node deposit-address` allocates without a key: indexers/depositAddresses/cli.ts.)
 */
import type { Command } from "commander";
import { deployFromHotWallet } from "../hotWalletDeploy.js";
import { deployForwarderFactory } from "./deployFactory.js";

export function registerContractsCommands(program: Command): void {
  const contracts = program.command("contracts").description("the custody's Solidity contracts");
  contracts
    .command("deploy")
    .description("deploy the deposit-address ForwarderFactory from the chain's hot wallet (KMS)")
    .requiredOption("--chain <chain>", "chain key or id from the config")
    .option(
      "--key <kmsKeyId>",
      "hot wallet KMS key (default: the chain's first hot wallet not retiring)",
    )
    .action((opts: { chain: string; key?: string }) =>
      deployFromHotWallet(opts, {
        command: "contracts deploy",
        contractName: "ForwarderFactory",
        walletRole: "hot wallet",
        deploy: deployForwarderFactory,
      }),
    );
}
