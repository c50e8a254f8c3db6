/**
 * A withdrawal finalized (posted, gas booked, `withdrawal.finalized` told) whose block a deep reorg
 * an operator accepted then undid, its transaction not on the new branch: the signer takes the
 * request back to `broadcast` and sends its stored bytes again (signer/broadcaster/undone.ts; its
 * own run on anvil is signer/finalizedDeepReorg.integration.test.ts). Here the request row is moved
 * as undone.ts writes it, and the real outcome follower, ledger and webhook outbox follow: the
 * posting is reverted to a hold (`withdrawal.reorged`), and the withdrawal ends as its request ends:
 * posted again when it mines again, the hold voided (the customer refunded) if it fails there.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "../../ledger/index.js";
import { setTxRequestFinalUndone } from "../../signer/testing/txRequestState.js";
import {
  createWithdrawalOutcomeTest,
  type WithdrawalOutcomeTest,
} from "../testing/withdrawalOutcomes.js";
import { withdrawalTransferIds } from "./holds.js";
import { createWithdrawals, type Withdrawals } from "./service.js";

const ETH = 10n ** 18n;
const GWEI = 10n ** 9n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const PAYMENT = `0x${"e4".repeat(32)}`;

let t: WithdrawalOutcomeTest;
let ledger: Ledger;
let withdrawals: Withdrawals;

beforeAll(async () => {
  t = await createWithdrawalOutcomeTest({
    fund: { customers: ["lea", "max", "ned"], amount: 10n * ETH },
  });
  ledger = t.ledger;
  withdrawals = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const balance = (customer: string) => t.balance(customer);
const available = (customer: string) => t.available(customer);
const gas = () => t.gasBooked();
const eventTypes = (id: string) => t.eventTypes(id);

/** Sent, mined, confirmed and finalized in block 40: posted, gas booked. */
async function finalizedAt40(id: string, nonce: number) {
  await t.signerRecords(id, { status: "broadcast", txHash: PAYMENT, nonce });
  await withdrawals.syncOutcomes();
  await t.signerRecords(id, {
    status: "confirmed",
    txHash: PAYMENT,
    nonce,
    block: 40,
    finalized: true,
    fee: 21_000n * GWEI,
  });
  await withdrawals.syncOutcomes();
  expect(await t.withdrawal(id)).toMatchObject({ status: "finalized", txHash: PAYMENT });
}

describe("a finalized withdrawal whose final block a deep reorg undid", () => {
  it("has its posting reverted to a hold, and is posted again when it mines again", async () => {
    const id = await t.withdraw("lea", 2n * ETH);
    await finalizedAt40(id, 3);
    const gasBefore = await gas();
    expect(await available("lea")).toBe(8n * ETH);

    await setTxRequestFinalUndone(t.ctx.db.pool, `withdrawal:${id}`);
    // A fresh follower (a restarted worker) starts with a full scan: it must find it too.
    const fresh = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
    await fresh.syncOutcomes();
    // old code: expected 'finalized' to be 'broadcast' (finalized was terminal: the posting
    // stood while the chain held no payment)
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    // Posting reversed and the amount held again (next epoch): the customer's balance unchanged.
    expect(await available("lea")).toBe(8n * ETH);
    expect((await balance("lea")).debitsPending).toBe(2n * ETH);
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 1).hold)).toMatchObject({
      amount: 2n * ETH,
    });
    expect(await gas()).toBe(gasBefore - 21_000n * GWEI);

    // The same bytes mined again on the new branch and finalized there.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: PAYMENT,
      nonce: 3,
      block: 43,
      finalized: true,
      fee: 25_000n * GWEI,
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({ status: "finalized", txHash: PAYMENT });
    const b = await balance("lea");
    expect(b.debitsPending).toBe(0n);
    expect(b.creditsPosted - b.debitsPosted).toBe(8n * ETH);
    expect(await gas()).toBe(gasBefore - 21_000n * GWEI + 25_000n * GWEI);
    expect(await eventTypes(id)).toEqual([
      "withdrawal.approved",
      "withdrawal.broadcast",
      "withdrawal.finalized",
      "withdrawal.reorged",
      "withdrawal.finalized",
    ]);
    // Nothing more on later passes.
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("finalized");
  });

  it("refunds the customer when it fails on the new branch", async () => {
    const id = await t.withdraw("max", 3n * ETH);
    await finalizedAt40(id, 4);
    await setTxRequestFinalUndone(t.ctx.db.pool, `withdrawal:${id}`);
    // Reverted on the new branch, at its final block.
    await t.signerRecords(id, {
      status: "failed",
      txHash: PAYMENT,
      nonce: 4,
      block: 44,
      finalized: true,
      fee: 30_000n * GWEI,
      errorCode: "REVERTED",
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    // old code: expected 'finalized' to be 'failed' (the customer stayed debited for a payment
    // the chain does not hold)
    expect((await t.withdrawal(id)).status).toBe("failed");
    expect(await available("max")).toBe(10n * ETH);
    expect((await balance("max")).debitsPending).toBe(0n);
    expect(await eventTypes(id)).toEqual([
      "withdrawal.approved",
      "withdrawal.broadcast",
      "withdrawal.finalized",
      "withdrawal.reorged",
      "withdrawal.failed",
    ]);
  });

  it("reverts a frozen customer's posting to a hold too: money that already left is no new spend", async () => {
    const id = await t.withdraw("ned", 2n * ETH);
    await finalizedAt40(id, 5);
    // Frozen (compliance) after it was paid; the signer re-sends the same bytes whatever the freeze.
    await ledger.freeze({ assetId: NATIVE, name: "user:ned" });
    await setTxRequestFinalUndone(t.ctx.db.pool, `withdrawal:${id}`);
    await withdrawals.syncOutcomes();
    // old code: expected 'finalized' to be 'broadcast' (the hold refused, LEDGER_ACCOUNT_FROZEN:
    // "applying signer outcome failed" every pass, the posting stood while the chain held nothing)
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    expect(await available("ned")).toBe(8n * ETH);
    expect((await balance("ned")).debitsPending).toBe(2n * ETH);
    // Still frozen: nothing new leaves.
    expect((await ledger.getAccount({ assetId: NATIVE, name: "user:ned" }))?.frozen).toBe(true);
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: PAYMENT,
      nonce: 5,
      block: 45,
      finalized: true,
      fee: 21_000n * GWEI,
      reorgs: 1,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("finalized");
    expect((await balance("ned")).debitsPending).toBe(0n);
    expect(await available("ned")).toBe(8n * ETH);
    expect((await ledger.check()).problems).toEqual([]);
  });
});
