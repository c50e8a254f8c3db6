/**
 * An operator unfreezes a customer's balance (WithdrawalFailureUndoneUnheld: a frozen balance
 * cannot take a withdrawal's hold placed again after a deep reorg undid its failure): who and why
 * required, audited with the change; bad input names the field and changes nothing; a repeat
 * changes and records nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../foundation/audit.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { type UnfreezeArgs, unfreezeCustomer } from "./unfreeze.js";

const ZERO = "0x0000000000000000000000000000000000000000";
let ctx: TestContext;
let ledger: Ledger;
let eth: string;

beforeAll(async () => {
  ctx = await createTestContext();
  ledger = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  eth = `${ctx.config.chains[0]!.chainId}:${ZERO}`;
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

const unfreeze = (args: Partial<UnfreezeArgs>) =>
  unfreezeCustomer(
    { common: ctx.common, pool: ctx.db.pool },
    {
      chainId: ctx.config.chains[0]!.chainId,
      asset: ZERO,
      customerId: "nora",
      by: "ops-ana",
      reason: "compliance agreed: WithdrawalFailureUndoneUnheld",
      ...args,
    },
  );
const frozen = async () => (await ledger.getAccount({ assetId: eth, name: "user:nora" }))?.frozen;

describe("unfreezing a customer's balance", () => {
  it("needs a valid customer, asset, who and why; audited; a repeat changes nothing", async () => {
    await ledger.ensureAccount({ assetId: eth, name: "user:nora" });
    await ledger.freeze({ assetId: eth, name: "user:nora" });

    const bad: [Partial<UnfreezeArgs>, string][] = [
      [{ by: " " }, "by"],
      [{ reason: "" }, "reason"],
      [{ customerId: "" }, "customer"],
      [{ customerId: "nobody" }, "customer"],
      [{ asset: `0x${"99".repeat(20)}` }, "asset"],
    ];
    for (const [args, field] of bad) {
      // before the fix: Cannot find module './unfreeze.js' (no audited unfreeze, no CLI: only
      // Ledger.unfreeze, with no who nor why)
      await expect(unfreeze(args), field).rejects.toMatchObject({
        code: "LEDGER_UNFREEZE_INPUT",
        meta: { field },
      });
      expect(await frozen()).toBe(true);
    }

    expect(await unfreeze({})).toEqual({ status: "unfrozen", assetId: eth, account: "user:nora" });
    expect(await frozen()).toBe(false);
    expect(await unfreeze({})).toMatchObject({ status: "not_frozen" });
    const audit = await listAudit(ctx.db.pool, {
      entityType: "customer",
      entityId: "nora",
      limit: 10,
    });
    expect(audit).toMatchObject([
      {
        actor: "ops-ana",
        action: "ledger.account.unfrozen",
        details: {
          asset_id: eth,
          account: "user:nora",
          reason: "compliance agreed: WithdrawalFailureUndoneUnheld",
        },
      },
    ]);
    expect(audit).toHaveLength(1);
  });
});
