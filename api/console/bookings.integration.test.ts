/**
 * The console's treasury bookings and reorg holds in a real browser (Debian's chromium driven by
 * playwright-core) against the whole service on anvil with the KMS emulator: the hot wallet's funding
 * is booked through POST /v1/treasury/moves, listed by GET /v1/treasury/moves (scope, bad input) and
 * shown on the treasury page in token units with the symbol; GET /v1/deposits/holds answers (scope,
 * bad input) and the deposits page shows its reorg holds section. Screenshots go to
 * .artifacts/console/ (git-ignored).
 */
import { mkdirSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { formatEther, parseEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { policiesSchema } from "../../ops/config.js";
import { DEMO_POLICY } from "../../ops/e2e/scenario.js";
import { type PreparedCustody, prepareCustody } from "../../ops/e2e/setup.js";
import { ROLE_NAMES } from "../../ops/roles.js";
import { type Service, startService } from "../../ops/start.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { waitFor } from "../../ops/testing/wait.js";
import { type KmsEmulator, startKmsEmulator } from "../../signer/kms-emulator/server.js";
import { createApiKey } from "../apiKeys.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = ".artifacts/console";

let ctx: TestContext;
let kms: KmsEmulator;
let service: Service | undefined;
let browser: Browser | undefined;
let prepared: PreparedCustody;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  ctx = await createTestContext({
    chains: [
      { chainId: 31337, key: "local-a", config: { confirmations: { kind: "blocks", blocks: 2 } } },
    ],
  });
  kms = await startKmsEmulator();
  const chain = ctx.config.chains[0]!;
  prepared = await prepareCustody({
    common: ctx.common,
    pool: ctx.db.pool,
    chain,
    kmsEndpoint: kms.url,
    policies: policiesSchema.parse(
      JSON.parse(
        JSON.stringify(DEMO_POLICY(chain.chainId), (_k, v) =>
          typeof v === "bigint" ? v.toString() : v,
        ),
      ),
    ),
  });
  service = await startService(prepared.config, { roles: [...ROLE_NAMES] });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await kms?.stop();
  await ctx?.cleanup();
});

describe("console treasury bookings and reorg holds", () => {
  it("lists a booked funding in the API and on the treasury page; holds list and section", async () => {
    const chain = ctx.config.chains[0]!;
    const url = service!.url;
    const pool = ctx.db.pool;
    let n = 0;
    const api = async (key: string, method: "GET" | "POST", path: string, body?: object) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body ? { "content-type": "application/json" } : {}),
          ...(method === "POST" ? { "idempotency-key": `console-bookings-${++n}` } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return {
        status: res.status,
        type: res.headers.get("content-type") ?? "",
        body: (await res.json()) as Record<string, unknown>,
      };
    };
    const admin = (await createApiKey(pool, { owner: "ops-admin", scopes: ["admin"] })).plaintext;
    const reader = (await createApiKey(pool, { owner: "ops-reader", scopes: ["deposits:read"] }))
      .plaintext;

    // set-up booked the factory deploy's gas (custody-node contracts deploy): the list has it
    const before = await api(admin, "GET", "/v1/treasury/moves");
    expect(before.status).toBe(200);
    expect(before.body.moves).toEqual([
      expect.objectContaining({ move: "gas", chainId: chain.chainId, by: "contracts deploy" }),
    ]);
    const gas = (before.body.moves as Record<string, unknown>[])[0]!;

    // the hot wallet's 100 ETH funding (prepareCustody sent it) is booked by ops-admin
    const booked = await api(admin, "POST", "/v1/treasury/moves", {
      move: "fund",
      chain: chain.key,
      txHash: prepared.fundTxHash,
      wallet: prepared.hotWallet,
      amount: parseEther("100").toString(),
      reason: "initial float for local-a",
    });
    expect(booked.status, JSON.stringify(booked.body)).toBe(200);

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
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${url}/console/sign-in`);
    await page.getByLabel("API key").fill(admin);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${url}/console`);

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
    await page.screenshot({ path: `${ARTIFACTS}/treasury-bookings.png`, fullPage: true });

    await page.goto(`${url}/console/deposits`);
    const section = page.locator("section", { has: page.locator("h2#reorg-holds") });
    expect(await section.textContent()).toContain("No reorg holds.");
    await page.screenshot({ path: `${ARTIFACTS}/deposits-holds.png`, fullPage: true });
    for (const path of ["/console/treasury", "/console/deposits"]) {
      await page.goto(`${url}${path}`);
      const [scroll, client] = await page.evaluate<number[]>(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
      );
      expect(scroll, `${path} scrollWidth`).toBeLessThanOrEqual(client!);
    }
    await context.close();
  }, 240_000);
});
