/**
 * A hot wallet's floor and ceiling of 0 on the overview (inject, real Postgres and anvil): 0 is a
 * limit, not "no limit" (a ceiling of 0 means every wei goes to cold, as the sweeper reads it), so
 * both columns show it and a balance above it is flagged.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { consoleGet, consoleSignIn } from "./testing/inject.js";
import { hotBalance, hotWalletsSection, insertReconRun } from "./testing/reconRuns.js";

let t: ApiTestContext;
let session: string;
beforeAll(async () => {
  t = await createApiTestContext({
    chains: [{ chainId: 31337, key: "local-a" }],
    configure: (ctx) => {
      const chain = { ...ctx.config.chains[0]!, nativeHotFloor: 0n, nativeHotCeiling: 0n };
      const config = Object.freeze({ ...ctx.config, chains: [chain] });
      return { ...ctx, config, common: { ...ctx.common, config } };
    },
  });
  session = (await consoleSignIn(t.app, t.keys.admin)).session!;
});
afterAll(async () => {
  await t?.cleanup();
});

it("a floor and ceiling of 0 are shown as 0 and a balance above the ceiling of 0 is flagged", async () => {
  const wallet = `0x${"cd".repeat(20)}`;
  await insertReconRun(
    t.ctx.db.pool,
    31337,
    "completed",
    [hotBalance(wallet, 1n)],
    new Date().toISOString(),
  );
  const section = hotWalletsSection((await consoleGet(t.app, session, "/console")).body);
  const row = /<tr><td>local-a<\/td>.*?<\/tr>/s.exec(section)?.[0] ?? "";
  expect(row).toContain(wallet);
  // Balance 1 wei, floor 0, ceiling 0: each a number, never the "no limit" dash.
  const limits = [...row.matchAll(/<td class="num">(.*?)<\/td>/g)].map((m) => m[1]);
  expect(limits).toHaveLength(3);
  expect(limits[1]).toContain('title="0 base units"');
  expect(limits[2]).toContain('title="0 base units"');
  expect(row).toContain("above ceiling: sweep to cold");
  expect(row).not.toContain("within range");
});
