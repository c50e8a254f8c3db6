/**
 * A withdrawal whose signer request failed at a final block (hold voided, `withdrawal.failed`
 * told) and whose block a deep reorg an operator accepted then undid: the signer takes the request
 * back to `broadcast` (signer/broadcaster/undone.ts; its own run on anvil is
 * signer/failedDeepReorg.integration.test.ts). Here the request row is moved as undone.ts writes
 * it, and the real outcome follower, ledger and webhook outbox follow: the withdrawal goes back to
 * `broadcast` with the amount held again (what the customer's available balance no longer covers
 * owed on `receivable:reorg:<id>`, their withdrawals blocked), then ends as its request ends.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../../foundation/audit.js";
import {
  createDepositCrediting,
  type Ledger,
  listWithdrawalBlocks,
  unfreezeCustomer,
  writeOffReorgReceivable,
} from "../../ledger/index.js";
import { getTxRequest } from "../../signer/index.js";
import { setTxRequestFailureUndone } from "../../signer/testing/txRequestState.js";
import {
  createWithdrawalOutcomeTest,
  type WithdrawalOutcomeTest,
} from "../testing/withdrawalOutcomes.js";
import { withdrawalTransferIds } from "./holds.js";
import { createWithdrawals, type Withdrawals } from "./service.js";

const ETH = 10n ** 18n;
const GWEI = 10n ** 9n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const CANCEL = `0x${"c1".repeat(32)}`;
const PAYMENT = `0x${"d2".repeat(32)}`;
const CANCEL_AGAIN = `0x${"c3".repeat(32)}`;

let t: WithdrawalOutcomeTest;
let ledger: Ledger;
let withdrawals: Withdrawals;

beforeAll(async () => {
  t = await createWithdrawalOutcomeTest({
    fund: {
      customers: ["dave", "erin", "fay", "gus", "hal", "ivy", "jo", "kim"],
      amount: 10n * ETH,
    },
  });
  ledger = t.ledger;
  withdrawals = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const balance = (customer: string) => t.balance(customer);
const available = (customer: string) => t.available(customer);
async function owed(customer: string) {
  const r = await ledger.getAccount({ assetId: NATIVE, name: `receivable:reorg:${customer}` });
  return r ? r.debitsPosted - r.creditsPosted : 0n;
}
/** What the custody booked as lost to reorgs (expense:reorg_loss), net. */
async function lost() {
  const l = await ledger.getAccount({ assetId: NATIVE, name: "expense:reorg_loss" });
  return l ? l.debitsPosted - l.creditsPosted : 0n;
}
const gas = () => t.gasBooked();

const eventTypes = (id: string) => t.eventTypes(id);

/** Sent, then failed at a final block by its cancel (gas paid); the outcome pass voids the hold. */
async function failedByCancel(id: string, nonce: number) {
  await t.signerRecords(id, {
    status: "broadcast",
    txHash: PAYMENT,
    nonce,
  });
  await withdrawals.syncOutcomes();
  await t.signerRecords(id, {
    status: "failed",
    txHash: CANCEL,
    nonce,
    block: 40,
    finalized: true,
    fee: 21_000n * GWEI,
    errorCode: "CANCELLED",
  });
  await withdrawals.syncOutcomes();
  expect(await t.withdrawal(id)).toMatchObject({ status: "failed", failureReason: "CANCELLED" });
}

/** The request moved as signer/broadcaster/undone.ts moves it when the reorg took its block. */
async function failureUndone(id: string) {
  await setTxRequestFailureUndone(t.ctx.db.pool, `withdrawal:${id}`);
}

describe("a withdrawal whose failure a deep reorg undid", () => {
  it("follows its request again: held again, then paid (posted, gas booked)", async () => {
    const id = await t.withdraw("dave", 2n * ETH);
    await failedByCancel(id, 7);
    const gasAfterFailure = await gas();
    // The gas is the custody's (fees:gas), not the customer's.
    expect(await available("dave")).toBe(10n * ETH);

    await failureUndone(id);
    // A fresh follower (a restarted worker) starts with a full scan: it must find it too.
    const fresh = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    await fresh.syncOutcomes();
    // old code: expected { …(19) } to match object { status: 'broadcast', …(1) } (received status
    // 'failed', failureReason 'CANCELLED': the follower looked at non-final statuses only)
    expect(await t.withdrawal(id)).toMatchObject({ status: "broadcast", failureReason: null });
    // The amount is held again (next epoch) and the orphaned cancel's gas reversed.
    expect(await available("dave")).toBe(8n * ETH);
    expect(await gas()).toBe(gasAfterFailure - 21_000n * GWEI);
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 1).hold)).toMatchObject({
      amount: 2n * ETH,
      kind: "withdrawal",
    });
    expect(await owed("dave")).toBe(0n);
    const history = (await t.withdrawal(id)).history as {
      action: string;
      details: { from_status: string };
    }[];
    expect(history.find((h) => h.action === "withdrawal.failure_undone")?.details).toMatchObject({
      from_status: "failed",
    });

    // Its payment mined instead (failed_request_paid): followed to final like any payment.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: PAYMENT,
      nonce: 7,
      block: 41,
      finalized: true,
      fee: 30_000n * GWEI,
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({ status: "finalized", txHash: PAYMENT });
    const b = await balance("dave");
    expect(b.debitsPending).toBe(0n);
    expect(b.creditsPosted - b.debitsPosted).toBe(8n * ETH);
    expect(await gas()).toBe(gasAfterFailure - 21_000n * GWEI + 30_000n * GWEI);
    expect(await eventTypes(id)).toEqual([
      "withdrawal.approved",
      "withdrawal.broadcast",
      "withdrawal.failed",
      "withdrawal.failure_undone",
      "withdrawal.finalized",
    ]);
  });

  it("a customer who spent the refund owes the rest on receivable:reorg and is blocked until it fails again", async () => {
    const id = await t.withdraw("erin", 6n * ETH);
    await failedByCancel(id, 8);
    // The refund is spent: another withdrawal holds most of the balance.
    const other = await t.withdraw("erin", 8n * ETH);
    const free = await available("erin");
    expect(free).toBe(2n * ETH);

    await failureUndone(id);
    await withdrawals.syncOutcomes();
    // old code: expected 'failed' to be 'broadcast'
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    expect(await owed("erin")).toBe(6n * ETH - free);
    const blocks = await listWithdrawalBlocks(t.ctx.db.pool, "erin");
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatchObject({ reason: "reorg_shortfall", details: { withdrawal_id: id } });
    // Nothing more leaves: the unsigned one is pulled back in the transaction that blocked her, not
    // a pass later with the signer free to sign it meanwhile (old code: expected { …(19) } to match
    // object { status: 'failed', …(1) }: still 'signing' after the pass that blocked her).
    expect(await t.withdrawal(other)).toMatchObject({
      status: "failed",
      failureReason: "CUSTOMER_WITHDRAWALS_BLOCKED",
    });
    expect((await getTxRequest(t.ctx.db.pool, `withdrawal:${other}`))?.status).toBe("failed");
    // Its 8 ETH is hers again, blocked; what the hold took of the rest is owed.
    expect(await available("erin")).toBe(8n * ETH);

    // A cancel took the nonce on the new branch too: failed again, held amount and debt undone.
    await t.signerRecords(id, {
      status: "failed",
      txHash: CANCEL,
      nonce: 8,
      block: 44,
      finalized: true,
      fee: 25_000n * GWEI,
      errorCode: "CANCELLED",
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({ status: "failed", failureReason: "CANCELLED" });
    expect(await owed("erin")).toBe(0n);
    expect(await available("erin")).toBe(10n * ETH);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "erin")).toEqual([]);
    expect(await eventTypes(id)).toEqual([
      "withdrawal.approved",
      "withdrawal.broadcast",
      "withdrawal.failed",
      "withdrawal.failure_undone",
      "withdrawal.failed",
    ]);
  });

  it("undone and failed again before a pass looked: the gas booked is the new cancel's, and told so", async () => {
    const id = await t.withdraw("fay", 3n * ETH);
    await failedByCancel(id, 9);
    const gasAfterFailure = await gas();
    await failureUndone(id);
    // Another cancel took the nonce on the new branch before any pass saw the undoing.
    await t.signerRecords(id, {
      status: "failed",
      txHash: CANCEL_AGAIN,
      nonce: 9,
      block: 45,
      finalized: true,
      fee: 25_000n * GWEI,
      errorCode: "CANCELLED",
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    // old code: expected { …(19) } to match object { status: 'failed', …(2) } (received txHash
    // 0xc1c1…: nothing moved, the old cancel's 21000 gwei stayed booked on fees:gas)
    expect(await t.withdrawal(id)).toMatchObject({
      status: "failed",
      txHash: CANCEL_AGAIN,
      failureReason: "CANCELLED",
    });
    expect(await gas()).toBe(gasAfterFailure - 21_000n * GWEI + 25_000n * GWEI);
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 1).fee)).toMatchObject({
      amount: 25_000n * GWEI,
      chainRef: { txHash: CANCEL_AGAIN, position: "fee" },
    });
    // Nothing was held for it meanwhile: the customer's balance is whole, nothing owed.
    const b = await balance("fay");
    expect(b.debitsPending).toBe(0n);
    expect(await available("fay")).toBe(10n * ETH);
    expect(await owed("fay")).toBe(0n);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "fay")).toEqual([]);
    expect(await eventTypes(id)).toEqual([
      "withdrawal.approved",
      "withdrawal.broadcast",
      "withdrawal.failed",
      "withdrawal.failure_undone",
      "withdrawal.failed",
    ]);

    // Idempotent: a full scan (a restarted worker) and another pass change nothing.
    const fresh = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    await fresh.syncOutcomes();
    await withdrawals.syncOutcomes();
    expect(await gas()).toBe(gasAfterFailure - 21_000n * GWEI + 25_000n * GWEI);
    expect((await eventTypes(id)).length).toBe(5);
  });

  it("a shortfall partly repaid meanwhile: failing again gives back only what is still owed", async () => {
    const id = await t.withdraw("gus", 6n * ETH);
    await failedByCancel(id, 10);
    const other = await t.withdraw("gus", 8n * ETH);
    await failureUndone(id);
    await withdrawals.syncOutcomes();
    expect(await owed("gus")).toBe(4n * ETH);
    // The unsigned one pulled back: its 8 ETH is available again.
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(other)).status).toBe("failed");
    expect(await available("gus")).toBe(8n * ETH);
    // Crediting's repayReceivables repays part of what is owed on the account (money that came
    // back meanwhile): booked here as it books it (one reorg_hold transfer).
    await ledger.transfer({
      id: "0b5d6c1e-0000-4000-8000-000000000001",
      assetId: NATIVE,
      debit: "user:gus",
      credit: "receivable:reorg:gus",
      amount: 3n * ETH,
      kind: "reorg_hold",
      memo: "reorg receivable repaid from the customer's available balance",
    });
    expect(await owed("gus")).toBe(1n * ETH);

    await t.signerRecords(id, {
      status: "failed",
      txHash: CANCEL,
      nonce: 10,
      block: 46,
      finalized: true,
      fee: 21_000n * GWEI,
      errorCode: "CANCELLED",
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("failed");
    // The withdrawal paid nothing: the customer owes nothing and has all of their money back
    // (the 3 ETH repaid returns to their balance, not left as a credit on the receivable).
    // old code: expected -3000000000000000000n to be +0n (the whole 4 ETH given back to the
    // receivable: the customer's 3 ETH repaid stuck there, their balance 7 ETH)
    expect(await owed("gus")).toBe(0n);
    expect(await available("gus")).toBe(10n * ETH);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "gus")).toEqual([]);
  });

  it("its shortfall is repaid by crediting from money that comes back, the block lifted; failing again then counts nothing twice", async () => {
    const id = await t.withdraw("ivy", 6n * ETH);
    await failedByCancel(id, 12);
    const other = await t.withdraw("ivy", 8n * ETH);
    await failureUndone(id);
    await withdrawals.syncOutcomes();
    expect(await owed("ivy")).toBe(4n * ETH);
    // The unsigned one pulled back: its 8 ETH comes back to the blocked balance.
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(other)).status).toBe("failed");
    expect(await available("ivy")).toBe(8n * ETH);

    // Crediting's pass repays receivables (ledger/depositCrediting.ts repayReceivables), as it
    // does for a deposit's reorg shortfall: one code path for both causes.
    const crediting = createDepositCrediting({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    // before the fix: expected +0 to be 1 (only blocks of deposit credits were looked at: the
    // 4 ETH stayed owed and the customer blocked until an operator acted)
    expect(await crediting.repayReceivables({ chainId: 31337 })).toBe(1);
    expect(await owed("ivy")).toBe(0n);
    expect(await available("ivy")).toBe(4n * ETH);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "ivy")).toEqual([]);
    // Nothing left to do: another pass books nothing.
    expect(await crediting.repayReceivables({ chainId: 31337 })).toBe(0);

    // The withdrawal fails again for good: the hold's void gives back all 6 ETH, the repayment
    // included; nothing is given back to the receivable (nothing is owed on it).
    await t.signerRecords(id, {
      status: "failed",
      txHash: CANCEL,
      nonce: 12,
      block: 47,
      finalized: true,
      fee: 21_000n * GWEI,
      errorCode: "CANCELLED",
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("failed");
    expect(await owed("ivy")).toBe(0n);
    expect(await available("ivy")).toBe(10n * ETH);
    expect((await balance("ivy")).debitsPending).toBe(0n);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "ivy")).toEqual([]);
  });

  it("an operator's write-off of its shortfall lifts its block", async () => {
    const id = await t.withdraw("jo", 6n * ETH);
    await failedByCancel(id, 13);
    await t.withdraw("jo", 8n * ETH);
    await failureUndone(id);
    await withdrawals.syncOutcomes();
    expect(await owed("jo")).toBe(4n * ETH);
    const written = await writeOffReorgReceivable(
      { common: t.ctx.common, pool: t.ctx.db.pool, ledger },
      {
        chainId: 31337,
        asset: "0x0000000000000000000000000000000000000000",
        customerId: "jo",
        ref: "TRE-77",
        by: "treasury@example",
        reason: "customer closed",
      },
    );
    expect(written).toMatchObject({ status: "created", amount: 4n * ETH, stillOwed: 0n });
    // before the fix: expected [] to have a length of 1 but got +0 (only the blocks of final
    // deposit credits were lifted: the customer stayed blocked with nothing owed)
    expect(written.blocksCleared).toHaveLength(1);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "jo")).toEqual([]);
  });

  it("failing for good after its shortfall was written off and partly repaid: the write-off goes back to the loss, the repayment to the customer", async () => {
    const id = await t.withdraw("kim", 6n * ETH);
    await failedByCancel(id, 14);
    const other = await t.withdraw("kim", 8n * ETH);
    await failureUndone(id);
    await withdrawals.syncOutcomes();
    expect(await owed("kim")).toBe(4n * ETH);
    // The unsigned one pulled back: its 8 ETH is available again (blocked).
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(other)).status).toBe("failed");
    // 1 ETH repaid (as crediting's repayReceivables books it), the other 3 written off.
    await ledger.transfer({
      id: "0b5d6c1e-0000-4000-8000-000000000002",
      assetId: NATIVE,
      debit: "user:kim",
      credit: "receivable:reorg:kim",
      amount: 1n * ETH,
      kind: "reorg_hold",
      memo: "reorg receivable repaid from the customer's available balance",
    });
    const lostBefore = await lost();
    await writeOffReorgReceivable(
      { common: t.ctx.common, pool: t.ctx.db.pool, ledger },
      {
        chainId: 31337,
        asset: "0x0000000000000000000000000000000000000000",
        customerId: "kim",
        ref: "TRE-78",
        by: "treasury@example",
        reason: "customer unreachable",
      },
    );
    expect(await lost()).toBe(lostBefore + 3n * ETH);

    await t.signerRecords(id, {
      status: "failed",
      txHash: CANCEL,
      nonce: 14,
      block: 48,
      finalized: true,
      fee: 21_000n * GWEI,
      errorCode: "CANCELLED",
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("failed");
    // The withdrawal paid nothing, so nothing was lost: the 3 ETH written off goes back to
    // expense:reorg_loss, and the customer has their own money (the 1 ETH repaid included), no more.
    // before the fix: expected 13000000000000000000n to be 10000000000000000000n (the void gave
    // back all 6 ETH, nothing was owed to give back: the written-off 3 ETH paid to the customer
    // while expense:reorg_loss still showed them lost)
    expect(await available("kim")).toBe(10n * ETH);
    expect(await lost()).toBe(lostBefore);
    expect(await owed("kim")).toBe(0n);
    expect(await listWithdrawalBlocks(t.ctx.db.pool, "kim")).toEqual([]);
    const audit = await listAudit(t.ctx.db.pool, {
      entityType: "customer",
      entityId: "kim",
      limit: 10,
    });
    expect(
      audit.find((a) => a.action === "ledger.reorg_receivable.writeoff_reversed"),
    ).toMatchObject({
      actor: "withdrawals",
      details: { amount: "3000000000000000000", withdrawal_id: id },
    });
    expect((await ledger.check()).problems).toEqual([]);
  });

  it("a frozen customer's withdrawal cannot be held again: reported once, followed once unfrozen", async () => {
    const unheld = async () =>
      (
        await t.ctx.common.metrics.registry
          .getSingleMetric("custody_api_withdrawal_failure_undone_unheld_total")
          ?.get()
      )?.values.reduce((sum, v) => sum + v.value, 0);
    const id = await t.withdraw("hal", 1n * ETH);
    await failedByCancel(id, 11);
    await ledger.freeze({ assetId: NATIVE, name: "user:hal" });
    await failureUndone(id);
    await withdrawals.syncOutcomes();
    // The ledger refuses a withdrawal's hold on a frozen balance: it stays failed, and the
    // operator hears it once (not a log line every full scan).
    expect((await t.withdrawal(id)).status).toBe("failed");
    // old code: expected undefined to be 1 (only "applying signer outcome failed" logged, again
    // on every full scan; no metric, no alert)
    expect(await unheld()).toBe(1);
    // Its request read again (as every full scan reads it): refused again, not counted again.
    await t.ctx.db.pool.query(
      "UPDATE custody.tx_requests SET outcome_seq = outcome_seq + 1 WHERE id = $1",
      [`withdrawal:${id}`],
    );
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("failed");
    expect(await unheld()).toBe(1);
    // A restarted (or a second) api worker reads it again: already reported, not counted again.
    const restarted = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    await restarted.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("failed");
    // old code: expected 2 to be 1 (counted once per process: every restart fired the alert again)
    expect(await unheld()).toBe(1);
    const { rows: reported } = await t.ctx.db.pool.query(
      "SELECT chain_id::int, tx_hash FROM api.withdrawal_failure_undone_unheld WHERE withdrawal_id = $1",
      [id],
    );
    expect(reported).toEqual([{ chain_id: 31337, tx_hash: expect.any(String) }]);

    // The operator unfreezes it (docs/runbooks/WithdrawalFailureUndoneUnheld.md, `custody-node
    // ledger unfreeze`): the next pass holds it again.
    expect(
      await unfreezeCustomer(
        { common: t.ctx.common, pool: t.ctx.db.pool },
        {
          chainId: 31337,
          asset: "0x0000000000000000000000000000000000000000",
          customerId: "hal",
          by: "ops-ana",
          reason: "compliance agreed: the payment may mine",
        },
      ),
    ).toMatchObject({ status: "unfrozen" });
    const fresh = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    await fresh.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    expect(await available("hal")).toBe(9n * ETH);
  });
});
