/**
 * `custody-node ledger parked-deposits`: the confirmed deposits the ledger refused to credit,
 * parked by deposit crediting and retried with backoff (ledger.parked_deposits), with the ledger's
 * reason. Registered under the `ledger` command (ops/commands.ts).
 */
import type { Command } from "commander";
import { chainSchema } from "../chains/index.js";
import { loadConfig } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import { listParkedDeposits } from "./depositCrediting.js";

export function registerParkedCommands(program: Command): void {
  const ledger =
    program.commands.find((c) => c.name() === "ledger") ??
    program.command("ledger").description("the double-entry ledger");
  ledger
    .command("parked-deposits")
    .description(
      "confirmed deposits the ledger refused to credit (parked, retried with backoff): fact, customer, amount, the ledger's code, attempts",
    )
    .option("--chain <id>", "one chain id")
    .option("--limit <n>", "at most this many, oldest first", "100")
    .option("--json", "one JSON object per line", false)
    .action(async (opts: { chain?: string; limit: string; json: boolean }) => {
      const chainId = opts.chain === undefined ? undefined : Number(opts.chain);
      if (chainId !== undefined && !(Number.isSafeInteger(chainId) && chainId > 0)) {
        console.error("--chain must be a positive integer chain id");
        process.exitCode = 2;
        return;
      }
      const limit = Number(opts.limit);
      if (!(Number.isSafeInteger(limit) && limit > 0)) {
        console.error("--limit must be a positive integer");
        process.exitCode = 2;
        return;
      }
      const config = loadConfig(chainSchema);
      const pool = createPool(config.env.DATABASE_URL, {
        max: 1,
        applicationName: "custody-node ledger parked-deposits",
      });
      try {
        const parked = await listParkedDeposits(pool, {
          ...(chainId === undefined ? {} : { chainId }),
          limit,
        });
        for (const p of parked)
          console.log(
            opts.json
              ? JSON.stringify(p, (_, v) => (typeof v === "bigint" ? v.toString() : v))
              : [
                  p.chainId,
                  p.blockNumber,
                  p.txHash,
                  p.position,
                  p.owner,
                  p.asset,
                  p.amount,
                  p.code,
                  `attempts=${p.attempts}`,
                  `next=${p.nextAttemptAt.toISOString()}`,
                  p.detail ?? "",
                ].join("\t"),
          );
      } finally {
        await pool.end();
      }
    });
}
