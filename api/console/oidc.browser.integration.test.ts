/**
 * SSO sign-in in a real browser (Debian's chromium driven by playwright-core): the console listens
 * on loopback beside a real OIDC provider (testing/oidcProvider.ts); a person clicks "Sign in with SSO",
 * logs in and consents at the provider, and lands in the console signed in — which needs the flow
 * cookie to survive the provider's cross-site redirect back (SameSite=Lax) and the SameSite=Strict
 * session cookie to be sent after the callback's same-site hop. A person in no mapped group sees the
 * refusal. Screenshots go to .artifacts/console/ (git-ignored).
 */
import { mkdirSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../ops/testing/process.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import {
  consoleOidcOptions,
  startTestOidcProvider,
  type TestOidcProvider,
} from "./testing/oidcProvider.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = ".artifacts/console";
const USERS = { dora: ["custody-approvers"], eve: ["interns"] };

let provider: TestOidcProvider;
let t: ApiTestContext;
let browser: Browser;
let consoleUrl: string;

/**
 * The console on loopback with SSO configured. Its redirect URL (and so its port) must be known
 * before the app and the provider start, so the port is probed first; if another process takes it
 * before the console binds it (EADDRINUSE), everything is started again on another port.
 */
async function startConsole(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const redirectUri = `${url}/console/sso/callback`;
    const p = await startTestOidcProvider({ redirectUri, users: USERS });
    const ctx = await createApiTestContext(
      consoleOidcOptions(p, {
        redirectUrl: redirectUri,
        groups: { "custody-approvers": ["withdrawals:approve", "recon:read"] },
      }),
    );
    try {
      await ctx.app.listen({ port, host: "127.0.0.1" });
    } catch (err) {
      await p.close();
      await ctx.cleanup();
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE" && attempt < 5) continue;
      throw err;
    }
    [provider, t, consoleUrl] = [p, ctx, url];
    return;
  }
}

beforeAll(async () => {
  await startConsole();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await provider?.close();
  await t?.cleanup();
}, 180_000);

/** From the console's sign-in page through the provider's login and consent forms. */
async function ssoAs(page: Page, login: string) {
  await page.goto(`${consoleUrl}/console/sign-in`);
  await page.getByRole("link", { name: "Sign in with SSO" }).click();
  await page.waitForURL((u) => u.origin === provider.issuer, { timeout: 30_000 });
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "any");
  await page.click('button[type="submit"]');
  // The provider's consent form (first sign-in of this user for this client).
  await page.waitForSelector('input[name="prompt"][value="consent"]', {
    state: "attached",
    timeout: 30_000,
  });
  await page.getByRole("button", { name: "Continue" }).click();
}

describe("SSO sign-in in chromium", () => {
  it("signs a mapped person in and lands on the console with the session cookie", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await ssoAs(page, "dora");
    await page.waitForURL(`${consoleUrl}/console`, { timeout: 30_000 });
    await expect
      .poll(() => page.textContent("header"), { timeout: 30_000 })
      .toContain("oidc:dora@example.test");
    expect(await page.textContent("header")).toContain("withdrawals:approve, recon:read");
    await page.screenshot({ path: `${ARTIFACTS}/oidc-signed-in.png`, fullPage: true });
    // Cookies as the browser would send them to the console's paths (they are Path-scoped).
    const cookies = await context.cookies([`${consoleUrl}/console`, `${consoleUrl}/console/sso/x`]);
    const session = cookies.find((c) => c.name === "cn_console");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
    expect(cookies.find((c) => c.name === "cn_console_oidc")).toBeUndefined();
    // Sign out ends it; the key is refused by /v1 too.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${consoleUrl}/console/sign-in`, { timeout: 30_000 });
    expect(
      (await t.call(session!.value, { method: "GET", url: "/v1/recon/runs" })).statusCode,
    ).toBe(401);
    await context.close();
  });

  it("tells a person whose SSO groups are stale to sign in again, and signing in again lets them act", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await ssoAs(page, "dora");
    await page.waitForURL(`${consoleUrl}/console`, { timeout: 30_000 });
    const first = (await context.cookies(`${consoleUrl}/console`)).find(
      (c) => c.name === "cn_console",
    )!.value;
    // Dora signed in an hour ago: past groupsFreshForMs (5 min), /v1 lets her read, not approve.
    await t.ctx.db.pool.query(
      "UPDATE api.console_sessions SET created_at = now() - interval '1 hour' WHERE key_id = $1",
      [first.split("_")[1]],
    );
    await page.goto(`${consoleUrl}/console/withdrawals`);
    await expect
      .poll(() => page.textContent("main"), { timeout: 30_000 })
      .toContain("AUTH_SSO_GROUPS_STALE");
    await page.screenshot({ path: `${ARTIFACTS}/oidc-groups-stale.png`, fullPage: true });
    // The provider's own session is still open and she consented: no password, no consent page.
    // old code: locator.click: Timeout 30000ms exceeded (no such link: the page showed only the
    // API's refusal, "Refused by the API — AUTH_SSO_GROUPS_STALE: … sign in again …")
    await page.getByRole("link", { name: "Sign in again", exact: true }).click();
    await page.waitForURL(`${consoleUrl}/console`, { timeout: 30_000 });
    await expect
      .poll(() => page.textContent("header"), { timeout: 30_000 })
      .toContain("oidc:dora@example.test");
    expect(await page.textContent("main")).not.toContain("AUTH_SSO_GROUPS_STALE");
    const again = (await context.cookies(`${consoleUrl}/console`)).find(
      (c) => c.name === "cn_console",
    )!.value;
    expect(again).not.toBe(first);
    await context.close();
  });

  it("shows a person in no mapped group the refusal, and no session cookie", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await ssoAs(page, "eve");
    await page.waitForURL((u) => u.pathname === "/console/sso/callback", { timeout: 30_000 });
    await expect
      .poll(() => page.textContent("main"), { timeout: 30_000 })
      .toContain("CONSOLE_OIDC_NO_SCOPES");
    await page.screenshot({ path: `${ARTIFACTS}/oidc-refused.png`, fullPage: true });
    const names = (await context.cookies(`${consoleUrl}/console/sso/x`)).map((c) => c.name);
    expect(names).not.toContain("cn_console");
    // The flow cookie is cleared by the refusal too.
    expect(names).not.toContain("cn_console_oidc");
    await context.close();
  });
});
