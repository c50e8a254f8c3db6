/**
 * `custody-node deposit-address --chain X --customer Y`: allocate (or show) a deposit address.
 * Needs no key: the factory's deploy (`custody-node contracts deploy`) is the signer's
 * (signer/deposit-addresses/cli.ts).
 */
import type { Command } from "commander";
import { chainSchema } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { chainByKey, loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { allocateDepositAddress } from "./allocate.js";

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
