/**
 * For the console's browser tests: Debian's chromium driven by playwright-core (the system
 * executable, or CHROMIUM_PATH), signing in through the console's own form, screenshots in
 * .artifacts/console/ (git-ignored), the 1280 px no-horizontal-overflow check, and a waiting text
 * check with a deadline.
 */
import { mkdirSync } from "node:fs";
import {
  type Browser,
  type BrowserContext,
  chromium,
  type Locator,
  type Page,
} from "playwright-core";
import { expect } from "vitest";
import { waitFor } from "../../../ops/testing/wait.js";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ARTIFACTS = ".artifacts/console";
/** The width the issue asks the console and the report to be usable at. */
export const VIEWPORT = { width: 1280, height: 900 } as const;

export type ConsoleBrowser = {
  browser: Browser;
  /**
   * A fresh browser context signed in with `key` through the sign-in form, reached the way a person
   * reaches it: a console page (`from`, default the overview) sends a signed-out browser there.
   * Lands on the overview.
   */
  signIn: (key: string, from?: string) => Promise<{ context: BrowserContext; page: Page }>;
  close: () => Promise<void>;
};

export async function launchConsoleBrowser(url: string): Promise<ConsoleBrowser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  return {
    browser,
    async signIn(key, from = "/console") {
      const context = await browser.newContext({ viewport: VIEWPORT });
      const page = await context.newPage();
      await page.goto(`${url}${from}`);
      expect(new URL(page.url()).pathname, `${from} signed out`).toBe("/console/sign-in");
      await page.getByLabel("API key").fill(key);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForURL(`${url}/console`);
      return { context, page };
    },
    close: () => browser.close(),
  };
}

/** Full-page screenshot to .artifacts/console/<name>.png for people to look at. */
export const shot = (page: Page, name: string) =>
  page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });

/** Nothing on the page is wider than the window (measured in the page). */
export async function expectNoHorizontalOverflow(page: Page, label: string): Promise<void> {
  const [scroll, client] = await page.evaluate<number[]>(
    "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
  );
  expect(scroll, `${label} scrollWidth`).toBeLessThanOrEqual(client!);
}

/** Waits (with a deadline, then throws) until the element's text contains `text`. */
export const shows = (locator: Locator, text: string, timeoutMs = 20_000) =>
  waitFor(
    `"${text}" on the page`,
    async () =>
      ((await locator.textContent({ timeout: 1000 }).catch(() => "")) ?? "").includes(text),
    { timeoutMs },
  );

/**
 * Words and amounts are not broken across lines in the page's table cells: every whitespace- or
 * hyphen-separated piece of text outside `.mono` (addresses, hashes: those may break anywhere) and
 * `.visually-hidden` (screen-reader labels), and
 * every `.amount` as a whole, lies on one line (its client rects share one top). Returns nothing;
 * fails naming the broken words.
 */
export async function expectWordsWhole(page: Page, label: string): Promise<void> {
  const broken = await page.evaluate<string[]>(`(() => {
    const out = [];
    const lines = (range) => new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))).size;
    for (const cell of document.querySelectorAll("td, th")) {
      const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        // addresses and hashes may break; screen-reader-only labels are 1 px wide on purpose
        if (node.parentElement.closest(".mono, .visually-hidden")) continue;
        const text = node.textContent;
        for (const m of text.matchAll(/[^\\s-]+/g)) {
          const range = document.createRange();
          range.setStart(node, m.index);
          range.setEnd(node, m.index + m[0].length);
          if (lines(range) > 1) out.push(m[0]);
        }
      }
      for (const amount of cell.querySelectorAll(".amount")) {
        const range = document.createRange();
        range.selectNodeContents(amount);
        if (lines(range) > 1) out.push(amount.textContent);
      }
    }
    return out;
  })()`);
  expect(broken, `${label}: words or amounts broken across lines`).toEqual([]);
}
