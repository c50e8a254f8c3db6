/**
 * The console's reorg holds in a real browser (Debian's chromium driven by playwright-core): on anvil
 * the real indexer ingests a deposit, the ledger credits it, the customer withdraws most of it, and a
 * reorg (evm_snapshot/evm_revert and a longer branch) removes it; the held rest and the shortfall are
 * listed by GET /v1/deposits/holds and shown on the console's deposits page in token units with the
 * symbol. Screenshot in .artifacts/console/ (git-ignored).
 */
import { formatEther } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshAddress } from "../../indexers/testing/chain.js";
import {
  REORG_CHAIN,
  REORG_CHAIN_ID,
  type ReorgScenario,
  startReorgScenario,
} from "../../ledger/testing/reorgScenario.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { deployTestFactory } from "../testing/factory.js";
import {
  type ConsoleBrowser,
  expectNoHorizontalOverflow,
  launchConsoleBrowser,
  shot,
} from "./testing/browser.js";

const NATIVE = `${REORG_CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const E17 = 10n ** 17n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const D_CAROL = freshAddress(451);

let t: ApiTestContext;
let reorg: ReorgScenario;
let browser: ConsoleBrowser | undefined;
let url: string;

beforeAll(async () => {
  t = await createApiTestContext({ chains: [REORG_CHAIN] });
  await deployTestFactory(t.ctx);
  reorg = await startReorgScenario(t.ctx, [{ address: D_CAROL, owner: "carol" }]);
  url = await t.app.listen({ port: 0, host: "127.0.0.1" });
  browser = await launchConsoleBrowser(url);
});
afterAll(async () => {
  await browser?.close();
  await reorg?.stop();
  await t?.cleanup();
});

describe("console reorg holds", () => {
  it("lists a reorged deposit's hold and shortfall in the API and on the deposits page", async () => {
    // carol's 1.5 ETH deposit is credited and she withdraws 1.4 of it; then a reorg removes it
    const { txHash, swept } = await reorg.creditThenReorg(D_CAROL, 15n * E17, {
      beforeReorg: async () => {
        const w = await t.call(t.keys["withdrawals:write"], {
          method: "POST",
          url: "/v1/withdrawals",
          headers: { "idempotency-key": "console-holds-1" },
          payload: {
            customerId: "carol",
            chain: reorg.chain.key,
            asset: "native",
            to: DEST,
            amount: (14n * E17).toString(),
          },
        });
        expect(w.statusCode).toBe(201);
      },
    });
    expect(swept.held).toBe(1);

    const listed = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: `/v1/deposits/holds?chain_id=${REORG_CHAIN_ID}`,
    });
    expect(listed.statusCode).toBe(200);
    const holds = listed.json().holds as Record<string, unknown>[];
    expect(holds).toEqual([
      expect.objectContaining({
        customerId: "carol",
        chainId: REORG_CHAIN_ID,
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
    const { context, page } = await browser!.signIn(t.keys["deposits:read"]);
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
    await shot(page, "deposits-reorg-hold");
    await expectNoHorizontalOverflow(page, "/console/deposits");
    await context.close();
  }, 180_000);
});
