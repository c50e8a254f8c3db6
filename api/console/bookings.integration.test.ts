/**
 * The console's treasury bookings and reorg holds in a real browser (Debian's chromium driven by
 * playwright-core) against the whole service on anvil with the KMS emulator: the hot wallet's funding
 * is booked through the treasury page's form (bad input and a CSRF-less POST refused, nothing
 * booked), listed by GET /v1/treasury/moves (scope, bad input) and shown on the treasury page in
 * token units with the symbol; GET /v1/deposits/holds answers (scope,
 * bad input) and the deposits page shows its reorg holds section. Screenshots go to
 * .artifacts/console/ (git-ignored).
 */
import { formatEther, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTERNAL } from "../../ops/e2e/scenario.js";
import { waitFor } from "../../ops/testing/wait.js";
import { expectNoHorizontalOverflow, expectWordsWhole, shot, shows } from "./testing/browser.js";
import { type ConsoleService, startConsoleService } from "./testing/service.js";

let s: ConsoleService;

beforeAll(async () => {
  s = await startConsoleService();
});
afterAll(async () => {
  await s?.cleanup();
});

describe("console treasury bookings and reorg holds", () => {
  it("lists a booked funding in the API and on the treasury page; holds list and section", async () => {
    const { ctx, prepared, url, api } = s;
    const chain = ctx.config.chains[0]!;
    const admin = await s.key("ops-admin", ["admin"]);
    const reader = await s.key("ops-reader", ["deposits:read"]);

    // set-up booked the factory deploy's gas (custody-node contracts deploy): the list has it
    const before = await api(admin, "GET", "/v1/treasury/moves");
    expect(before.status).toBe(200);
    expect(before.body.moves).toEqual([
      expect.objectContaining({ move: "gas", chainId: chain.chainId, by: "contracts deploy" }),
    ]);
    const gas = (before.body.moves as Record<string, unknown>[])[0]!;

    // the hot wallet's 100 ETH funding (prepareCustody sent it) is booked by ops-admin through
    // the treasury page's form (session scopes, CSRF token, idempotency key)
    const nativeId = `${chain.chainId}:0x0000000000000000000000000000000000000000`;
    const { context, page } = await s.browser.signIn(admin);
    const fill = async (f: { wallet: string; amount: string }) => {
      await page.goto(`${url}/console/treasury`);
      await page.getByLabel("Move", { exact: true }).selectOption("fund");
      await page.getByLabel("Asset", { exact: true }).selectOption(nativeId);
      await page.getByLabel("Transaction hash", { exact: true }).fill(prepared.fundTxHash);
      await page.getByLabel("Hot wallet", { exact: true }).fill(f.wallet);
      await page.getByLabel("Amount (token units)", { exact: true }).fill(f.amount);
      await page.getByLabel("Why", { exact: true }).fill("initial float for local-a");
    };
    const bookedCount = async () =>
      ((await api(admin, "GET", "/v1/treasury/moves")).body.moves as unknown[]).length;
    // bad input: an amount that is not a number (the console's own parse), and a wallet that is
    // not a hot wallet (the API's refusal): each shown, nothing booked
    await fill({ wallet: prepared.hotWallet, amount: "1.2.3" });
    await shot(page, "treasury-form");
    await page.getByRole("button", { name: "Book move" }).click();
    await shows(page.getByRole("alert"), "CONSOLE_FORM_INVALID: amount must be a number");
    await fill({ wallet: EXTERNAL, amount: "100" });
    await page.getByRole("button", { name: "Book move" }).click();
    await shows(page.getByRole("alert"), "TREASURY_MOVE_REFUSED");
    await shows(page.getByRole("alert"), "is not a hot wallet");
    await shot(page, "treasury-form-refused");
    expect(await bookedCount()).toBe(1);
    // a CSRF-less POST of the same form is refused and books nothing
    const forged = await page.request.post(`${url}/console/treasury/moves`, {
      form: {
        move: "fund",
        asset: nativeId,
        txHash: prepared.fundTxHash,
        wallet: prepared.hotWallet,
        amount: "100",
        reason: "forged",
      },
    });
    expect(forged.status()).toBe(403);
    expect(await forged.text()).toContain("CONSOLE_CSRF");
    expect(await bookedCount()).toBe(1);
    await fill({ wallet: prepared.hotWallet, amount: "100" });
    await page.getByRole("button", { name: "Book move" }).click();
    await shows(page.getByRole("status").first(), "treasury fund of");
    expect(new URL(page.url()).pathname).toBe("/console/treasury");

    const listed = await api(admin, "GET", `/v1/treasury/moves?after=${String(gas.id)}&limit=10`);
    expect(listed.status).toBe(200);
    const moves = listed.body.moves as Record<string, unknown>[];
    expect(moves).toHaveLength(1);
    expect(moves[0]).toMatchObject({
      move: "fund",
      chainId: chain.chainId,
      txHash: prepared.fundTxHash,
      wallet: prepared.hotWallet,
      assetId: `${chain.chainId}:0x0000000000000000000000000000000000000000`,
      amount: parseEther("100").toString(),
      fee: null,
      by: "ops-admin",
      reason: "initial float for local-a",
    });
    // the cursor: after the only booking, nothing
    const after = await api(admin, "GET", `/v1/treasury/moves?after=${String(moves[0]!.id)}`);
    expect(after.status).toBe(200);
    expect(after.body.moves).toEqual([]);

    // bad input and missing scope: problem+json, nothing listed
    for (const q of ["limit=0", "limit=1001", "after=abc", "after=-1", "colour=red"]) {
      const bad = await api(admin, "GET", `/v1/treasury/moves?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.type, q).toContain("application/problem+json");
    }
    const refused = await api(reader, "GET", "/v1/treasury/moves");
    expect(refused.status).toBe(403);
    expect(refused.type).toContain("application/problem+json");

    // reorg holds: none on this chain; bad cursor refused; scope deposits:read
    const holds = await api(reader, "GET", `/v1/deposits/holds?chain_id=${chain.chainId}`);
    expect(holds.status).toBe(200);
    expect(holds.body.holds).toEqual([]);
    for (const q of ["after=1", "chain_id=x", "limit=0"]) {
      const bad = await api(reader, "GET", `/v1/deposits/holds?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.type, q).toContain("application/problem+json");
    }

    // the console: treasury page shows the booking in token units with the symbol
    const assets = await api(admin, "GET", "/v1/assets");
    const native = (assets.body.assets as { assetId: string; symbol: string }[]).find(
      (a) => a.assetId === `${chain.chainId}:0x0000000000000000000000000000000000000000`,
    )!;
    await page.goto(`${url}/console/treasury`);
    const row = page.locator(`tr[data-move="${String(moves[0]!.id)}"]`);
    await waitFor("the booking on the treasury page", async () => (await row.count()) === 1, {
      timeoutMs: 20_000,
    });
    const text = (await row.textContent()) ?? "";
    expect(text).toContain(`${formatEther(parseEther("100"))} ${native.symbol}`);
    expect(text).toContain("ops-admin");
    expect(text).toContain("initial float for local-a");
    expect(await row.locator(".amount").first().getAttribute("title")).toBe(
      `${parseEther("100").toString()} base units`,
    );
    const gasRow = page.locator(`tr[data-move="${String(gas.id)}"]`);
    expect(await gasRow.textContent()).toContain(
      `${formatEther(BigInt(String(gas.amount)))} ${native.symbol}`,
    );
    await shot(page, "treasury-bookings");

    await page.goto(`${url}/console/deposits`);
    const section = page.locator("section", { has: page.locator("h2#reorg-holds") });
    expect(await section.textContent()).toContain("No reorg holds.");
    await shot(page, "deposits-holds");
    for (const path of ["/console/treasury", "/console/deposits"]) {
      await page.goto(`${url}${path}`);
      await expectNoHorizontalOverflow(page, path);
      await expectWordsWhole(page, path);
    }
    await context.close();
  }, 240_000);
});
