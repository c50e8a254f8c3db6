/**
 * Clearing a customer's withdrawal block releases a customer who owes a reorg receivable to
 * withdraw again: an operator's decision, so who and why are required (an empty one is refused,
 * the field named, nothing cleared) and the audit log records it in the same transaction.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../foundation/audit.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import {
  blockWithdrawals,
  clearWithdrawalBlocks,
  isWithdrawalBlocked,
} from "./withdrawalBlocks.js";

let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx?.cleanup();
});

describe("clearing a customer's withdrawal blocks", () => {
  it("needs who and why, and is audited with the change", async () => {
    const pool = ctx.db.pool;
    await blockWithdrawals(pool, { customerId: "carol", reason: "reorg_shortfall" });

    for (const [by, reason, field] of [
      [" ", "repaid", "by"],
      ["ops", "", "reason"],
    ] as const) {
      await expect(
        clearWithdrawalBlocks(pool, { customerId: "carol", by, reason }),
      ).rejects.toMatchObject({ code: "LEDGER_WITHDRAWAL_BLOCK_INPUT", meta: { field } });
      expect(await isWithdrawalBlocked(pool, "carol")).toBe(true);
    }

    expect(
      await clearWithdrawalBlocks(pool, { customerId: "carol", by: "ops", reason: "repaid" }),
    ).toBe(1);
    expect(await isWithdrawalBlocked(pool, "carol")).toBe(false);
    const audit = await listAudit(pool, { entityType: "customer", entityId: "carol", limit: 10 });
    expect(audit).toMatchObject([
      { actor: "ops", action: "ledger.withdrawal_blocks.cleared", details: { reason: "repaid" } },
    ]);
  });
});
