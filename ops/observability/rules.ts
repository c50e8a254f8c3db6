/**
 * Reading the observability files: alert names and runbooks from alerts.yml, the cases of
 * alerts.test.yml, and every metric name the alert expressions and dashboards query.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const observabilityDir = path.dirname(fileURLToPath(import.meta.url));
export const alertsPath = path.join(observabilityDir, "alerts.yml");
export const alertTestsPath = path.join(observabilityDir, "alerts.test.yml");
export const dashboardsDir = path.join(observabilityDir, "dashboards");

export type AlertRule = { name: string; expr: string; runbookUrl: string | undefined };

/** The alerts of alerts.yml (its shape is fixed: `- alert:`, `expr:` with `|` blocks, annotations). */
export function alertRules(text = readFileSync(alertsPath, "utf8")): AlertRule[] {
  const blocks = text.split(/^\s+- alert: /m).slice(1);
  return blocks.map((block) => {
    const name = block.split("\n")[0]?.trim() ?? "";
    const exprMatch = /expr: \|\n((?:\s{10,}.*\n)+)|expr: (.*)\n/.exec(block);
    const expr = (exprMatch?.[1] ?? exprMatch?.[2] ?? "").trim();
    const runbookUrl = /runbook_url: (\S+)/.exec(block)?.[1];
    return { name, expr, runbookUrl };
  });
}

/** For each alert name, whether alerts.test.yml has a case expecting it silent and one firing. */
export function alertTestCases(
  text = readFileSync(alertTestsPath, "utf8"),
): Map<string, { silent: number; firing: number }> {
  const cases = new Map<string, { silent: number; firing: number }>();
  const re = /alertname: (\w+)\n\s+exp_alerts:( \[\])?/g;
  for (const m of text.matchAll(re)) {
    const entry = cases.get(m[1] as string) ?? { silent: 0, firing: 0 };
    if (m[2]) entry.silent += 1;
    else entry.firing += 1;
    cases.set(m[1] as string, entry);
  }
  return cases;
}

/** Prometheus histogram and summary series names map back to the metric the service declares. */
export function baseMetricName(series: string): string {
  return series.replace(/_(bucket|count|sum)$/, "");
}

/** Every `custody_*` metric a PromQL expression names. */
export function metricNamesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bcustody_[a-z0-9_]+/g)].map((m) => baseMetricName(m[0])))];
}

export type Dashboard = { file: string; title: string; exprs: string[] };

/** Every dashboard JSON with the PromQL expressions of its panels' targets. */
export function dashboards(): Dashboard[] {
  return readdirSync(dashboardsDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => {
      const json = JSON.parse(readFileSync(path.join(dashboardsDir, file), "utf8")) as {
        title: string;
        panels: { targets?: { expr: string }[] }[];
        templating?: { list: { query?: unknown }[] };
      };
      const exprs = json.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
      for (const v of json.templating?.list ?? [])
        if (typeof v.query === "string") exprs.push(v.query);
        else if (v.query && typeof v.query === "object" && "query" in v.query)
          exprs.push(String(v.query.query));
      return { file, title: json.title, exprs };
    });
}
