/**
 * `custody-node reconcile`: run a reconciliation now (default: every configured chain at its newest
 * final block, continuing from the last completed run) or print a stored run's report.
 * Exit code 3 when the run found breaks that alert (open ones; not those an operator acknowledged
 * at the same difference), so scripts and cron can alert on it. Each chain's run is made under the
 * reconciler role's per-chain lock (runLock.ts), waiting while another run of the chain holds it.
 */
import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { chainSchema } from "../../chains/index.js";
import { verifyAuditChain } from "../../foundation/audit.js";
import { createCommon } from "../../foundation/common.js";
import { chainByKey, loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { createLedger } from "../createLedger.js";
import {
  acknowledgeBreak,
  BREAK_STATES,
  type BreakState,
  type BreakStateName,
  breakStatesOf,
  listBreakStates,
  resolveBreak,
} from "./breakStates.js";
import { creditInflow } from "./creditInflow.js";
import { createReconciler } from "./reconcile.js";
import { breakStateText, getRunReport, holdState, type RenderedReport } from "./report.js";
import { withChainRunLock } from "./runLock.js";
import type { ReconSources } from "./sources.js";
import { listAuditAnchors, listRuns } from "./store.js";

type Format = "summary" | "json" | "csv" | "html";

/** `recon breaks list`'s page size unless `--limit` says otherwise (GET /v1/recon/breaks' too). */
const BREAKS_PAGE = 200;

function render(report: RenderedReport, format: Format): string {
  if (format === "json") return `${JSON.stringify(report.json, null, 2)}\n`;
  if (format === "csv") return report.csv;
  if (format === "html") return report.html;
  const r = report.json;
  const lines = [r.verdict];
  for (const s of r.summary)
    lines.push(
      `  ${s.symbol}: ${s.breaks} break(s), break difference ${s.breakDifference}, unexplained ${s.unexplained}, solvency surplus ${s.solvencySurplus ?? "-"}`,
    );
  for (const b of r.breaks)
    lines.push(
      `  #${r.run.id}:${b.n} ${b.type} ${b.key} (${b.difference}) [${breakStateText(b) || "open"}]: ${b.action}`,
    );
  if (r.run.auditHead)
    lines.push(`  audit log head: seq ${r.run.auditHead.seq} ${r.run.auditHead.hash}`);
  for (const h of r.holds)
    lines.push(
      `  reorg hold (${holdState(h)}) ${h.txHash}:${h.position} user:${h.owner} ${h.amount} (held ${h.holdAmount}, receivable ${h.shortfallAmount}${h.returned ? `; returned as ${h.txHash}:${h.returned.position}, credit ${h.returned.creditId}` : ""})`,
    );
  return `${lines.join("\n")}\n`;
}

/** A short-lived pool for one CLI command, closed (with the Common) when `fn` is done. */
async function withPool<T>(name: string, fn: (pool: ReturnType<typeof createPool>) => Promise<T>) {
  const config = loadConfig(chainSchema);
  const common = createCommon(config);
  const pool = createPool(config.env.DATABASE_URL, { max: 2, applicationName: name });
  try {
    return await fn(pool);
  } finally {
    await common.shutdown.kill(`${name} done`).catch(() => {});
    await pool.end();
  }
}

function stateLine(s: BreakState): string {
  const who =
    s.state === "acknowledged"
      ? ` by ${s.acknowledgedBy} at difference ${s.acknowledgedDifference}: ${s.acknowledgedReason}`
      : s.state === "resolved"
        ? ` by ${s.resolvedBy} (${s.resolvedRef}): ${s.resolvedReason}`
        : "";
  return `${s.latestBreakId ?? "-"}\t${s.state}${who}\t${s.type}\t${s.assetId}\t${s.key}\tdifference ${s.lastDifference}\t${s.identity}`;
}

/** `sources`: what reconciliation reads from modules above it (given by the composition root). */
export function registerCommands(program: Command, sources: ReconSources): void {
  const recon = program.command("recon").description("work reconciliation breaks");
  const breaks = recon
    .command("breaks")
    .description(
      "breaks worked to closure: open → acknowledged (who, why) → resolved (what fixed it)",
    );
  breaks
    .command("list")
    .description(
      "breaks by state (default: open and acknowledged), newest first (by the run that first found them)",
    )
    .option("--chain <chain>", "chain key or id")
    .option(
      "--state <states>",
      "comma-separated: open, acknowledged, resolved",
      "open,acknowledged",
    )
    .option("--limit <n>", "page size, 1-1000", String(BREAKS_PAGE))
    .option("--after <identity>", "the identity of the last break of the previous page")
    .option("--json", "print JSON", false)
    .action(
      async (opts: {
        chain?: string;
        state: string;
        limit: string;
        after?: string;
        json: boolean;
      }) => {
        const states = opts.state.split(",").map((x) => x.trim());
        for (const st of states)
          if (!(BREAK_STATES as readonly string[]).includes(st))
            throw new Error(`--state: expected open, acknowledged or resolved, got "${st}"`);
        if (!/^(?:[1-9][0-9]{0,2}|1000)$/.test(opts.limit))
          throw new Error(`--limit: expected a page size of 1-1000, got "${opts.limit}"`);
        const limit = Number(opts.limit);
        await withPool("custody-node recon breaks list", async (pool) => {
          const chainId = opts.chain
            ? chainByKey(loadConfig(chainSchema), opts.chain).chainId
            : undefined;
          // A cursor naming no break would page to nothing, as the list's end does (the API's
          // PAGE_CURSOR_UNKNOWN): refused.
          if (opts.after !== undefined && (await breakStatesOf(pool, [opts.after])).size === 0)
            throw new Error(
              `--after: names no break ("${opts.after}"); give the identity (last column) of the previous page's last break`,
            );
          // One more than the page: whether the list goes on.
          const rows = await listBreakStates(pool, {
            ...(chainId !== undefined ? { chainId } : {}),
            states: states as BreakStateName[],
            ...(opts.after !== undefined ? { after: opts.after } : {}),
            limit: limit + 1,
          });
          const page = rows.slice(0, limit);
          if (opts.json) console.log(JSON.stringify(page, null, 2));
          else for (const s of page) console.log(stateLine(s));
          // On stderr, so stdout stays the page (JSON parseable); a cut list is never silent.
          if (rows.length > limit)
            console.error(
              `more breaks than --limit ${limit}; the next page: --after '${page.at(-1)!.identity}'`,
            );
        });
      },
    );
  breaks
    .command("ack <break>")
    .description(
      "acknowledge a break (<run id>:<n> from a report, or its identity): no alert while its difference stays the same",
    )
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "why it is known / what is being done")
    .action(async (ref: string, opts: { by: string; reason: string }) => {
      await withPool("custody-node recon breaks ack", async (pool) => {
        const s = await acknowledgeBreak(pool, { ref, ...opts });
        console.log(stateLine(s));
      });
    });
  breaks
    .command("resolve <break>")
    .description(
      "resolve a break, linked to the ledger transfer id or chain fact (<tx hash>:<position>) that fixed it; a later run that still finds it reopens it",
    )
    .requiredOption("--by <who>", "the operator")
    .requiredOption("--reason <text>", "what was done")
    .requiredOption(
      "--fixed-by <ref>",
      "ledger transfer id, or <tx hash>:<position> of a chain fact",
    )
    .action(async (ref: string, opts: { by: string; reason: string; fixedBy: string }) => {
      await withPool("custody-node recon breaks resolve", async (pool) => {
        const s = await resolveBreak(pool, { ref, ...opts });
        console.log(stateLine(s));
      });
    });

  program
    .command("audit")
    .description("the tamper-evident audit log")
    .command("verify")
    .description(
      "recompute the audit log's hash chain and check the heads reconciliation runs recorded; exit 1 naming the first edited, inserted or deleted row",
    )
    .action(async () => {
      await withPool("custody-node audit verify", async (pool) => {
        const anchors = await listAuditAnchors(pool);
        const v = await verifyAuditChain(pool, { anchors });
        if (v.ok) {
          console.log(
            `audit log intact: ${v.rows} row(s), head ${v.head ? `seq ${v.head.seq} ${v.head.hash}` : "(empty)"}, ${anchors.length} recorded head(s) checked`,
          );
          return;
        }
        console.log(`audit log TAMPERED (${v.problem!.kind}): ${v.problem!.detail}`);
        process.exitCode = 1;
      });
    });
  recon
    .command("credit-inflow <breakId>")
    .description(
      "credit an unattributed_inflow break (<run id>:<n>, from the report) to the deposit address's customer, once, audited",
    )
    .requiredOption("--by <who>", "the operator crediting it")
    .requiredOption("--reason <text>", "why (e.g. the sender and transaction checked)")
    .action(async (breakId: string, opts: { by: string; reason: string }) => {
      const config = loadConfig(chainSchema);
      const common = createCommon(config);
      const pool = createPool(config.env.DATABASE_URL, {
        max: 2,
        applicationName: "custody-node recon credit-inflow",
      });
      const ledger = createLedger({ common, pool });
      try {
        const r = await creditInflow({ common, pool, ledger }, { breakId, ...opts });
        console.log(
          `${r.status === "created" ? "credited" : "already credited"}: ${r.amount} of ${r.assetId} to user:${r.customerId} (deposit address ${r.address}), transfer ${r.transferId}`,
        );
      } finally {
        await ledger.close();
        await common.shutdown.kill("credit-inflow done").catch(() => {});
        await pool.end();
      }
    });

  program
    .command("reconcile")
    .description(
      "reconcile chain facts and balances with the ledger at a final block, store the run and print its report (exit 3 on open breaks; acknowledged ones do not alert)",
    )
    .option("--chain <chain>", "chain key or id (default: every configured chain)")
    .option("--block <number>", "block to reconcile at (default: the newest final block)")
    .option(
      "--full",
      "re-examine everything instead of continuing from the last completed run",
      false,
    )
    .option("--run <id>", "print the report of a stored run instead of running")
    .option("--list", "list recent runs", false)
    .option("--format <format>", "summary | json | csv | html", "summary")
    .option("--out <file>", "write the report to a file instead of stdout")
    .action(
      async (opts: {
        chain?: string;
        block?: string;
        full: boolean;
        run?: string;
        list: boolean;
        format: string;
        out?: string;
      }) => {
        const format = opts.format as Format;
        if (!["summary", "json", "csv", "html"].includes(format))
          throw new Error(`--format: expected summary, json, csv or html, got "${opts.format}"`);
        const config = loadConfig(chainSchema);
        const common = createCommon(config);
        // Three: one holds the chain's lock for the run; the run's completion transaction holds
        // another while it reads the audit head on a third.
        const pool = createPool(config.env.DATABASE_URL, {
          max: 3,
          applicationName: "custody-node reconcile",
        });
        const emit = (text: string) => {
          if (opts.out) writeFileSync(opts.out, text);
          else process.stdout.write(text);
        };
        try {
          if (opts.list) {
            const chainId = opts.chain ? chainByKey(config, opts.chain).chainId : undefined;
            const runs = await listRuns(pool, chainId === undefined ? {} : { chainId });
            for (const r of runs)
              console.log(
                `${r.id}\tchain ${r.chainId}\tblock ${r.block}\t${r.status}\t${r.breakCount} break(s)\t${r.startedAt}`,
              );
            return;
          }
          if (opts.run) {
            emit(render(await getRunReport(pool, Number(opts.run)), format));
            return;
          }
          const chains = opts.chain ? [chainByKey(config, opts.chain)] : config.chains;
          const block = opts.block === undefined ? undefined : Number(opts.block);
          if (block !== undefined && (!Number.isSafeInteger(block) || block < 0))
            throw new Error(`--block: expected a block number, got "${opts.block}"`);
          const reconciler = createReconciler({
            common,
            pool,
            sweeps: sources.sweeps,
            chains: sources.chains(common),
          });
          let breaks = 0;
          for (const chain of chains) {
            // One run of a chain at a time (the role's, another operator's): an older snapshot
            // completing after a newer one would reopen what the newer one resolved. A lost lock
            // stops the run (RECON_LOCK_LOST), stored failed.
            const summary = await withChainRunLock(
              pool,
              chain,
              (held) =>
                reconciler.run({
                  chain,
                  full: opts.full,
                  signal: held,
                  ...(block !== undefined ? { block } : {}),
                }),
              {
                onWait: () =>
                  console.error(
                    `chain ${chain.key} (${chain.chainId}): another reconciliation run holds the chain's lock; waiting for it to finish`,
                  ),
              },
            );
            // Acknowledged breaks (same difference) are known: they do not alert scripts either.
            breaks += summary.alerting;
            emit(render(await getRunReport(pool, summary.runId), format));
          }
          if (breaks > 0) process.exitCode = 3;
        } finally {
          await common.shutdown.kill("reconcile done").catch(() => {});
          await pool.end();
        }
      },
    );
}
