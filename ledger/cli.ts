/** `custody-node ledger check`: the ledger's invariants, runnable any time against the live database. */
import type { Command } from "commander";
import { loadConfig } from "../ops/config.js";
import { createPool } from "../ops/db.js";
import { type CheckReport, checkLedger } from "./check.js";
import { clearWithdrawalBlocks, listWithdrawalBlocks } from "./withdrawalBlocks.js";

export function formatReport(report: CheckReport): string {
  const lines = [
    `ledger check ${report.ok ? "passed" : "FAILED"} at ${report.checkedAt}`,
    ...report.assets.map(
      (a) =>
        `  ${a.assetId}: ${a.accounts} accounts, posted ${a.debitsPosted} = ${a.creditsPosted}, pending ${a.debitsPending} = ${a.creditsPending}`,
    ),
    ...report.problems.map(
      (p) => `  PROBLEM ${p.type} ${p.assetId}${p.account ? ` ${p.account}` : ""}: ${p.detail}`,
    ),
  ];
  return lines.join("\n");
}

export function registerCommands(program: Command): void {
  const ledger = program.command("ledger").description("the double-entry ledger");
  ledger
    .command("check")
    .description(
      "prove per asset: debits = credits (posted and pending), balances = sum of transfers, holds match, no user account negative; exit 1 on any problem",
    )
    .option("--json", "print the report as JSON", false)
    .action(async (opts: { json: boolean }) => {
      const config = loadConfig();
      const pool = createPool(config.env.DATABASE_URL, {
        max: 1,
        applicationName: "custody-node ledger check",
      });
      try {
        const report = await checkLedger(pool);
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
        if (!report.ok) process.exitCode = 1;
      } finally {
        await pool.end();
      }
    });

  const blocks = ledger
    .command("withdrawal-blocks")
    .description(
      "customers whose withdrawals are blocked (a reorg removed a deposit they had spent)",
    );
  blocks
    .command("list")
    .description("open blocks, oldest first")
    .option("--customer <id>", "one customer")
    .action(async (opts: { customer?: string }) => {
      const config = loadConfig();
      const pool = createPool(config.env.DATABASE_URL, {
        max: 1,
        applicationName: "custody-node ledger",
      });
      try {
        for (const b of await listWithdrawalBlocks(pool, opts.customer))
          console.log(
            `${b.id}\t${b.customerId}\t${b.reason}\t${b.creditId ?? "-"}\t${b.createdAt.toISOString()}\t${JSON.stringify(b.details)}`,
          );
      } finally {
        await pool.end();
      }
    });
  blocks
    .command("clear <customer>")
    .description("clear a customer's open blocks (audited: who and why)")
    .requiredOption("--by <who>", "the operator clearing it")
    .requiredOption("--reason <text>", "why (e.g. the receivable was repaid)")
    .action(async (customer: string, opts: { by: string; reason: string }) => {
      const config = loadConfig();
      const pool = createPool(config.env.DATABASE_URL, {
        max: 1,
        applicationName: "custody-node ledger",
      });
      try {
        const n = await clearWithdrawalBlocks(pool, { customerId: customer, ...opts });
        console.log(`cleared ${n} block(s) of ${customer}`);
        if (n === 0) process.exitCode = 1;
      } finally {
        await pool.end();
      }
    });
}
