/**
 * `custody-node deposit-address --chain X --customer Y`: allocate (or show) a deposit address.
 * `custody-node contracts deploy --chain X`: deploy the ForwarderFactory from the chain's hot
 * wallet (its KMS key) and record it. Safe to repeat: an existing factory is verified and kept.
 */
import type { Command } from "commander";
import { chainSchema } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { chainByKey, loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { deployFromHotWallet } from "../hotWalletDeploy.js";
import { allocateDepositAddress } from "./allocateDepositAddress.js";
import { deployForwarderFactory } from "./deployFactory.js";

export function registerCommands(program: Command): void {
  program
    .command("deposit-address")
    .description("allocate (or show) a customer's deposit address on a chain")
    .requiredOption("--chain <chain>", "chain key or id from the config")
    .requiredOption("--customer <customerId>", "customer id")
    .action(async (opts: { chain: string; customer: string }) => {
      const config = loadConfig(chainSchema);
      const chain = chainByKey(config, opts.chain);
      const common = createCommon(config);
      const pool = createPool(config.env.DATABASE_URL, { max: 2 });
      try {
        const a = await allocateDepositAddress(
          { common, pool },
          { chainId: chain.chainId, customerId: opts.customer },
        );
        console.log(JSON.stringify({ chain: chain.key, ...a, createdAt: a.createdAt }));
      } finally {
        await pool.end();
        await common.shutdown.kill("deposit-address done");
      }
    });
}

export function registerContractsCommands(program: Command): void {
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
