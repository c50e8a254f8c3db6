/**
 * The console's table CSS in a real browser (Debian's chromium driven by playwright-core), without
 * the service: a page built by the console's own `layout` and table markup, crowded with long
 * words, amounts, addresses and hashes, at 1280 px. Words and amounts stay whole, addresses and
 * hashes break, nothing is wider than the window. The same page with the old `overflow-wrap:
 * anywhere` cells breaks words, which shows the check can fail. Screenshot in .artifacts/console/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CSS, html, layout, amount as tokenAmount } from "./html.js";
import {
  type ConsoleBrowser,
  expectNoHorizontalOverflow,
  expectWordsWhole,
  launchConsoleBrowser,
  shot,
  VIEWPORT,
} from "./testing/browser.js";

const ETH = { symbol: "ETH", decimals: 18 };
const USDC = { symbol: "USDC", decimals: 6 };
const ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const HASH = `0x${"9f3a".repeat(16)}`;

/** Nine columns, as the treasury table has, with long content in every one of them. */
function crowdedPage(css: string): string {
  const rows = [0, 1, 2].map(
    (i) =>
      html`<tr><td>unexplained_balance_difference</td><td class="num">${31337 + i}</td><td class="num">${tokenAmount("1234567890123456789012345", ETH)}</td><td class="num">${tokenAmount("98765432109876", USDC)}</td><td class="mono">${ADDRESS}</td><td>treasury-operations-desk-frankfurt</td><td>initial float for the hot wallet of local-a after the quarterly rebalancing of reserves</td><td class="mono">${HASH}:${i}</td><td><time datetime="2026-12-01T22:00:00Z">2026-12-01 22:00:00 UTC</time></td></tr>`,
  );
  const page = layout({
    title: "Treasury",
    page: "treasury",
    who: { owner: "ops-admin", scopes: ["admin"], csrf: "x" },
    body: html`<table><thead><tr><th scope="col">Move</th><th scope="col" class="num">Chain</th><th scope="col" class="num">Amount</th><th scope="col" class="num">Gas</th><th scope="col">Wallet</th><th scope="col">By</th><th scope="col">Why</th><th scope="col">Transaction</th><th scope="col">When</th></tr></thead><tbody>${rows}</tbody></table>`,
  });
  return page
    .replace('<link rel="stylesheet" href="/console/assets/console.css">', `<style>${css}</style>`)
    .replace('<script src="/console/assets/console.js" defer></script>', "");
}

let browser: ConsoleBrowser;

beforeAll(async () => {
  browser = await launchConsoleBrowser("http://127.0.0.1");
});
afterAll(async () => {
  await browser?.close();
});

describe("console tables at 1280 px", () => {
  it("keep words and amounts whole, break addresses and hashes, fit the window", async () => {
    const context = await browser.browser.newContext({ viewport: VIEWPORT });
    const page = await context.newPage();
    await page.setContent(crowdedPage(CSS));
    await expectNoHorizontalOverflow(page, "crowded table");
    await expectWordsWhole(page, "crowded table");
    // the addresses and hashes did break (that is what makes the rest fit)
    const hashLines = await page.evaluate<number>(`(() => {
      const range = document.createRange();
      range.selectNodeContents(document.querySelectorAll("tbody tr")[0].querySelectorAll("td.mono")[1]);
      return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    })()`);
    expect(hashLines).toBeGreaterThan(1);
    await shot(page, "layout-crowded-table");

    // the old rule (every cell `overflow-wrap:anywhere`) breaks words: the check fails on it
    await page.setContent(
      crowdedPage(
        CSS.replace("overflow-wrap:break-word}", "overflow-wrap:anywhere}").replace(
          ".amount{white-space:nowrap}",
          "",
        ),
      ),
    );
    await expect(expectWordsWhole(page, "old CSS")).rejects.toThrow(/broken across lines/);
    await context.close();
  }, 60_000);
});
