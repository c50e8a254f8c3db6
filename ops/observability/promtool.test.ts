/**
 * The alert rules pass `promtool check rules` and `promtool test rules` (Debian's prometheus
 * package; .ci/run installs it), every alert has a firing and a silent unit test case, and every
 * alert links a runbook in docs/runbooks/ that exists.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";
import { exampleInfraConfigPath } from "../infra/app.js";
import { planEnvironment } from "../infra/plan.js";
import {
  alertRules,
  alertsPath,
  alertTestCases,
  alertTestsPath,
  observabilityDir,
} from "./rules.js";

function promtool(args: string[]): string {
  const bin = process.env.PROMTOOL ?? "promtool";
  try {
    return execFileSync(bin, args, { cwd: observabilityDir, encoding: "utf8", stdio: "pipe" });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === "ENOENT")
      throw new Error(`promtool not found (${bin}): apt-get install prometheus, or set PROMTOOL`);
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

/**
 * promtool runs as its own process; `test rules` evaluates every case's series (several seconds on a
 * quiet machine, over 10 under the full suite's load): not a performance target, so not held to the
 * unit project's 10 s.
 */
const PROMTOOL_MS = 90_000;

describe("alert rules", () => {
  const rules = alertRules();

  it(
    "pass promtool check rules",
    () => {
      const out = promtool(["check", "rules", alertsPath]);
      expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
    },
    PROMTOOL_MS,
  );

  it(
    "pass promtool test rules",
    () => {
      expect(promtool(["test", "rules", alertTestsPath])).toContain("SUCCESS");
    },
    PROMTOOL_MS,
  );

  it("each alert has at least one firing and one silent unit test case", () => {
    expect(rules.length).toBeGreaterThanOrEqual(15);
    const cases = alertTestCases();
    const missing = rules
      .map((r) => ({ name: r.name, ...(cases.get(r.name) ?? { silent: 0, firing: 0 }) }))
      .filter((c) => c.silent === 0 || c.firing === 0);
    expect(missing).toEqual([]);
  });

  it("each alert links its own runbook, which exists and names the alert", () => {
    for (const rule of rules) {
      expect(rule.runbookUrl, rule.name).toBe(`docs/runbooks/${rule.name}.md`);
      const file = path.join(repoRoot, rule.runbookUrl as string);
      expect(existsSync(file), file).toBe(true);
      expect(readFileSync(file, "utf8").split("\n")[0]).toBe(`# ${rule.name}`);
    }
    const index = readFileSync(path.join(repoRoot, "docs/runbooks/README.md"), "utf8");
    for (const rule of rules)
      expect(index, rule.name).toContain(`[${rule.name}.md](${rule.name}.md)`);
  });

  it(
    "the example Prometheus config passes promtool check config and scrapes every planned service",
    () => {
      const out = promtool(["check", "config", path.join(observabilityDir, "prometheus.yml")]);
      expect(out).toContain("is valid prometheus config file syntax");
      expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
      const plan = planEnvironment(JSON.parse(readFileSync(exampleInfraConfigPath, "utf8")));
      const text = readFileSync(path.join(observabilityDir, "prometheus.yml"), "utf8");
      const names = [...text.matchAll(/^\s+- ([a-z0-9-]+)\.custody-staging\.internal$/gm)].map(
        (m) => m[1],
      );
      expect(names.sort()).toEqual(plan.services.map((s) => s.id).sort());
    },
    PROMTOOL_MS,
  );

  it("covers every operator-facing condition the issue lists", () => {
    const names = rules.map((r) => r.name);
    for (const name of [
      "IndexerLagging",
      "ChainHalted",
      "NoHealthyRpc",
      "WithdrawalStuck",
      "WithdrawalNeedsReview",
      "FeeCapReached",
      "HotWalletInsufficientFunds",
      "HotWalletBelowFloor",
      "HotWalletAboveCeiling",
      "ReconciliationBreaksOpen",
      "WebhookDeadLetters",
      "KmsThrottling",
      "ReorgHoldShortfall",
    ])
      expect(names).toContain(name);
  });
});
