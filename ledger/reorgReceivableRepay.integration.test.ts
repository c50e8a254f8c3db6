/**
 * Money that comes back to a customer who owes a reorg receivable (DESIGN "Money flows"): a
 * withdrawal's hold released (pulled back, rejected, cancelled, failed) or a new deposit credited
 * lands on their blocked balance. Once the removed deposit is final without returning, that
 * available money is applied to `receivable:reorg:<id>` by the crediting pass (one transfer with a
 * deterministic id, audited) until the receivable is zero, and then the block is lifted. While the
 * hold is still pending (the deposit may yet confirm again) nothing is applied.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../foundation/audit.js";
import type { TestContext } from "../ops/testing/context.js";
import type { Ledger } from "./createLedger.js";
import type { DepositCrediting } from "./depositCrediting.js";
import {
  confirmedDeposit,
  orphanAfterConfirmation,
  owed,
  setFinalized,
  startReceivableLedger,
} from "./testing/reorgReceivable.js";
import { transferId } from "./transferId.js";
import { isWithdrawalBlocked } from "./withdrawalBlocks.js";

const CHAIN = 31337;
const ETH = `${CHAIN}:0x0000000000000000000000000000000000000000`;
const _ZERO = "0x0000000000000000000000000000000000000000";
const D_GINA = `0x${"e1".repeat(20)}`;
const D_HUGO = `0x${"e2".repeat(20)}`;
const D_IDA = `0x${"e3".repeat(20)}`;
/** The checkpoint's tip, above every block of these tests. */
const TIP = 100;
const HOT = `0x${"a1".repeat(20)}`;
let ctx: TestContext;
let ledger: Ledger;
let crediting: DepositCrediting;
let txCounter = 0;

const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "0")}`;

const user = (owner: string) => ledger.balance({ assetId: ETH, name: `user:${owner}` });
const withdrawalHold = (id: string, owner: string, amount: bigint) =>
  ledger.hold({
    id: transferId(`withdrawal:${id}`),
    assetId: ETH,
    debit: `user:${owner}`,
    credit: `custody:hot:${HOT}`,
    amount,
    kind: "withdrawal",
  });
const releaseWithdrawal = (id: string) =>
  ledger.voidPending({
    id: transferId(`withdrawal-void:${id}`),
    pendingId: transferId(`withdrawal:${id}`),
  });

beforeAll(async () => {
  ({ ctx, ledger, crediting } = await startReceivableLedger({
    hot: HOT,
    deposits: [
      { address: D_GINA, owner: "gina" },
      { address: D_HUGO, owner: "hugo" },
      { address: D_IDA, owner: "ida" },
    ],
  }));
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("a reorg receivable is repaid from money that comes back to the customer", () => {
  it("applies a released withdrawal hold to the receivable once the removed deposit is final, then lifts the block", async () => {
    const tx = txHash();
    await confirmedDeposit(ctx.db.pool, {
      tx,
      block: "0xa1",
      number: 20,
      to: D_GINA,
      amount: 150n,
    });
    await crediting.sweep();
    await withdrawalHold("gina-1", "gina", 140n);
    await orphanAfterConfirmation(ctx.db.pool, tx, "0xa1");
    expect((await crediting.sweep()).held).toBe(1);
    expect(await owed(ledger, "gina")).toEqual({ posted: 0n, pending: 140n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "gina")).toBe(true);

    // The withdrawal is pulled back (its hold released): 140 is back on gina's blocked balance.
    await releaseWithdrawal("gina-1");
    // The deposit may still confirm again: nothing is taken while the hold is pending.
    await crediting.sweep();
    expect((await user("gina")).available).toBe(140n);
    expect(await owed(ledger, "gina")).toEqual({ posted: 0n, pending: 140n });

    // Final without it: the receivable is posted, and repaid from what came back.
    await setFinalized(ctx.db.pool, 20, { tip: TIP });
    expect((await crediting.sweep()).finalized).toBe(1);
    expect(await owed(ledger, "gina")).toEqual({ posted: 0n, pending: 0n });
    expect((await user("gina")).available).toBe(0n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "gina")).toBe(false);
    const audit = await listAudit(ctx.db.pool, {
      entityType: "customer",
      entityId: "gina",
      limit: 10,
    });
    expect(audit).toMatchObject([
      {
        actor: "deposit-crediting",
        action: "ledger.reorg_receivable.repaid",
        details: { asset_id: ETH, amount: "140", still_owed: "0" },
      },
    ]);
    // Nothing twice.
    await crediting.sweep();
    expect(await owed(ledger, "gina")).toEqual({ posted: 0n, pending: 0n });
    expect(
      (await listAudit(ctx.db.pool, { entityType: "customer", entityId: "gina", limit: 10 }))
        .length,
    ).toBe(1);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("applies what is available, keeps the block while anything is owed, and takes the rest from a later deposit", async () => {
    const tx = txHash();
    await confirmedDeposit(ctx.db.pool, {
      tx,
      block: "0xb1",
      number: 30,
      to: D_HUGO,
      amount: 200n,
    });
    await crediting.sweep();
    await withdrawalHold("hugo-1", "hugo", 150n);
    await withdrawalHold("hugo-2", "hugo", 50n);
    await orphanAfterConfirmation(ctx.db.pool, tx, "0xb1");
    await crediting.sweep();
    await setFinalized(ctx.db.pool, 30, { tip: TIP });
    await crediting.sweep();
    expect(await owed(ledger, "hugo")).toEqual({ posted: 200n, pending: 0n });

    // One withdrawal failed: 50 back, applied; 150 still owed, still blocked.
    await releaseWithdrawal("hugo-2");
    await crediting.sweep();
    expect(await owed(ledger, "hugo")).toEqual({ posted: 150n, pending: 0n });
    expect((await user("hugo")).available).toBe(0n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "hugo")).toBe(true);

    // A new deposit of 400: 150 of it settles the receivable, 250 stays the customer's.
    await confirmedDeposit(ctx.db.pool, {
      tx: txHash(),
      block: "0xb2",
      number: 31,
      to: D_HUGO,
      amount: 400n,
    });
    await crediting.sweep();
    expect(await owed(ledger, "hugo")).toEqual({ posted: 0n, pending: 0n });
    expect((await user("hugo")).available).toBe(250n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "hugo")).toBe(false);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("leaves a frozen customer's balance alone, and repays once the account is unfrozen", async () => {
    const tx = txHash();
    await confirmedDeposit(ctx.db.pool, { tx, block: "0xc1", number: 40, to: D_IDA, amount: 90n });
    await crediting.sweep();
    await withdrawalHold("ida-1", "ida", 90n);
    await orphanAfterConfirmation(ctx.db.pool, tx, "0xc1");
    await crediting.sweep();
    await setFinalized(ctx.db.pool, 40, { tip: TIP });
    await crediting.sweep();
    expect(await owed(ledger, "ida")).toEqual({ posted: 90n, pending: 0n });

    await ledger.freeze({ assetId: ETH, name: "user:ida" });
    await releaseWithdrawal("ida-1");
    await crediting.sweep();
    expect(await owed(ledger, "ida")).toEqual({ posted: 90n, pending: 0n });
    expect((await user("ida")).available).toBe(90n);

    await ledger.unfreeze({ assetId: ETH, name: "user:ida" });
    await crediting.sweep();
    expect(await owed(ledger, "ida")).toEqual({ posted: 0n, pending: 0n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "ida")).toBe(false);
    expect((await ledger.check()).problems).toEqual([]);
  });
});
