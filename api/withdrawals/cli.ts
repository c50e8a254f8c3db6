/**
 * `custody-node withdrawals fail <id> --by <who> --reason <text>`: the only way a withdrawal in
 * `needs_review` ends. The service checks the chain first (operatorFail.ts): nonce used by another
 * transaction in a final block, the withdrawal fails and its hold is released; nonce unused, the
 * signer cancels it and the withdrawal fails (hold released) at the cancel's final block. The
 * audit log and a `withdrawal.failed` event say who and why. Withdrawals the chain can still
 * decide are refused.
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
      "fail a withdrawal in needs_review and release its hold, at once or once the signer's cancel of its nonce is final (audited: who and why; refused in any other status)",
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
            JSON.stringify({
              id: w.id,
              status: w.status,
              failureReason: w.failureReason,
              failRequested: w.failRequested,
            }),
          );
        else if (w.status === "failed" && !(w.failureReason ?? "").startsWith("OPERATOR_FAILED"))
          // The chain decided before the operator did (reverted, or its nonce cancelled, at a
          // final block): not theirs to be told they failed it.
          console.log(
            `withdrawal ${w.id} had already failed on chain (${w.failureReason}, tx ${w.txHash ?? "none"}); recorded as the chain's, hold released`,
          );
        else if (w.status === "failed")
          console.log(`withdrawal ${w.id} failed by ${opts.by}; hold released`);
        else
          console.log(
            `withdrawal ${w.id}: its nonce was unused, so the signer cancels it (by ${opts.by}); the withdrawal is ${w.status}, its hold stands, and it fails with the hold released once the cancel's block is final`,
          );
      } finally {
        await ledger.close();
        await pool.end();
      }
    });
}
