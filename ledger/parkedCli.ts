/**
 * `custody-node ledger parked-deposits`: the confirmed deposits the ledger refused to credit,
 * parked by deposit crediting and retried with backoff (ledger.parked_deposits), with the ledger's
 * reason (`list`, the default); `retry` makes them due now once their cause is fixed (audited).
 * Registered under the `ledger` command (ops/commands.ts).
 */
import type { Command } from "commander";
import { chainSchema } from "../chains/index.js";
import { loadConfig } from "../foundation/config.js";
import { createPool, type Pool } from "../foundation/db.js";
import { listParkedDeposits, makeParkedDepositsDue } from "./depositCrediting.js";

export function registerParkedCommands(program: Command): void {
  const ledger =
    program.commands.find((c) => c.name() === "ledger") ??
    program.command("ledger").description("the double-entry ledger");
  const parked = ledger
    .command("parked-deposits")
    .description(
      "confirmed deposits the ledger refused to credit (parked, retried with backoff): list (the default), retry",
    );
  // `list` is the default, so `ledger parked-deposits --chain <id>` lists as it always did. Not the
  // group's own action: the group would take `retry`'s --chain as its own.
  parked
    .command("list", { isDefault: true })
    .description(
      "confirmed deposits the ledger refused to credit (parked, retried with backoff): fact, customer, amount, the ledger's code, attempts",
    )
    .option("--chain <id>", "one chain id")
    .option("--limit <n>", "at most this many, oldest first", "100")
    .option("--json", "one JSON object per line", false)
    .action(async (opts: { chain?: string; limit: string; json: boolean }) => {
      const chainId = opts.chain === undefined ? undefined : chainIdOf(opts.chain);
      if (chainId === null) return;
      const limit = Number(opts.limit);
      if (!(Number.isSafeInteger(limit) && limit > 0)) {
        console.error("--limit must be a positive integer");
        process.exitCode = 2;
        return;
      }
      await withPool("custody-node ledger parked-deposits", async (pool) => {
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
      });
    });

  parked
    .command("retry [deposit]")
    .description(
      "make parked deposits due now, after their cause is fixed (audited: who, why): one (<tx hash>:<position>, as listed), or every parked deposit of the chain; the next crediting pass retries them",
    )
    .requiredOption("--chain <id>", "the chain id")
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "what was fixed")
    .action(
      async (deposit: string | undefined, opts: { chain: string; by: string; reason: string }) => {
        const chainId = chainIdOf(opts.chain);
        if (chainId === null) return;
        const m = deposit === undefined ? null : /^(0x[0-9a-fA-F]{64}):(\S+)$/.exec(deposit);
        if (deposit !== undefined && m === null) {
          console.error(
            `expected a parked deposit as <tx hash>:<position> (e.g. 0x…:transfer:0), got "${deposit}"`,
          );
          process.exitCode = 2;
          return;
        }
        await withPool("custody-node ledger parked-deposits retry", async (pool) => {
          const due = await makeParkedDepositsDue(pool, {
            chainId,
            ...(m ? { fact: { txHash: m[1]!, position: m[2]! } } : {}),
            by: opts.by,
            reason: opts.reason,
          });
          for (const d of due) console.log(`due now\t${chainId}\t${d.txHash}\t${d.position}`);
          if (due.length === 0) {
            console.error(
              `no parked deposit${deposit === undefined ? "" : ` ${deposit}`} on chain ${chainId}: nothing made due`,
            );
            process.exitCode = 1;
          }
        });
      },
    );
}

/** `--chain` as a chain id; null (the error written, exit code 2) when it is not one. */
function chainIdOf(value: string): number | null {
  const chainId = Number(value);
  if (Number.isSafeInteger(chainId) && chainId > 0) return chainId;
  console.error("--chain must be a positive integer chain id");
  process.exitCode = 2;
  return null;
}

/** One connection to the configured database for a command, ended when `work` settles. */
async function withPool(applicationName: string, work: (pool: Pool) => Promise<void>) {
  const config = loadConfig(chainSchema);
  const pool = createPool(config.env.DATABASE_URL, { max: 1, applicationName });
  try {
    await work(pool);
  } finally {
    await pool.end();
  }
}
