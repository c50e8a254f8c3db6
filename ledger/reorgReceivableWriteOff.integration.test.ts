/**
 * Reorg receivables the treasury gives up on, and what operators see of them (DESIGN "Money
 * flows"): a write-off moves what a customer owes on `receivable:reorg:<id>` to
 * `expense:reorg_loss` (one transfer, id from the operator's reference, audited), refuses what is
 * not owed, and lifts the asset's blocks once nothing is owed, as a repayment does. The state
 * metrics count the customers who owe; repayments are counted; a blocked customer with nothing to
 * repay costs the crediting pass no row lock.
 */
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../foundation/audit.js";
import { registerStateMetrics } from "../ops/stateMetrics.js";
import type { TestContext } from "../ops/testing/context.js";
import type { Ledger } from "./createLedger.js";
import type { DepositCrediting } from "./depositCrediting.js";
import { listReorgReceivables, writeOffReorgReceivable } from "./reorgReceivables.js";
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
const ZERO = "0x0000000000000000000000000000000000000000";
const D_JO = `0x${"f1".repeat(20)}`;
const D_KAI = `0x${"f2".repeat(20)}`;
const D_LEA = `0x${"f3".repeat(20)}`;
const D_MO = `0x${"f4".repeat(20)}`;
const D_NED = `0x${"f5".repeat(20)}`;
const D_OLI = `0x${"f6".repeat(20)}`;
/** The checkpoint's tip, above every block of these tests. */
const TIP = 1000;
const HOT = `0x${"a1".repeat(20)}`;
let ctx: TestContext;
let ledger: Ledger;
let crediting: DepositCrediting;
let txCounter = 0x1000;
let block = 100;

const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "0")}`;

/**
 * `owner` deposits `deposit`, withdraws `spent` of it (sent: its hold posted), and a reorg removes
 * the deposit: the reorg hold takes what is left, `spent` is booked on the receivable; with `final`
 * the orphaned height becomes final without it (the receivable is posted: owed for good).
 * Returns the deposit's transaction.
 */
async function spentThenReorged(
  owner: string,
  address: string,
  deposit: bigint,
  spent: bigint,
  { final = true } = {},
) {
  const tx = txHash();
  const hash = `0x${(++block).toString(16)}`;
  await confirmedDeposit(ctx.db.pool, {
    tx,
    block: hash,
    number: block,
    to: address,
    amount: deposit,
  });
  await crediting.sweep();
  const w = `${owner}-${block}`;
  await ledger.hold({
    id: transferId(`withdrawal:${w}`),
    assetId: ETH,
    debit: `user:${owner}`,
    credit: `custody:hot:${HOT}`,
    amount: spent,
    kind: "withdrawal",
  });
  await ledger.postPending({
    id: transferId(`withdrawal-post:${w}`),
    pendingId: transferId(`withdrawal:${w}`),
  });
  await orphanAfterConfirmation(ctx.db.pool, tx, hash);
  await crediting.sweep();
  if (final) {
    await setFinalized(ctx.db.pool, block, { tip: TIP });
    await crediting.sweep();
  }
  return tx;
}

/** What the custody booked as lost to reorgs (expense:reorg_loss), net. */
async function lost() {
  const l = await ledger.getAccount({ assetId: ETH, name: "expense:reorg_loss" });
  return l ? l.debitsPosted - l.creditsPosted : 0n;
}

const writeOff = (args: {
  customerId: string;
  ref: string;
  amount?: bigint;
  by?: string;
  reason?: string;
  asset?: string;
}) =>
  writeOffReorgReceivable(
    { common: ctx.common, pool: ctx.db.pool, ledger },
    {
      chainId: CHAIN,
      asset: args.asset ?? ZERO,
      customerId: args.customerId,
      ref: args.ref,
      by: args.by ?? "treasury-ana",
      reason: args.reason ?? "customer unreachable; recovery abandoned",
      ...(args.amount !== undefined ? { amount: args.amount } : {}),
    },
  );

beforeAll(async () => {
  ({ ctx, ledger, crediting } = await startReceivableLedger({
    hot: HOT,
    deposits: [
      { address: D_JO, owner: "jo" },
      { address: D_KAI, owner: "kai" },
      { address: D_LEA, owner: "lea" },
      { address: D_MO, owner: "mo" },
      { address: D_NED, owner: "ned" },
      { address: D_OLI, owner: "oli" },
    ],
  }));
});
afterAll(async () => {
  await ledger?.close();
  await ctx?.cleanup();
});

describe("writing off a reorg receivable", () => {
  // old code: the file fails to load (no ./reorgReceivables.js): there was no write-off, a
  // receivable the treasury gave up on stood on the books for ever, and the customer stayed
  // blocked until an operator cleared the block, with no loss booked.
  it("moves what is owed to expense:reorg_loss in parts, audited, idempotent per reference, then lifts the block", async () => {
    await spentThenReorged("jo", D_JO, 150n, 150n);
    expect(await owed(ledger, "jo")).toEqual({ posted: 150n, pending: 0n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "jo")).toBe(true);

    const first = await writeOff({ customerId: "jo", ref: "TRS-1", amount: 40n });
    expect(first).toMatchObject({ status: "created", amount: 40n, owed: 150n, stillOwed: 110n });
    expect(await owed(ledger, "jo")).toEqual({ posted: 110n, pending: 0n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "jo")).toBe(true);

    // The same reference again books nothing (a retried command), whatever is owed now.
    expect(await writeOff({ customerId: "jo", ref: "TRS-1", amount: 40n })).toMatchObject({
      status: "exists",
      transferId: first.transferId,
      amount: 40n,
      stillOwed: 110n,
    });
    expect(await writeOff({ customerId: "jo", ref: "TRS-1" })).toMatchObject({ status: "exists" });
    await expect(writeOff({ customerId: "jo", ref: "TRS-1", amount: 50n })).rejects.toMatchObject({
      code: "LEDGER_REORG_WRITEOFF_INPUT",
      meta: { field: "ref" },
    });
    await expect(writeOff({ customerId: "jo", ref: "TRS-2", amount: 111n })).rejects.toMatchObject({
      code: "LEDGER_REORG_WRITEOFF_EXCEEDS_OWED",
      meta: { owed: "110", amount: "111" },
    });
    expect(await owed(ledger, "jo")).toEqual({ posted: 110n, pending: 0n });

    // The rest (no amount: everything owed): nothing is owed, the block is lifted with it.
    const rest = await writeOff({ customerId: "jo", ref: "TRS-2" });
    expect(rest).toMatchObject({ status: "created", amount: 110n, stillOwed: 0n });
    expect(rest.blocksCleared).toHaveLength(1);
    expect(await owed(ledger, "jo")).toEqual({ posted: 0n, pending: 0n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "jo")).toBe(false);
    expect((await ledger.balance({ assetId: ETH, name: "expense:reorg_loss" })).debitsPosted).toBe(
      150n,
    );
    await expect(writeOff({ customerId: "jo", ref: "TRS-3" })).rejects.toMatchObject({
      code: "LEDGER_REORG_NOTHING_OWED",
    });

    const block = await ctx.db.pool.query(
      "SELECT cleared_by, clear_reason FROM ledger.withdrawal_blocks WHERE customer_id = 'jo'",
    );
    expect(block.rows).toEqual([
      {
        cleared_by: "treasury-ana",
        clear_reason:
          "the reorg receivable was written off: customer unreachable; recovery abandoned",
      },
    ]);
    // A crediting pass after it repays nothing and records nothing more.
    await crediting.sweep();
    const audit = await listAudit(ctx.db.pool, {
      entityType: "customer",
      entityId: "jo",
      limit: 10,
    });
    expect(audit).toMatchObject([
      {
        actor: "treasury-ana",
        action: "ledger.reorg_receivable.written_off",
        details: { asset_id: ETH, ref: "TRS-1", owed: "150", amount: "40", still_owed: "110" },
      },
      {
        actor: "treasury-ana",
        action: "ledger.reorg_receivable.written_off",
        details: { ref: "TRS-2", owed: "110", amount: "110", still_owed: "0" },
      },
    ]);
    expect(await listReorgReceivables(ctx.db.pool, "jo")).toEqual([]);
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("refuses a shortfall whose reorg hold is still pending, and bad input, booking nothing", async () => {
    await spentThenReorged("kai", D_KAI, 90n, 90n, { final: false });
    expect(await owed(ledger, "kai")).toEqual({ posted: 0n, pending: 90n });
    await expect(writeOff({ customerId: "kai", ref: "TRS-9" })).rejects.toMatchObject({
      code: "LEDGER_REORG_NOTHING_OWED",
    });
    const bad: [Parameters<typeof writeOff>[0], string][] = [
      [{ customerId: "kai", ref: "TRS-9", reason: "  " }, "reason"],
      [{ customerId: "kai", ref: "TRS-9", by: "" }, "by"],
      [{ customerId: "kai", ref: "TRS 9" }, "ref"],
      [{ customerId: "kai", ref: "a:b" }, "ref"],
      [{ customerId: "kai", ref: "TRS-9", amount: 0n }, "amount"],
      [{ customerId: "kai", ref: "TRS-9", asset: `0x${"99".repeat(20)}` }, "asset"],
      [{ customerId: "", ref: "TRS-9" }, "customer"],
    ];
    for (const [args, field] of bad)
      await expect(writeOff(args), field).rejects.toMatchObject({
        code: "LEDGER_REORG_WRITEOFF_INPUT",
        meta: { field },
      });
    expect(await listReorgReceivables(ctx.db.pool, "kai")).toEqual([
      { customerId: "kai", assetId: ETH, owed: 0n, pending: 90n, settled: 0n },
    ]);
    expect(await isWithdrawalBlocked(ctx.db.pool, "kai")).toBe(true);
  });
  it("a deposit coming back after its shortfall was written off pays the write-off back to the loss, not to the customer", async () => {
    const tx = await spentThenReorged("ned", D_NED, 150n, 150n);
    const lostBefore = await lost();
    await writeOff({ customerId: "ned", ref: "TRS-20" });
    expect(await lost()).toBe(lostBefore + 150n);
    expect(await isWithdrawalBlocked(ctx.db.pool, "ned")).toBe(false);

    // The same deposit mines again on a later branch: its return (credited at its own identity).
    await confirmedDeposit(ctx.db.pool, {
      tx,
      block: `0x${(++block).toString(16)}`,
      number: block,
      to: D_NED,
      amount: 150n,
    });
    await crediting.sweep();
    // One deposit of 150, spent: the customer has nothing, and nothing was lost after all.
    // before the fix: expected 150n to be +0n (the return credited the customer in full, nothing
    // being owed to settle: the custody paid the 150 it had written off a second time)
    const user = await ledger.balance({ assetId: ETH, name: "user:ned" });
    expect(user.creditsPosted - user.debitsPosted - user.debitsPending).toBe(0n);
    expect(await lost()).toBe(lostBefore);
    expect(await owed(ledger, "ned")).toEqual({ posted: 0n, pending: 0n });
    const audit = await listAudit(ctx.db.pool, {
      entityType: "customer",
      entityId: "ned",
      limit: 10,
    });
    expect(
      audit.find((a) => a.action === "ledger.reorg_receivable.writeoff_reversed"),
    ).toMatchObject({
      actor: "deposit-crediting",
      details: { asset_id: ETH, amount: "150" },
    });
    expect((await ledger.check()).problems).toEqual([]);
  });
  it("a deposit confirming again after a write-off of the customer's other shortfall gives back nothing written off", async () => {
    // Passes on the old code too: a write-off takes only what is posted, never a pending shortfall
    // whose deposit may still confirm again (its void undoes only what it held).
    const deposit = async (amount: bigint) => {
      const f = { tx: txHash(), block: `0x${(++block).toString(16)}`, number: block };
      await confirmedDeposit(ctx.db.pool, { ...f, to: D_OLI, amount });
      return f;
    };
    const a = await deposit(100n);
    const b = await deposit(60n);
    await crediting.sweep();
    // Both spent: one withdrawal of all of it, sent.
    await ledger.hold({
      id: transferId("withdrawal:oli-1"),
      assetId: ETH,
      debit: "user:oli",
      credit: `custody:hot:${HOT}`,
      amount: 160n,
      kind: "withdrawal",
    });
    await ledger.postPending({
      id: transferId("withdrawal-post:oli-1"),
      pendingId: transferId("withdrawal:oli-1"),
    });
    // a is gone for good (final without it); b is reorged out, its hold still pending.
    await orphanAfterConfirmation(ctx.db.pool, a.tx, a.block);
    await crediting.sweep();
    await setFinalized(ctx.db.pool, a.number, { tip: TIP });
    await crediting.sweep();
    await orphanAfterConfirmation(ctx.db.pool, b.tx, b.block);
    await crediting.sweep();
    expect(await owed(ledger, "oli")).toEqual({ posted: 100n, pending: 60n });
    const lostBefore = await lost();
    expect(await writeOff({ customerId: "oli", ref: "TRS-21" })).toMatchObject({ amount: 100n });

    // b confirms again: its hold voided.
    await confirmedDeposit(ctx.db.pool, {
      tx: b.tx,
      block: `0x${(++block).toString(16)}`,
      number: block,
      to: D_OLI,
      amount: 60n,
    });
    await crediting.sweep();
    // a's 100 stays lost (written off), b is the customer's again and spent: nothing left.
    const user = await ledger.balance({ assetId: ETH, name: "user:oli" });
    expect(user.creditsPosted - user.debitsPosted - user.debitsPending).toBe(0n);
    expect(await lost()).toBe(lostBefore + 100n);
    expect(await owed(ledger, "oli")).toEqual({ posted: 0n, pending: 0n });
    expect(await isWithdrawalBlocked(ctx.db.pool, "oli")).toBe(false);
    expect((await ledger.check()).problems).toEqual([]);
  });
});

describe("what operators see of reorg receivables", () => {
  // old code: expected undefined to be 1 (no receivables gauge, no repaid counter: a receivable
  // left outstanding for weeks was visible only in the ledger's accounts).
  it("counts the customers who owe per chain and asset, and the repayments", async () => {
    // A registry per read: one read serves a scrape's gauges for 500 ms.
    const figure = async (name: string) => {
      const registry = new Registry();
      registerStateMetrics(registry, { pool: ctx.db.pool, chains: ctx.config.chains });
      const m = registry.getSingleMetric(name);
      const v = (await m?.get())?.values.find(
        (x) => x.labels.chain_id === String(CHAIN) && x.labels.asset_id === ETH,
      );
      return v?.value;
    };
    const outstanding = () => figure("custody_ledger_reorg_receivables_outstanding");
    const oldest = () => figure("custody_ledger_reorg_receivable_oldest_seconds");
    // Earlier tests' holds final first (kai's is pending), so only lea's changes the count below.
    await setFinalized(ctx.db.pool, block, { tip: TIP });
    await crediting.sweep();
    const before = (await outstanding()) ?? 0;
    await spentThenReorged("lea", D_LEA, 70n, 70n);
    expect(await outstanding()).toBe(before + 1);
    // kai's, owed since an earlier test, is the oldest: a day ago, say (its postings backdated).
    await ctx.db.pool.query(
      `UPDATE ledger.transfers SET created_at = now() - interval '1 day'
        WHERE debit_account_id = (SELECT id FROM ledger.accounts
                                   WHERE asset_id = $1 AND name = 'receivable:reorg:kai')`,
      [ETH],
    );
    expect(await oldest()).toBeGreaterThan(86_000);
    expect(await oldest()).toBeLessThan(87_000);

    // A new deposit repays it: counted, and nothing outstanding for lea any more.
    await confirmedDeposit(ctx.db.pool, {
      tx: txHash(),
      block: `0x${(++block).toString(16)}`,
      number: block,
      to: D_LEA,
      amount: 100n,
    });
    await crediting.sweep();
    expect(await owed(ledger, "lea")).toEqual({ posted: 0n, pending: 0n });
    expect(await outstanding()).toBe(before);
    const repaid = await ctx.common.metrics.registry
      .getSingleMetric("custody_ledger_reorg_receivable_repaid_total")
      ?.get();
    expect(repaid?.values.find((x) => x.labels.chain_id === String(CHAIN))?.value).toBe(1);
  });

  // old code: expected 'timeout' to be +0 (every pass locked each blocked customer's user and
  // receivable rows, in a transaction of its own, to find nothing to repay: a pass waited behind
  // any withdrawal holding the customer's row).
  it("costs the crediting pass no row lock for a blocked customer with nothing to repay", async () => {
    await spentThenReorged("mo", D_MO, 60n, 60n);
    expect(await owed(ledger, "mo")).toEqual({ posted: 60n, pending: 0n });
    const holder = await ctx.db.pool.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(
        "SELECT 1 FROM ledger.accounts WHERE asset_id = $1 AND name = 'user:mo' FOR UPDATE",
        [ETH],
      );
      const pass = crediting.repayReceivables({ chainId: CHAIN });
      const outcome = await Promise.race([
        pass,
        new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 2000)),
      ]);
      await holder.query("ROLLBACK");
      await pass;
      expect(outcome).toBe(0);
    } finally {
      holder.release();
    }
    expect(await isWithdrawalBlocked(ctx.db.pool, "mo")).toBe(true);
  });
});
