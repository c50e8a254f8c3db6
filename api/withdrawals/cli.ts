/**
 * `custody-node withdrawals fail <id> --by <who> --reason <text>`: the only way a withdrawal in
 * `needs_review` ends. The operator has checked the chain (its nonce was consumed at a final block
 * by none of our attempts); the withdrawal fails, its hold is released, and the audit log and a
 * `withdrawal.failed` event say who and why. Withdrawals the chain can still decide are refused.
 */
import type { Command } from "commander";
import { chainSchema } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { createLedger } from "../../ledger/index.js";
import { createWithdrawals } from "./service.js";

export function registerWithdrawalCommands(program: Command): void {
  const withdrawals = program
    .command("withdrawals")
    .description("operator decisions on withdrawals");
  withdrawals
    .command("fail <id>")
    .description(
      "fail a withdrawal in needs_review and release its hold (audited: who and why; refused in any other status)",
    )
    .requiredOption("--by <who>", "the operator deciding")
    .requiredOption("--reason <text>", "why (what was checked on chain)")
    .option("--json", "print the withdrawal as JSON", false)
    .action(async (id: string, opts: { by: string; reason: string; json: boolean }) => {
      const config = loadConfig(chainSchema);
      const common = createCommon(config);
      const pool = createPool(config.env.DATABASE_URL, {
        max: 2,
        applicationName: "custody-node withdrawals",
      });
      const ledger = createLedger({ common, pool });
      try {
        const w = await createWithdrawals({ common, pool, ledger }).failByOperator(id, {
          by: opts.by,
          reason: opts.reason,
        });
        if (opts.json)
          console.log(
            JSON.stringify({ id: w.id, status: w.status, failureReason: w.failureReason }),
          );
        else console.log(`withdrawal ${w.id} failed by ${opts.by}; hold released`);
      } finally {
        await ledger.close();
        await pool.end();
      }
    });
}
