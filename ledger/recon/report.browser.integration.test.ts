/**
 * The HTML reconciliation report in a real browser (Debian's chromium via playwright-core) at a
 * 1280 px laptop width: amounts in token units with the symbol, no horizontal overflow of the page or
 * any table, chart labels clear of their values, and a printable PDF. Screenshot and PDF go to
 * .artifacts/console/ (git-ignored).
 */
import { mkdirSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildReport, reportHtml } from "./report.js";
import type { StoredRun } from "./store.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = ".artifacts/console";
const ETH = "1:0x0000000000000000000000000000000000000000";
const USDC = "1:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
const hash = (c: string) => `0x${c.repeat(64)}`;

/** A run with what widens reports: long hashes and keys, 25-digit wei amounts, many break types. */
function wideRun(): StoredRun {
  const fact = (n: number, assetId: string, amount: string) => ({
    id: n,
    blockNumber: 19_000_000 + n,
    txHash: hash(String(n % 10)),
    position: "log:12",
    kind: "erc20" as const,
    assetId,
    from: `0x${"1".repeat(40)}`,
    to: `0x${"2".repeat(40)}`,
    amount,
    status: "confirmed" as const,
  });
  const types = ["missing_credit", "double_credit", "amount_mismatch", "unbooked_outflow"];
  return {
    id: 4242,
    chainId: 1,
    block: 19_000_100,
    blockHash: hash("f"),
    mode: "full",
    status: "completed",
    previousRunId: 4241,
    factsExamined: 120_000,
    entriesExamined: 119_990,
    matched: 119_980,
    breakCount: 8,
    inputs: {},
    balances: [
      ...[ETH, USDC].flatMap((assetId) => [
        {
          scope: "hot" as const,
          address: `0x${"a".repeat(40)}`,
          assetId,
          chain: assetId === ETH ? "1234567891234567891234567" : "98765432101234",
          ledger: assetId === ETH ? "1234566891234567891234567" : "98765432101234",
          difference: assetId === ETH ? "-1000000000000000000000" : "0",
          explained: assetId === ETH ? "-1000000000000000000000" : "0",
          unexplained: "0",
        },
        {
          scope: "solvency" as const,
          address: null,
          assetId,
          chain: "9999999999999999999999999",
          ledger: "9999999999999999999999990",
          difference: "9",
          explained: "0",
          unexplained: "0",
        },
      ]),
    ],
    error: null,
    startedAt: "2026-12-01T00:00:00.000Z",
    finishedAt: "2026-12-01T00:00:09.000Z",
    breaks: Array.from({ length: 8 }, (_, i) => {
      const assetId = i % 2 === 0 ? ETH : USDC;
      const amount = assetId === ETH ? "1500000000000000000" : "2500000000";
      return {
        n: i + 1,
        type: types[i % types.length]!,
        assetId,
        key: `${hash(String(i))}:log:12`,
        direction: "chain_without_ledger",
        chainAmount: amount,
        ledgerAmount: "0",
        difference: `-${amount}`,
        action:
          "credit the deposit (custody-node ledger credit) after checking the transfer on a block explorer",
        identity: `1:${types[i % types.length]}:${hash(String(i))}:log:12`,
        facts: [fact(i, assetId, amount)],
        entries: [],
      };
    }),
  };
}

let browser: Browser;
beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
});

describe("reconciliation report in chromium at 1280 px", () => {
  it("formats amounts, fits the width, keeps chart labels off the values, prints", async () => {
    const report = buildReport(
      wideRun(),
      new Map([
        [ETH, { symbol: "ETH", decimals: 18 }],
        [USDC, { symbol: "USDC", decimals: 6 }],
      ]),
    );
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.setContent(reportHtml(report), { waitUntil: "load" });
    await page.screenshot({ path: `${ARTIFACTS}/recon-report.png`, fullPage: true });

    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's Locator.innerText (the text as rendered), not the DOM property
    const text = (await page.locator("body").innerText()).replace(/\s+/g, " ");
    expect(text).toContain("1,234,567.891234567891234567 ETH");
    expect(text).toContain("1.5 ETH");
    expect(text).toContain("2,500 USDC");
    expect(text).toContain("−1,000 ETH");
    // no wei left in the tables: the 25-digit base units appear only in titles
    expect(text).not.toContain("1234567891234567891234567");
    expect(
      await page.locator('span.amt[title="1234567891234567891234567 base units"]').count(),
    ).toBe(1);

    // In the page (a string: this project's TypeScript has no DOM types).
    const widths = await page.evaluate<{ page: number[]; tables: number[][]; chart: number[] }>(`({
      page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
      tables: [...document.querySelectorAll("table")].map((t) => [t.scrollWidth, t.parentElement.clientWidth]),
      chart: [document.querySelector("svg.chart").getBoundingClientRect().width, document.querySelector("main").clientWidth],
    })`);
    expect(widths.page[0]).toBeLessThanOrEqual(widths.page[1]!);
    expect(widths.tables.length).toBe(3);
    for (const [scroll, room] of widths.tables) expect(scroll).toBeLessThanOrEqual(room!);
    expect(widths.chart[0]).toBeLessThanOrEqual(widths.chart[1]!);

    // each chart row: label, bar and value do not overlap (boxes as rendered)
    const overlaps = await page.evaluate<string[]>(`(() => {
      const hit = (a, b) =>
        a.width > 0 && b.width > 0 && a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      return [...document.querySelectorAll("svg.chart g")].flatMap((g, i) => {
        const [label, value] = [...g.querySelectorAll("text")].map((t) => t.getBoundingClientRect());
        const bar = g.querySelector("rect").getBoundingClientRect();
        const out = [];
        if (hit(label, value)) out.push("row " + i + ": label/value");
        if (hit(label, bar)) out.push("row " + i + ": label/bar");
        if (hit(bar, value)) out.push("row " + i + ": bar/value");
        return out;
      });
    })()`);
    expect(await page.locator("svg.chart g").count()).toBe(4 + 8);
    expect(overlaps).toEqual([]);

    // printable: a PDF renders (A4 landscape from the page's @page rule)
    await page.emulateMedia({ media: "print" });
    const pdf = await page.pdf({ path: `${ARTIFACTS}/recon-report.pdf`, preferCSSPageSize: true });
    expect(pdf.subarray(0, 5).toString()).toBe("%PDF-");
    await page.close();
  });
});
