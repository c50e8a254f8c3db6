/**
 * `custody-node chains halted` and `custody-node chains resume <chain>`: what an operator does
 * when a reorg reached a final block and the indexer halted the chain (DESIGN "Finality and bad
 * days"). Inspect first; resume re-checks the node, and rolls back final blocks only with
 * --accept-reorg naming the common ancestor its refusal showed (audited, with who and why).
 */
import type { Command } from "commander";
import { chainSchema, createEvmAdapter } from "../chains/index.js";
import { createCommon } from "../foundation/common.js";
import { chainByKey, loadConfig } from "../foundation/config.js";
import { createPool } from "../foundation/db.js";
import { readHalts } from "./halts.js";
import { resumeChain } from "./resume.js";

function pool() {
  const config = loadConfig(chainSchema);
  return {
    config,
    pool: createPool(config.env.DATABASE_URL, { max: 2, applicationName: "custody-node cli" }),
  };
}

export function registerCommands(program: Command): void {
  const chains = program
    .command("chains")
    .description("chain halts: list them, resume a halted chain");

  chains
    .command("halted")
    .description("list halted chains (a reorg reached a final block), with what the indexer saw")
    .option("--all", "include resumed halts", false)
    .option("--json", "print JSON lines", false)
    .action(async (opts: { all: boolean; json: boolean }) => {
      const { config, pool: db } = pool();
      try {
        const halts = await readHalts(db, { includeResumed: opts.all });
        const keyOf = (id: number) => config.chains.find((c) => c.chainId === id)?.key ?? "?";
        if (halts.length === 0 && !opts.json) console.log("no halted chains");
        for (const h of halts) {
          if (opts.json) console.log(JSON.stringify({ ...h, key: keyOf(h.chainId) }));
          else
            console.log(
              [
                `${keyOf(h.chainId)} (chain ${h.chainId}) halted ${h.haltedAt.toISOString()}: ${h.reason}`,
                ...Object.entries(h.details).map(([k, v]) => `  ${k}: ${String(v)}`),
                h.resumedAt
                  ? `  resumed ${h.resumedAt.toISOString()} by ${h.resumedBy}: ${h.resumeReason}`
                  : "  still halted",
              ].join("\n"),
            );
        }
      } finally {
        await db.end();
      }
    });

  chains
    .command("resume <chain>")
    .description(
      "resume a halted chain: re-check the node; with --accept-reorg <height>:<hash> (the common ancestor a refusal showed) roll back to it once (audited)",
    )
    .requiredOption("--by <who>", "the operator resuming the chain (recorded in the audit log)")
    .requiredOption("--reason <text>", "why (recorded in the audit log)")
    .option(
      "--accept-reorg <height:hash>",
      "orphan the blocks above this common ancestor, final ones included: the one the refusal printed (refused, nothing changed, if the node now shows another)",
    )
    .option("--json", "print JSON", false)
    .action(
      async (
        key: string,
        opts: { by: string; reason: string; acceptReorg?: string; json: boolean },
      ) => {
        const { config, pool: db } = pool();
        const chain = chainByKey(config, key);
        const common = createCommon(config);
        try {
          const adapter = createEvmAdapter(chain, { common });
          const result = await resumeChain({
            pool: db,
            adapter,
            chain,
            by: opts.by,
            reason: opts.reason,
            acceptReorg: opts.acceptReorg ?? null,
          });
          if (opts.json)
            console.log(
              JSON.stringify(result, (_, v) => (typeof v === "bigint" ? v.toString() : v)),
            );
          if (result.kind === "not_halted") {
            if (!opts.json) console.error(`chain ${chain.key} is not halted`);
            process.exitCode = 1;
          } else if (result.kind === "refused") {
            if (!opts.json)
              console.error(
                `chain ${chain.key}: the reorg is still there: common ancestor ${result.ancestor}, depth ${result.depth}, finalized ${result.finalized ?? "none"}; ${result.factsAbove} facts above it (${result.confirmedFactsAbove} confirmed) would be orphaned. Nothing changed; to roll back to it, re-run with --accept-reorg ${result.accept}`,
              );
            process.exitCode = 1;
          } else if (!opts.json) {
            console.log(
              result.rollback
                ? `chain ${chain.key} resumed by ${opts.by}: rolled back to block ${result.rollback.ancestor} (depth ${result.rollback.depth}); ${result.rollback.orphaned.count} facts orphaned (${result.rollback.orphaned.confirmedBefore} confirmed)`
                : `chain ${chain.key} resumed by ${opts.by}: the node agrees with the stored chain, nothing rolled back`,
            );
          }
        } finally {
          await common.shutdown.kill("cli done");
          await db.end();
        }
      },
    );
}
