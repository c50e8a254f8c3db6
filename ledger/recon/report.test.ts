import { describe, expect, it } from "vitest";
import { buildReport, reportCsv, reportHtml } from "./report.js";
import type { StoredRun } from "./store.js";

const ETH = "31337:0x0000000000000000000000000000000000000000";

function stored(over: Partial<StoredRun> = {}): StoredRun {
  return {
    id: 7,
    chainId: 31337,
    block: 120,
    blockHash: "0xabc",
    mode: "full",
    status: "completed",
    previousRunId: null,
    factsExamined: 10,
    entriesExamined: 10,
    matched: 10,
    breakCount: 0,
    inputs: {},
    balances: [
      {
        scope: "hot",
        address: `0x${"a".repeat(40)}`,
        assetId: ETH,
        chain: "1000",
        ledger: "1000",
        difference: "0",
        explained: "0",
        unexplained: "0",
      },
      {
        scope: "solvency",
        address: null,
        assetId: ETH,
        chain: "1000",
        ledger: "400",
        difference: "600",
        explained: "0",
        unexplained: "0",
      },
    ],
    error: null,
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:00:01.000Z",
    breaks: [],
    ...over,
  };
}

const aBreak = (n: number, type: string, difference: string, action = "do it") => ({
  n,
  type,
  assetId: ETH,
  key: `0x${n}:tx`,
  direction: "chain_without_ledger",
  chainAmount: "5",
  ledgerAmount: "0",
  difference,
  action,
  facts: [
    {
      id: n,
      blockNumber: 3,
      txHash: `0x${n}`,
      position: "tx",
      kind: "native" as const,
      assetId: ETH,
      from: "0x1",
      to: "0x2",
      amount: "5",
      status: "confirmed" as const,
    },
  ],
  entries: [],
});

describe("reports", () => {
  it("says plainly that a clean run has no breaks", () => {
    const r = buildReport(stored(), new Map([[ETH, { symbol: "ETH", decimals: 18 }]]));
    expect(r.clean).toBe(true);
    expect(r.verdict).toMatch(/^No breaks/);
    expect(r.summary).toEqual([
      {
        assetId: ETH,
        symbol: "ETH",
        decimals: 18,
        breaks: 0,
        breakDifference: "0",
        unexplained: "0",
        solvencySurplus: "600",
      },
    ]);
    expect(reportCsv(r).trim().split("\r\n")).toHaveLength(1);
    const html = reportHtml(r);
    expect(html).toContain("No breaks");
    expect(html).toContain("<svg");
  });

  it("lists every break in CSV and HTML, escaped", () => {
    const r = buildReport(
      stored({
        breakCount: 2,
        breaks: [
          aBreak(0, "missing_credit", "-5", 'say "hi", <b>'),
          aBreak(1, "double_credit", "5", "=cmd()"),
        ],
      }),
    );
    expect(r.clean).toBe(false);
    expect(r.verdict).toBe(
      "2 breaks on chain 31337 at block 120: 1 missing_credit, 1 double_credit.",
    );
    expect(r.summary[0]!.breakDifference).toBe("0");
    const csv = reportCsv(r).trim().split("\r\n");
    expect(csv).toHaveLength(3);
    expect(csv[1]).toContain('"say ""hi"", <b>"');
    expect(csv[1]).toContain('"-5"');
    expect(csv[2]).toContain(`"'=cmd()"`);
    const html = reportHtml(r);
    expect(html).toContain("say &quot;hi&quot;, &lt;b&gt;");
    expect(html).not.toContain('<b>"');
    expect(html).toContain("missing_credit");
    expect(html).toContain("double_credit");
  });

  it("lists reorg holds after the breaks (CSV rows of type reorg_hold, an HTML section) without making the run unclean", () => {
    const hold = (state: "held" | "final", shortfall: string) => ({
      creditId: `c-${state}`,
      owner: state === "held" ? "alice" : "bob",
      assetId: ETH,
      txHash: `0x${state}`,
      position: "tx",
      toAddress: `0x${"d".repeat(40)}`,
      amount: "150",
      state,
      holdAmount: (150n - BigInt(shortfall)).toString(),
      shortfallAmount: shortfall,
      orphanedBlock: 118,
      updatedAt: "2026-01-01T00:00:00.000Z",
    });
    const r = buildReport(stored({ holds: [hold("held", "0"), hold("final", "140")] }));
    expect(r.clean).toBe(true);
    expect(r.verdict).toMatch(/^No breaks.* 2 reorg holds \(1 open, 1 posted at finality\)\.$/);
    const csv = reportCsv(r).trim().split("\r\n");
    expect(csv).toHaveLength(3);
    expect(csv[1]).toMatch(
      /^"7","","reorg_hold","[^"]+","0xheld:tx","","0","150","0","","c-held","[^"]*150 held from user:alice; voided if it confirms again/,
    );
    expect(csv[2]).toContain("140 on receivable:reorg:bob (withdrawals blocked)");
    const html = reportHtml(r);
    expect(html).toMatch(/<h2>Reorg holds<\/h2>\s*<table>.*0xheld:tx.*0xfinal:tx.*<\/table>/s);
    expect(reportHtml(buildReport(stored()))).toContain("No reorg holds.");
  });

  it("reports a failed run as failed, not clean", () => {
    const r = buildReport(stored({ status: "failed", error: "rpc down" }));
    expect(r.clean).toBe(false);
    expect(r.verdict).toBe("Run 7 failed: rpc down");
  });

  it("shows amounts in token units with the symbol, base units on hover", () => {
    // the formatting itself is foundation/amounts.ts's formatTokenAmount (its unit test)
    const eth = { symbol: "ETH", decimals: 18 };
    const html = reportHtml(buildReport(stored(), new Map([[ETH, eth]])));
    expect(html).toContain(
      '<span class="amt" title="600 base units">0.0000000000000006 ETH</span>',
    );
    // unknown asset: base units, as before
    expect(reportHtml(buildReport(stored()))).toContain('<span class="amt">600</span>');
  });
});
