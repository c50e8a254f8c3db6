/** Deposit webhook events from real chain facts and ledger credits (Postgres), exactly once each. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDepositCrediting, createLedger, type Ledger } from "../../ledger/index.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { produceDepositEvents } from "./depositEvents.js";

const DEPOSIT = "0x00000000000000000000000000000000000000d1";
const TX = `0x${"ab".repeat(32)}`;
let ctx: TestContext;
let ledger: Ledger;
let common: TestContext["common"];

beforeAll(async () => {
  ctx = await createTestContext({
    file: {
      webhooks: [{ url: "http://127.0.0.1:9/hook", secretEnv: "WH", events: ["deposit.*"] }],
    },
  });
  common = { ...ctx.common, config: { ...ctx.config, webhookSecrets: { WH: "s" } } };
  ledger = createLedger({ common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner) VALUES (31337, $1, 'deposit', 'alice')`,
    [DEPOSIT],
  );
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount)
     VALUES (31337, 5, $1, $2, 0, 'tx', 'native', '0x0000000000000000000000000000000000000000',
       '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', $3, 1000)`,
    [`0x${"cd".repeat(32)}`, TX, DEPOSIT],
  );
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

const events = async () =>
  (
    await ctx.db.pool.query<{ type: string; customer: string; amount: string; deliveries: number }>(
      `SELECT e.type, e.payload->>'customer_id' AS customer, e.payload->>'amount' AS amount,
              (SELECT count(*)::int FROM api.webhook_deliveries d WHERE d.event_id = e.id) AS deliveries
         FROM api.webhook_events e ORDER BY e.created_at, e.type`,
    )
  ).rows;

describe("deposit events", () => {
  it("emits detected, confirmed, credited and orphaned once each, as they happen", async () => {
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(1);
    expect(await events()).toEqual([
      { type: "deposit.detected", customer: "alice", amount: "1000", deliveries: 1 },
    ]);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(0);

    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'confirmed', confirmed_at = now() WHERE tx_hash = $1",
      [TX],
    );
    // Credited as the worker credits it (a deposit transfer and its credit row).
    expect(
      await createDepositCrediting({ common, pool: ctx.db.pool, ledger }).creditConfirmed(),
    ).toBe(1);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(2);
    await ctx.db.pool.query(
      "UPDATE chain.transfers SET status = 'orphaned', orphaned_at = now() WHERE tx_hash = $1",
      [TX],
    );
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(1);
    expect(await produceDepositEvents({ common, pool: ctx.db.pool })).toBe(0);
    expect((await events()).map((e) => e.type).sort()).toEqual([
      "deposit.confirmed",
      "deposit.credited",
      "deposit.detected",
      "deposit.orphaned",
    ]);
  });
});
