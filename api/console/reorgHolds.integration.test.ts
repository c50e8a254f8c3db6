/**
 * The console's reorg holds in a real browser (Debian's chromium driven by playwright-core): on anvil
 * the real indexer ingests a deposit, the ledger credits it, the customer withdraws most of it, and a
 * reorg (evm_snapshot/evm_revert and a longer branch) removes it; the held rest and the shortfall are
 * listed by GET /v1/deposits/holds and shown on the console's deposits page in token units with the
 * symbol. Screenshot in .artifacts/console/ (git-ignored).
 */
import { mkdirSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { formatEther, type Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEvmAdapter } from "../../chains/index.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import {
  anvilRpc,
  freshAddress,
  type Rpc,
  sendAndMine,
  syncToHead,
  watch,
} from "../../indexers/testing/chain.js";
import { createLedger, type Ledger } from "../../ledger/createLedger.js";
import { createDepositCrediting, type DepositCrediting } from "../../ledger/depositCrediting.js";
import type { ChainConfig } from "../../ops/config.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { deployTestFactory } from "../testing/factory.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ARTIFACTS = ".artifacts/console";
const CHAIN_ID = 31337;
const NATIVE = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E17 = 10n ** 17n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const D_CAROL = freshAddress(451);

let t: ApiTestContext;
let chain: ChainConfig;
let rpc: Rpc;
let sender: Hex;
let ingestor: Ingestor;
let ledger: Ledger;
let crediting: DepositCrediting;
let browser: Browser | undefined;
let url: string;

const mine = async (k: number) => {
  for (let i = 0; i < k; i++) await rpc("evm_mine");
};
const settle = async () => {
  await syncToHead(ingestor, t.ctx.db.pool, rpc, CHAIN_ID);
  return crediting.sweep({ chainId: CHAIN_ID });
};

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  t = await createApiTestContext({
    chains: [
      {
        chainId: CHAIN_ID,
        key: "local-a",
        config: {
          confirmations: { kind: "blocks", blocks: 3 },
          finality: { kind: "blocks", blocks: 40 },
          reorgWindow: 40,
        },
      },
    ],
  });
  chain = t.ctx.config.chains[0]!;
  rpc = anvilRpc(chain.rpcUrls[0]!);
  await deployTestFactory(t.ctx);
  sender = ((await rpc<Hex[]>("eth_accounts"))[3] as Hex).toLowerCase() as Hex;
  await watch(t.ctx.db.pool, CHAIN_ID, [{ address: D_CAROL, owner: "carol" }]);
  ingestor = await createIngestor({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    adapter: createEvmAdapter(chain, { common: t.ctx.common }),
    options: { batchBlocks: 8 },
  });
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  await ledger.ensureAssetsFromConfig(t.ctx.config.chains);
  crediting = createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
  await settle();
  url = await t.app.listen({ port: 0, host: "127.0.0.1" });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await ingestor?.stop();
  await ledger?.close();
  await t?.cleanup();
});

describe("console reorg holds", () => {
  it("lists a reorged deposit's hold and shortfall in the API and on the deposits page", async () => {
    // carol's 1.5 ETH deposit is credited and she withdraws 1.4 of it; then a reorg removes it
    const snapshot = await rpc<Hex>("evm_snapshot");
    const r = await sendAndMine(rpc, { from: sender, to: D_CAROL, value: 15n * E17 });
    const txHash = r.transactionHash.toLowerCase();
    await mine(3);
    expect((await settle()).credited).toBe(1);
    const w = await t.call(t.keys["withdrawals:write"], {
      method: "POST",
      url: "/v1/withdrawals",
      headers: { "idempotency-key": "console-holds-1" },
      payload: {
        customerId: "carol",
        chain: chain.key,
        asset: "native",
        to: DEST,
        amount: (14n * E17).toString(),
      },
    });
    expect(w.statusCode).toBe(201);
    const tip = BigInt(await rpc<Hex>("eth_blockNumber"));
    await rpc("evm_revert", [snapshot]);
    while (BigInt(await rpc<Hex>("eth_blockNumber")) <= tip + 1n) await mine(1);
    expect((await settle()).held).toBe(1);

    const listed = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: `/v1/deposits/holds?chain_id=${CHAIN_ID}`,
    });
    expect(listed.statusCode).toBe(200);
    const holds = listed.json().holds as Record<string, unknown>[];
    expect(holds).toEqual([
      expect.objectContaining({
        customerId: "carol",
        chainId: CHAIN_ID,
        assetId: NATIVE,
        amount: (15n * E17).toString(),
        txHash,
        holdAmount: E17.toString(),
        shortfallAmount: (14n * E17).toString(),
      }),
    ]);
    // the cursor: nothing after the only hold; another chain has none
    const after = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: `/v1/deposits/holds?after=${String(holds[0]!.creditId)}`,
    });
    expect(after.json().holds).toEqual([]);
    const other = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: "/v1/deposits/holds?chain_id=1",
    });
    expect(other.json().holds).toEqual([]);

    const symbol = (
      (await t.call(t.keys.admin, { method: "GET", url: "/v1/assets" })).json().assets as {
        assetId: string;
        symbol: string;
      }[]
    ).find((a) => a.assetId === NATIVE)!.symbol;
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${url}/console/sign-in`);
    await page.getByLabel("API key").fill(t.keys["deposits:read"]);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${url}/console`);
    await page.goto(`${url}/console/deposits`);
    const row = page.locator(`tr[data-hold="${String(holds[0]!.creditId)}"]`);
    expect(await row.count()).toBe(1);
    const cells = await row.locator("td").allTextContents();
    expect(cells[0]).toBe("carol");
    expect(cells[1]).toBe(`${formatEther(15n * E17)} ${symbol}`);
    expect(cells[2]).toBe(`${formatEther(E17)} ${symbol}`);
    expect(cells[3]).toBe(`${formatEther(14n * E17)} ${symbol}`);
    expect(cells[5]).toContain(txHash);
    // the credited deposit the reorg removed is also listed as orphaned (as it reports its status)
    const orphaned = page.locator("section", { has: page.locator("h2#orphaned-by-a-reorg") });
    expect(await orphaned.textContent()).toContain(txHash);
    await page.screenshot({ path: `${ARTIFACTS}/deposits-reorg-hold.png`, fullPage: true });
    const [scroll, client] = await page.evaluate<number[]>(
      "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
    );
    expect(scroll).toBeLessThanOrEqual(client!);
    await context.close();
  }, 180_000);
});
