/**
 * Many connections on the same accounts at once: no lost update, no negative user balance, no
 * deadlock error reaching the caller, and the check passes afterwards (also through the CLI).
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { spawnCli } from "../ops/testing/process.js";
import { createLedger, type Ledger } from "./createLedger.js";
import type { NewTransfer } from "./types.js";

const ETH = "31337:0x0000000000000000000000000000000000000000";
const HOT = `custody:hot:0x${"22".repeat(20)}`;
let ctx: TestContext;
let pool: Pool;
let ledger: Ledger;

beforeAll(async () => {
  ctx = await createTestContext();
  pool = createPool(ctx.db.url, { max: 32 });
  ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
});
afterAll(async () => {
  await ledger?.close();
  await pool?.end();
  await ctx?.cleanup();
});

const single = (debit: string, credit: string, amount: bigint): NewTransfer => ({
  id: randomUUID(),
  assetId: ETH,
  debit,
  credit,
  amount,
  kind: "manual",
});

describe("concurrency", () => {
  it("32 connections overdrawing one user: exactly the funded amount goes out, never below zero", async () => {
    await ledger.createTransfers([single("custody:deposits", "user:hot-spot", 1000n)]);
    let created = 0;
    let refused = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = 0; i < 10; i++) {
          // Own transaction per transfer (not the shared batcher): real row-lock contention.
          const hold = i % 3 === 0;
          const t = single("user:hot-spot", HOT, 7n);
          const [r] = await ledger.createTransfers([hold ? { ...t, type: "pending" } : t]);
          if (r?.status === "created") created++;
          else if (r?.status === "failed" && r.code === "LEDGER_INSUFFICIENT_BALANCE") refused++;
          else throw new Error(`unexpected ${JSON.stringify(r)}`);
        }
      }),
    );
    expect(created + refused).toBe(320);
    expect(created).toBe(Math.floor(1000 / 7)); // 142: every unit that could go out did
    const b = await ledger.balance({ assetId: ETH, name: "user:hot-spot" });
    expect(b.debitsPosted + b.debitsPending).toBe(BigInt(created) * 7n);
    expect(b.available).toBe(1000n - BigInt(created) * 7n);
  });

  it("overlapping batches locking accounts in every order: no deadlock surfaces, no update lost", async () => {
    const users = Array.from({ length: 12 }, (_, i) => `user:mesh-${i}`);
    await ledger.createTransfers(users.map((u) => single("custody:deposits", u, 10_000n)));
    const rnd = (n: number) => Math.floor(Math.random() * n);
    let moved = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let b = 0; b < 15; b++) {
          const batch = Array.from({ length: 1 + rnd(20) }, () => {
            const a = users[rnd(users.length)] as string;
            let c = users[rnd(users.length)] as string;
            if (c === a) c = users[(users.indexOf(a) + 1) % users.length] as string;
            return single(a, c, BigInt(1 + rnd(50)));
          });
          const results = await ledger.createTransfers(batch);
          moved += results.filter((r) => r.status === "created").length;
        }
      }),
    );
    expect(moved).toBeGreaterThan(0);
    let total = 0n;
    for (const u of users) {
      const b = await ledger.balance({ assetId: ETH, name: u });
      expect(b.available).toBeGreaterThanOrEqual(0n);
      total += b.creditsPosted - b.debitsPosted;
    }
    expect(total).toBe(12n * 10_000n); // money moved between users only: none created or lost
  });

  it("many callers on the shared path are batched and all answered", async () => {
    await ledger.transfer(single("custody:deposits", "user:shared", 100n));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, () => ledger.transfer(single("user:shared", HOT, 1n))),
    );
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(100);
    expect(
      outcomes.every(
        (o) =>
          o.status === "fulfilled" ||
          (o.reason as { code?: string }).code === "LEDGER_INSUFFICIENT_BALANCE",
      ),
    ).toBe(true);
    expect((await ledger.balance({ assetId: ETH, name: "user:shared" })).available).toBe(0n);
  });

  it("`custody-node ledger check` passes, and fails with exit 1 on a broken invariant", async () => {
    // (A user account cannot even be tampered below zero: the table's CHECK refuses it.)
    const env = { DATABASE_URL: ctx.db.url, LOG_LEVEL: "silent" };
    let cli = spawnCli(["ledger", "check"], env);
    expect((await cli.exited).code).toBe(0);
    expect(cli.output()).toContain("ledger check passed");
    await ctx.db.pool.query(
      "UPDATE ledger.accounts SET debits_posted = debits_posted + 1 WHERE name = 'custody:deposits'",
    );
    cli = spawnCli(["ledger", "check", "--json"], env);
    expect((await cli.exited).code).toBe(1);
    const report = JSON.parse(cli.output()) as { ok: boolean; problems: { type: string }[] };
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.type).sort()).toEqual([
      "account_balance_mismatch",
      "unbalanced_asset",
    ]);
  });
});
