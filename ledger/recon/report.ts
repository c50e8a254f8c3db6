/**
 * Reports of a stored run: a JSON object (amounts as decimal strings), a CSV of the breaks, and a
 * self-contained HTML page (summary per asset, an inline SVG chart of the differences, the break
 * list). Built from what the run stored, so any past run can be reported again.
 */
import { type AssetUnits, formatTokenAmount } from "../../foundation/amounts.js";
import type { Pool } from "../../foundation/db.js";
import { readRun, type StoredRun } from "./store.js";

export type AssetInfo = AssetUnits;

export type AssetSummary = {
  assetId: string;
  symbol: string;
  /** The asset's decimals; null when the asset is not listed (amounts then show in base units). */
  decimals: number | null;
  breaks: number;
  /** Sum of break differences (ledger − chain), base units. */
  breakDifference: string;
  /** Sum of unexplained balance differences, base units. */
  unexplained: string;
  /** Custody assets − user liabilities, base units. */
  solvencySurplus: string | null;
};

export type RunReport = {
  run: Omit<StoredRun, "breaks" | "balances">;
  clean: boolean;
  /** One sentence a person can read first. */
  verdict: string;
  summary: AssetSummary[];
  balances: StoredRun["balances"];
  breaks: StoredRun["breaks"];
  /** Reorg holds (handled reorgs, not breaks): open ones, and ones posted (at finality, or against their return) since the previous run. */
  holds: NonNullable<StoredRun["holds"]>;
};

export function buildReport(
  stored: StoredRun,
  assets: ReadonlyMap<string, AssetInfo> = new Map(),
): RunReport {
  const { breaks, balances, holds = [], ...run } = stored;
  const ids = new Set<string>([...breaks.map((b) => b.assetId), ...balances.map((c) => c.assetId)]);
  const summary: AssetSummary[] = [...ids].sort().map((assetId) => {
    const mine = breaks.filter((b) => b.assetId === assetId);
    const checks = balances.filter((c) => c.assetId === assetId);
    const solvency = checks.find((c) => c.scope === "solvency");
    return {
      assetId,
      symbol: assets.get(assetId)?.symbol ?? assetId,
      decimals: assets.get(assetId)?.decimals ?? null,
      breaks: mine.length,
      breakDifference: sum(mine.map((b) => b.difference)),
      unexplained: sum(checks.filter((c) => c.scope !== "solvency").map((c) => c.unexplained)),
      solvencySurplus: solvency ? solvency.difference : null,
    };
  });
  const clean = stored.status === "completed" && breaks.length === 0;
  const verdict =
    stored.status === "failed"
      ? `Run ${stored.id} failed: ${stored.error ?? "unknown error"}`
      : stored.status === "running"
        ? `Run ${stored.id} is still running`
        : clean
          ? `No breaks: chain ${stored.chainId} at block ${stored.block} matches the ledger (${stored.matched} facts matched, balances agree).`
          : `${breaks.length} break${breaks.length === 1 ? "" : "s"} on chain ${stored.chainId} at block ${stored.block}: ${typeCounts(breaks)}${stateNote(breaks)}.`;
  const open = holds.filter((h) => h.state === "held").length;
  const returned = holds.filter((h) => h.returned !== undefined).length;
  const holdNote =
    stored.status === "completed" && holds.length > 0
      ? ` ${holds.length} reorg hold${holds.length === 1 ? "" : "s"} (${open} open, ${holds.length - open - returned} posted at finality${returned > 0 ? `, ${returned} returned` : ""}).`
      : "";
  return { run, clean, verdict: verdict + holdNote, summary, balances, breaks, holds };
}

/** ` (1 open, 2 acknowledged)` from where each break stands now; empty for old runs. */
function stateNote(breaks: StoredRun["breaks"]): string {
  const counts = new Map<string, number>();
  for (const b of breaks) {
    const state = b.current?.state ?? b.state;
    if (state) counts.set(state, (counts.get(state) ?? 0) + 1);
  }
  return counts.size === 0 ? "" : ` (${[...counts].map(([t, n]) => `${n} ${t}`).join(", ")})`;
}

/** A break's state for people: `acknowledged by anna: known, booked tomorrow`. */
export function breakStateText(b: StoredRun["breaks"][number]): string {
  const c = b.current;
  if (!c) return b.state ?? "";
  if (c.state === "acknowledged")
    return `acknowledged by ${c.acknowledgedBy ?? "?"}: ${c.acknowledgedReason ?? ""}`;
  if (c.state === "resolved")
    return `resolved by ${c.resolvedBy ?? "?"} (${c.resolvedRef ?? "-"}): ${c.resolvedReason ?? ""}`;
  return c.state;
}

function sum(values: string[]): string {
  return values.reduce((s, v) => s + BigInt(v), 0n).toString();
}

function typeCounts(breaks: StoredRun["breaks"]): string {
  const counts = new Map<string, number>();
  for (const b of breaks) counts.set(b.type, (counts.get(b.type) ?? 0) + 1);
  return [...counts].map(([t, n]) => `${n} ${t}`).join(", ");
}

const CSV_COLUMNS = [
  "run_id",
  "n",
  "type",
  "asset",
  "key",
  "direction",
  "chain_amount",
  "ledger_amount",
  "difference",
  "fact_ids",
  "entry_ids",
  "action",
  "state",
  "identity",
] as const;

function csvCell(value: string): string {
  // Quote always; a leading = + - @ is prefixed so spreadsheets do not run it as a formula.
  const safe = /^[=+\-@]/.test(value) && !/^-[0-9]+$/.test(value) ? `'${value}` : value;
  return `"${safe.replaceAll('"', '""')}"`;
}

export function reportCsv(report: RunReport): string {
  const lines = [CSV_COLUMNS.join(",")];
  for (const b of report.breaks) {
    lines.push(
      [
        String(report.run.id),
        String(b.n),
        b.type,
        b.assetId,
        b.key,
        b.direction ?? "",
        b.chainAmount,
        b.ledgerAmount,
        b.difference,
        b.facts.map((f) => f.id).join(" "),
        b.entries.map((e) => e.id).join(" "),
        b.action,
        breakStateText(b),
        b.identity ?? "",
      ]
        .map(csvCell)
        .join(","),
    );
  }
  // Reorg holds follow the breaks, one row each (type reorg_hold): the handled reorgs.
  for (const h of report.holds) {
    lines.push(
      [
        String(report.run.id),
        "",
        "reorg_hold",
        h.assetId,
        `${h.txHash}:${h.position}`,
        "",
        "0",
        h.amount,
        "0",
        "",
        h.creditId,
        holdAction(h),
        holdState(h),
        "",
      ]
        .map(csvCell)
        .join(","),
    );
  }
  return `${lines.join("\r\n")}\r\n`;
}

/** A hold's state as reports show it: a credit closed by its deposit's return is `returned`. */
export function holdState(h: RunReport["holds"][number]): string {
  return h.returned !== undefined ? "returned" : h.state;
}

function holdAction(h: RunReport["holds"][number]): string {
  // Closed against its return: nothing is owed any more and nothing is left to do.
  if (h.returned !== undefined)
    return `deposit to ${h.toAddress} came back as ${h.txHash}:${h.returned.position} (credit ${h.returned.creditId}): that credit carries it; hold posted against it${BigInt(h.shortfallAmount) > 0n ? `, receivable:reorg:${h.owner} paid out of it (up to what was still owed), withdrawals unblocked` : ""}`;
  const shortfall = BigInt(h.shortfallAmount) > 0n;
  const parts = `${h.holdAmount} held from user:${h.owner}${shortfall ? `, ${h.shortfallAmount} on receivable:reorg:${h.owner} (withdrawals blocked)` : ""}`;
  return h.state === "held"
    ? `deposit to ${h.toAddress} orphaned at block ${h.orphanedBlock ?? "?"}: ${parts}; voided if it confirms again, posted when that height is final`
    : `deposit to ${h.toAddress} final without it: ${parts} posted${shortfall ? "; recover the receivable from the customer (what becomes available on their balance repays it automatically; the block lifts when nothing is owed)" : ""}`;
}

function esc(value: unknown): string {
  return String(value)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

function assetInfoOf(report: RunReport, assetId: string): AssetInfo | undefined {
  const s = report.summary.find((x) => x.assetId === assetId);
  return s && s.decimals !== null ? { symbol: s.symbol, decimals: s.decimals } : undefined;
}

/** An amount cell's content: token units, raw base units on hover. */
function amountHtml(report: RunReport, assetId: string, raw: string | null): string {
  if (raw === null || raw === "") return "";
  const info = assetInfoOf(report, assetId);
  return info
    ? `<span class="amt" title="${esc(raw)} base units">${esc(formatTokenAmount(raw, info))}</span>`
    : `<span class="amt">${esc(raw)}</span>`;
}

const short = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/**
 * Horizontal bars of each balance check's difference (and unexplained part), to a common scale, in
 * three columns that never overlap: the label (cut to fit, full text on hover), the bars around a
 * zero line, and the value in token units, right-aligned in a column of its own.
 */
export function differenceChart(report: RunReport): string {
  const rows = report.balances.map((c) => ({
    label: `${c.scope}${c.address ? ` ${c.address.slice(0, 10)}…` : ""} ${report.summary.find((s) => s.assetId === c.assetId)?.symbol ?? c.assetId}`,
    assetId: c.assetId,
    diff: BigInt(
      c.scope === "solvency" ? (BigInt(c.difference) < 0n ? c.difference : "0") : c.difference,
    ),
    unexplained: BigInt(c.unexplained),
  }));
  for (const b of report.breaks.filter((x) => x.type !== "unexplained_balance_difference"))
    rows.push({
      label: `${b.type} ${b.key.slice(0, 14)}…`,
      assetId: b.assetId,
      diff: BigInt(b.difference),
      unexplained: 0n,
    });
  const abs = (v: bigint) => (v < 0n ? -v : v);
  // Math.max does not take bigints.
  let max = 0n;
  for (const r of rows) if (abs(r.diff) > max) max = abs(r.diff);
  const labelW = 300;
  const barsW = 440;
  const valueW = 220;
  const width = labelW + barsW + valueW;
  const zero = labelW + barsW / 2;
  const rowH = 24;
  const top = 28;
  const height = Math.max(1, rows.length) * rowH + top + 6;
  const scale = (v: bigint) =>
    (max === 0n ? 0 : Number((abs(v) * 1000n) / max) / 1000) * (barsW / 2 - 8);
  const bars = rows
    .map((r, i) => {
      const y = top + i * rowH;
      const w = scale(r.diff);
      const x = r.diff < 0n ? zero - w : zero;
      const color = r.unexplained !== 0n ? "#b42318" : r.diff === 0n ? "#95a5a6" : "#d9730d";
      const value = formatTokenAmount(r.diff.toString(), assetInfoOf(report, r.assetId));
      return `<g><title>${esc(`${r.label}: ${value} (${r.diff} base units)`)}</title><text x="4" y="${y + 15}" font-size="12">${esc(short(r.label, 40))}</text><rect x="${x.toFixed(1)}" y="${y + 4}" width="${Math.max(w, r.diff === 0n ? 0 : 1).toFixed(1)}" height="14" fill="${color}"/><text class="value" x="${width - 4}" y="${y + 15}" font-size="12" text-anchor="end">${esc(value)}</text></g>`;
    })
    .join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="differences, ledger minus chain" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><text x="${zero}" y="14" font-size="12" text-anchor="middle">ledger − chain; red: unexplained</text><text x="${width - 4}" y="14" font-size="12" text-anchor="end" font-weight="bold">difference</text><line x1="${zero}" y1="20" x2="${zero}" y2="${height}" stroke="#333"/>${bars}</svg>`;
}

const REPORT_CSS = `*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:100%}
table{border-collapse:collapse;margin:1em 0;width:100%;table-layout:auto}
td,th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px;overflow-wrap:break-word}
td code,td small{overflow-wrap:anywhere}
th{background:#f4f4f4;overflow-wrap:normal;word-break:normal}td.num,th.num{text-align:right}.amt{white-space:nowrap}
.verdict{font-size:1.2em;padding:.6em;border-radius:4px}.clean{background:#e8f8ec}.breaks{background:#fdecea}
tr.bad td{background:#fdecea}code{font-size:12px}svg.chart{max-width:100%;height:auto}
@media print{body{margin:0;font-size:11px}td,th{font-size:10px;padding:2px 4px}tr,svg{break-inside:avoid}h2{break-after:avoid}
.verdict,.clean,.breaks,tr.bad td{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
@page{size:A4 landscape;margin:12mm}`;

export function reportHtml(report: RunReport): string {
  const r = report.run;
  const amt = (assetId: string, raw: string | null) => amountHtml(report, assetId, raw);
  const summaryRows = report.summary
    .map(
      (s) =>
        `<tr><td>${esc(s.symbol)}<br><small>${esc(s.assetId)}</small></td><td class="num">${s.breaks}</td><td class="num">${amt(s.assetId, s.breakDifference)}</td><td class="num">${amt(s.assetId, s.unexplained)}</td><td class="num">${amt(s.assetId, s.solvencySurplus)}</td></tr>`,
    )
    .join("");
  const symbolOf = (assetId: string) =>
    report.summary.find((s) => s.assetId === assetId)?.symbol ?? assetId;
  const balanceRows = report.balances
    .map(
      (c) =>
        `<tr${c.unexplained !== "0" ? ' class="bad"' : ""}><td>${esc(c.scope)}</td><td><code>${esc(c.address ?? "")}</code></td><td>${esc(symbolOf(c.assetId))}</td><td class="num">${amt(c.assetId, c.chain)}</td><td class="num">${amt(c.assetId, c.ledger)}</td><td class="num">${amt(c.assetId, c.difference)}</td><td class="num">${amt(c.assetId, c.explained)}</td><td class="num">${amt(c.assetId, c.unexplained)}</td></tr>`,
    )
    .join("");
  const breakRows = report.breaks
    .map(
      (b) =>
        `<tr><td>${b.n}</td><td><b>${esc(b.type)}</b>${b.direction ? `<br><small>${esc(b.direction)}</small>` : ""}</td><td>${esc(symbolOf(b.assetId))}</td><td><code>${esc(b.key)}</code></td><td class="num">${amt(b.assetId, b.chainAmount)}</td><td class="num">${amt(b.assetId, b.ledgerAmount)}</td><td class="num">${amt(b.assetId, b.difference)}</td><td>${[...b.facts.map((f) => `fact ${esc(f.id)} (${esc(f.status)}, block ${esc(f.blockNumber)}, ${amt(f.assetId, f.amount)})`), ...b.entries.map((e) => `transfer <code>${esc(e.id)}</code> ${esc(e.kind)} ${amt(b.assetId, e.amount)}`)].join("<br>")}</td><td>${esc(b.action)}</td><td>${esc(breakStateText(b))}${b.identity ? `<br><small><code>${esc(b.identity)}</code></small>` : ""}</td></tr>`,
    )
    .join("");
  const holdRows = report.holds
    .map(
      (h) =>
        `<tr${BigInt(h.shortfallAmount) > 0n && h.returned === undefined ? ' class="bad"' : ""}><td>${esc(holdState(h))}</td><td>${esc(h.owner)}</td><td>${esc(symbolOf(h.assetId))}</td><td><code>${esc(`${h.txHash}:${h.position}`)}</code><br><small>to ${esc(h.toAddress)}</small></td><td class="num">${amt(h.assetId, h.amount)}</td><td class="num">${amt(h.assetId, h.holdAmount)}</td><td class="num">${amt(h.assetId, h.shortfallAmount)}</td><td>${esc(h.orphanedBlock ?? "")}</td><td>${esc(holdAction(h))}</td></tr>`,
    )
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Reconciliation run ${r.id}</title>
<style>${REPORT_CSS}</style>
</head><body><main>
<h1>Reconciliation run ${r.id}</h1>
<p class="verdict ${report.clean ? "clean" : "breaks"}">${esc(report.verdict)}</p>
<p>Chain ${r.chainId}, block ${r.block}${r.blockHash ? ` (<code>${esc(r.blockHash)}</code>)` : ""}; ${esc(r.mode)} run${r.previousRunId ? ` continuing run ${r.previousRunId}` : ""}; status ${esc(r.status)}; started ${esc(r.startedAt)}, finished ${esc(r.finishedAt ?? "-")}. Examined ${r.factsExamined} chain facts and ${r.entriesExamined} ledger transfers; ${r.matched} matched. Amounts in token units; hover one for its exact base units (the CSV has them).</p>
<p>Audit log head at completion: ${r.auditHead ? `seq ${r.auditHead.seq}, <code>${esc(r.auditHead.hash)}</code>` : "(empty or not recorded)"}.</p>
<h2>Summary per asset</h2>
<table><thead><tr><th>asset</th><th class="num">breaks</th><th class="num">break difference (ledger − chain)</th><th class="num">unexplained balance difference</th><th class="num">solvency surplus (assets − liabilities)</th></tr></thead><tbody>${summaryRows}</tbody></table>
<h2>Differences</h2>
${differenceChart(report)}
<h2>Balances at block ${r.block}</h2>
<table><thead><tr><th>check</th><th>address</th><th>asset</th><th class="num">chain</th><th class="num">ledger</th><th class="num">difference</th><th class="num">explained by breaks</th><th class="num">unexplained</th></tr></thead><tbody>${balanceRows}</tbody></table>
<h2>Reorg holds</h2>
${report.holds.length === 0 ? "<p>No reorg holds.</p>" : `<table><thead><tr><th>state</th><th>customer</th><th>asset</th><th>deposit</th><th class="num">amount</th><th class="num">held</th><th class="num">receivable</th><th>orphaned at</th><th>what happens</th></tr></thead><tbody>${holdRows}</tbody></table>`}
<h2>Breaks</h2>
${report.breaks.length === 0 ? "<p>No breaks.</p>" : `<table><thead><tr><th>#</th><th>type</th><th>asset</th><th>key</th><th class="num">chain</th><th class="num">ledger</th><th class="num">difference</th><th>items</th><th>suggested action</th><th>state</th></tr></thead><tbody>${breakRows}</tbody></table>`}
</main></body></html>
`;
}

export type RenderedReport = { json: RunReport; csv: string; html: string };

/** A stored run's report in all three forms (for the CLI and the API's `recon:read` routes). */
export async function getRunReport(pool: Pool, runId: number): Promise<RenderedReport> {
  const stored = await readRun(pool, runId);
  const a = await pool.query<{ id: string; symbol: string; decimals: number }>(
    "SELECT id, symbol, decimals FROM ledger.asset_list WHERE chain_id = $1",
    [stored.chainId],
  );
  const assets = new Map(a.rows.map((x) => [x.id, { symbol: x.symbol, decimals: x.decimals }]));
  const json = buildReport(stored, assets);
  return { json, csv: reportCsv(json), html: reportHtml(json) };
}
