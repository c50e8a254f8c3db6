/**
 * The Grafana dashboards are valid dashboard JSON, every query is valid PromQL (promtool checks
 * each one as a recording rule), and together they show what the issue lists.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { dashboards, metricNamesIn } from "./rules.js";

describe("Grafana dashboards", () => {
  const all = dashboards();

  it("are dashboard JSON with unique uids, datasource-templated Prometheus targets", () => {
    expect(all.length).toBeGreaterThanOrEqual(4);
    expect(new Set(all.map((d) => d.title)).size).toBe(all.length);
    for (const d of all) expect(d.exprs.length, d.file).toBeGreaterThan(5);
  });

  it("every query parses as PromQL (promtool check rules)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "custody-dash-"));
    try {
      const exprs = all.flatMap((d) => d.exprs.filter((e) => !e.startsWith("label_values(")));
      const rules = exprs
        .map(
          (e, i) =>
            `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(
              e.replaceAll("$chain_id", ".*").replaceAll("$wallet", ".*"),
            )}`,
        )
        .join("\n");
      const file = path.join(dir, "dashboards.rules.yml");
      writeFileSync(file, `groups:\n  - name: dashboards\n    rules:\n${rules}\n`);
      let out: string;
      try {
        out = execFileSync(process.env.PROMTOOL ?? "promtool", ["check", "rules", file], {
          encoding: "utf8",
          stdio: "pipe",
        });
      } catch (error) {
        const e = error as { stdout?: string; stderr?: string; message: string };
        throw new Error(
          `promtool rejected a dashboard query:\n${e.stdout ?? ""}${e.stderr ?? e.message}`,
        );
      }
      expect(out).toContain(`SUCCESS: ${exprs.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("show each thing the issue lists", () => {
    const names = new Set(all.flatMap((d) => d.exprs.flatMap(metricNamesIn)));
    const wanted: Record<string, string[]> = {
      "indexer lag": ["custody_indexer_lag_blocks"],
      "RPC health per chain": ["custody_rpc_errors_total", "custody_rpc_endpoint_head"],
      "reorgs and halts": ["custody_indexer_reorgs_total", "custody_chain_halted"],
      crediting: ["custody_ledger_transfers_total", "custody_recon_last_block"],
      "withdrawals by status": [
        "custody_api_withdrawal_transitions_total",
        "custody_signer_open_transactions",
      ],
      // How long each status's oldest withdrawal has waited: since its request, and since it
      // entered the status, and since it was sent and not mined (what WithdrawalStuck and
      // WithdrawalNotFinalized read).
      "withdrawal ages": [
        "custody_withdrawal_oldest_age_seconds",
        "custody_withdrawal_oldest_in_status_seconds",
        "custody_withdrawal_oldest_unmined_seconds",
      ],
      "nonce and fee state per hot wallet": [
        "custody_signer_attempts_total",
        "custody_signer_fee_cap_hits_total",
      ],
      "hot wallet balance vs floor and ceiling": [
        "custody_signer_hot_wallet_balance_wei",
        "custody_hot_wallet_floor_wei",
        "custody_hot_wallet_ceiling_wei",
      ],
      "reconciliation breaks": ["custody_recon_breaks"],
      // What AttestationStuck and AttestationOverdue read.
      "proof-of-reserves attestations": [
        "custody_attestations_in_flight",
        "custody_attestation_age_seconds",
        "custody_attestation_overdue_after_seconds",
      ],
      "API latency and errors": ["custody_api_request_duration_seconds"],
      queues: ["custody_queue_jobs"],
    };
    const missing = Object.entries(wanted).filter(([, ms]) => !ms.every((m) => names.has(m)));
    expect(missing).toEqual([]);
  });
});
