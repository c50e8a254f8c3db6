/**
 * The withdrawal side of signer outcomes on real Postgres, Redis and the real ledger: the API reads
 * only `getTxOutcomes`, and here the signer's request row is moved the way its tracker records a
 * tx's life (sent, confirmed, reorged out, confirmed again, final; receipt not found; needs
 * review). The signer's own tracking on anvil is tested in signer/ and ops/e2e.
 */
import { type Hex, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool, type PoolClient } from "../../foundation/db.js";
import { anvilRpc } from "../../indexers/testing/chain.js";
import { createLedger, type Ledger } from "../../ledger/index.js";
import { gate } from "../../ops/testing/gate.js";
import { spawnCli } from "../../ops/testing/process.js";
import { waitFor, within } from "../../ops/testing/wait.js";
import {
  failTxRequestByOperator,
  getTxOutcomes,
  nonceEvidenceFromChains,
} from "../../signer/index.js";
import {
  createWithdrawalOutcomeTest,
  type WithdrawalOutcomeTest,
} from "../testing/withdrawalOutcomes.js";
import { eventIdOf } from "../webhooks/eventId.js";
import { withdrawalTransferIds } from "./holds.js";
import { createWithdrawals, type Withdrawals } from "./service.js";
import { oldestUnminedByChain, withdrawalsByStatus } from "./statusCounts.js";

const ETH = 10n ** 18n;
const GWEI = 10n ** 9n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const TX_A = `0x${"a1".repeat(32)}`;
const TX_B = `0x${"b2".repeat(32)}`;

let t: WithdrawalOutcomeTest;
let ledger: Ledger;
let withdrawals: Withdrawals;

beforeAll(async () => {
  t = await createWithdrawalOutcomeTest({
    fund: { customers: ["alice", "bob", "carol", "dan"], amount: 10n * ETH },
  });
  ledger = t.ledger;
  withdrawals = createWithdrawals({ common: t.ctx.common, pool: t.ctx.db.pool, ledger });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

/** Gas booked so far (the fees:gas account's posted debits less credits). */
async function gasAccount() {
  const g = await ledger.balance({ assetId: NATIVE, name: "fees:gas" });
  return g.debitsPosted - g.creditsPosted;
}

async function balance(customer: string) {
  return ledger.balance({ assetId: NATIVE, name: `user:${customer}` });
}

/** The withdrawal's hot wallet, its chain (anvil, directly) and the wallet's next nonce there. */
async function hotWalletOf(id: string) {
  const { rows } = await t.ctx.db.pool.query<{ from_address: Hex }>(
    "SELECT from_address FROM custody.tx_requests WHERE id = $1",
    [`withdrawal:${id}`],
  );
  const from = rows[0]!.from_address;
  const rpc = anvilRpc(t.ctx.config.chains[0]!.rpcUrls[0]!);
  const nonce = Number(BigInt(await rpc<Hex>("eth_getTransactionCount", [from, "latest"])));
  return { from, rpc, nonce };
}

async function eventTypes(id: string): Promise<string[]> {
  const { rows } = await t.ctx.db.pool.query<{ type: string }>(
    "SELECT type FROM api.webhook_events WHERE payload->>'withdrawal_id' = $1 ORDER BY created_at, type",
    [id],
  );
  return rows.map((r) => r.type);
}

/** Until an outcome pass waits for a withdrawal's row lock another transaction holds. */
const passWaitsForWithdrawal = () =>
  waitFor(
    "the outcome pass waiting for the withdrawal",
    async () =>
      (
        await t.ctx.db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
            AND wait_event_type = 'Lock' AND query LIKE '%FROM api.withdrawals%'`,
        )
      ).rows.length > 0,
  );

describe("withdrawal outcomes from the signer", () => {
  it("confirmed posts; a reorg reverts the posting to a hold; confirmed again posts once more; finalized is terminal", async () => {
    const gasBefore = await gasAccount(); // the factory deploy's gas, booked by the test set-up
    const id = await t.withdraw("alice", 2n * ETH);
    const start = await balance("alice");
    expect(start.debitsPending).toBe(2n * ETH);

    await t.signerRecords(id, { status: "broadcast", txHash: TX_A });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("broadcast");

    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 21_000n * GWEI,
      block: 10,
    });
    await withdrawals.syncOutcomes();
    const confirmed = await t.withdrawal(id);
    expect(confirmed).toMatchObject({
      status: "confirmed",
      txHash: TX_A,
      fee: (21_000n * GWEI).toString(),
    });
    const posted = await balance("alice");
    expect(posted.debitsPending).toBe(0n);
    expect(posted.debitsPosted).toBe(2n * ETH);

    // A 5-block reorg removes the block; the signer re-sends the same bytes (status back to broadcast).
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A, reorgs: 1 });
    await withdrawals.syncOutcomes();
    const reorged = await t.withdrawal(id);
    expect(reorged.status).toBe("broadcast");
    expect(reorged.fee).toBeNull();
    const held = await balance("alice");
    expect(held.debitsPending).toBe(2n * ETH); // held again, not released
    expect(held.debitsPosted - held.creditsPosted).toBe(start.debitsPosted - start.creditsPosted);
    expect(held.available).toBe(start.available); // the customer's spendable balance never moved
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 1).reversePost)).toMatchObject({
      reversesId: withdrawalTransferIds(id, 0).post,
    });
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 1).reverseFee)).toMatchObject({
      amount: 21_000n * GWEI,
    });
    expect(reorged.history.map((h: { action: string }) => h.action)).toContain(
      "withdrawal.reorged",
    );

    // Re-mined in another block at another fee; the sync is idempotent.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 30_000n * GWEI,
      block: 12,
      reorgs: 1,
    });
    expect(await withdrawals.syncOutcomes()).toBe(1);
    expect(await withdrawals.syncOutcomes()).toBe(0);
    expect(await t.withdrawal(id)).toMatchObject({
      status: "confirmed",
      fee: (30_000n * GWEI).toString(),
    });
    const again = await balance("alice");
    expect(again.debitsPending).toBe(0n);
    expect(again.debitsPosted - again.creditsPosted).toBe(
      posted.debitsPosted - posted.creditsPosted,
    );
    expect((await gasAccount()) - gasBefore).toBe(30_000n * GWEI); // the reverted gas is gone

    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 30_000n * GWEI,
      block: 12,
      reorgs: 1,
      finalized: true,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("finalized");
    // Terminal: nothing the signer says afterwards moves it.
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A, reorgs: 2 });
    expect(await withdrawals.syncOutcomes()).toBe(0);
    expect((await t.withdrawal(id)).status).toBe("finalized");

    expect(await eventTypes(id)).toEqual(
      expect.arrayContaining([
        "withdrawal.broadcast",
        "withdrawal.confirmed",
        "withdrawal.reorged",
        "withdrawal.finalized",
      ]),
    );
    // Confirmed twice: two distinct events (ids), the second named `…:confirmed:2`.
    const { rows } = await t.ctx.db.pool.query(
      "SELECT id FROM api.webhook_events WHERE id = ANY($1)",
      [[eventIdOf(`withdrawal:${id}:confirmed`), eventIdOf(`withdrawal:${id}:confirmed:2`)]],
    );
    expect(rows).toHaveLength(2);
    expect((await ledger.check()).ok).toBe(true);
  });

  it("a frozen customer's confirmed withdrawal reorged out is held again: the freeze refuses new spends, not money already sent", async () => {
    const id = await t.withdraw("dan", 2n * ETH);
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A });
    await withdrawals.syncOutcomes();
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 21_000n * GWEI,
      block: 10,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("confirmed");
    await ledger.freeze({ assetId: NATIVE, name: "user:dan" });

    await t.signerRecords(id, { status: "broadcast", txHash: TX_A, reorgs: 1 });
    await withdrawals.syncOutcomes();
    // old code: expected 'confirmed' to be 'broadcast' (LEDGER_ACCOUNT_FROZEN on the hold:
    // "applying signer outcome failed" every pass, posted while the chain showed no payment)
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    const held = await balance("dan");
    expect(held.debitsPending).toBe(2n * ETH);
    expect(held.available).toBe(8n * ETH);
    // A new spend of the frozen balance is still refused.
    await expect(t.withdraw("dan", 1n * ETH)).rejects.toThrow(/409.*LEDGER_ACCOUNT_FROZEN/);
    expect((await ledger.check()).ok).toBe(true);
  });

  it("reorged out and confirmed again between two passes (never seen in broadcast): the posting and its gas follow the new transaction", async () => {
    const id = await t.withdraw("carol", ETH);
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 21_000n * GWEI,
      block: 10,
    });
    await withdrawals.syncOutcomes();
    const posted = await balance("carol");
    const gasPosted = await gasAccount();

    // The signer: reorged out, another attempt mined in another block at another fee, confirmed
    // again, all before the follower's next pass.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_B,
      fee: 30_000n * GWEI,
      block: 12,
      reorgs: 1,
    });
    expect(await withdrawals.syncOutcomes()).toBe(1);
    expect(await withdrawals.syncOutcomes()).toBe(0);
    expect(await t.withdrawal(id)).toMatchObject({
      status: "confirmed",
      txHash: TX_B,
      fee: (30_000n * GWEI).toString(),
    });
    // The old posting reversed, the new transaction's posted (the next hold epoch's), its gas only.
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 1).reversePost)).toMatchObject({
      reversesId: withdrawalTransferIds(id, 0).post,
    });
    expect((await ledger.getTransfer(withdrawalTransferIds(id, 1).post))?.chainRef).toMatchObject({
      txHash: TX_B,
    });
    expect((await gasAccount()) - gasPosted).toBe(9_000n * GWEI);
    const after = await balance("carol");
    expect(after.debitsPending).toBe(0n);
    expect(after.debitsPosted - after.creditsPosted).toBe(
      posted.debitsPosted - posted.creditsPosted,
    );
    expect(await eventTypes(id)).toEqual(expect.arrayContaining(["withdrawal.reorged"]));

    // The same bytes re-mined in another block (same hash, another fee), seen only when final.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_B,
      fee: 25_000n * GWEI,
      block: 14,
      reorgs: 2,
      finalized: true,
    });
    expect(await withdrawals.syncOutcomes()).toBe(1);
    expect(await t.withdrawal(id)).toMatchObject({
      status: "finalized",
      fee: (25_000n * GWEI).toString(),
    });
    expect((await gasAccount()) - gasPosted).toBe(4_000n * GWEI);
    expect((await ledger.check()).ok).toBe(true);
  });

  // Three CLI processes, one after another, each loading the app from source: 16 s beside a
  // simulation run, past 60 s beside CPU hogs and another test worker.
  it("receipt_unknown and needs_review keep the hold; only the operator command fails it and releases the hold", async () => {
    const id = await t.withdraw("bob", 3n * ETH);
    await t.signerRecords(id, { status: "broadcast", txHash: TX_B });
    await withdrawals.syncOutcomes();
    await t.signerRecords(id, { status: "receipt_unknown", txHash: TX_B });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("receipt_unknown");
    expect((await balance("bob")).debitsPending).toBe(3n * ETH);

    await t.signerRecords(id, {
      status: "needs_review",
      txHash: TX_B,
      reviewReason: "nonce consumed at a final block by no known attempt",
    });
    await withdrawals.syncOutcomes();
    const review = await t.withdrawal(id);
    expect(review.status).toBe("needs_review");
    expect((await balance("bob")).debitsPending).toBe(3n * ETH);
    const { rows: ev } = await t.ctx.db.pool.query(
      "SELECT payload FROM api.webhook_events WHERE id = $1",
      [eventIdOf(`withdrawal:${id}:needs_review`)],
    );
    expect(ev[0]?.payload.review_reason).toBe(
      "nonce consumed at a final block by no known attempt",
    );

    // The operator command refuses without a reason, and refuses a withdrawal the chain can decide.
    const other = await t.withdraw("carol", ETH);
    await t.signerRecords(other, { status: "broadcast", txHash: `0x${"c3".repeat(32)}` });
    await withdrawals.syncOutcomes();
    const refused = spawnCli(
      ["withdrawals", "fail", other, "--by", "ops-dana", "--reason", "looked stuck"],
      { DATABASE_URL: t.ctx.db.url, LOG_LEVEL: "silent" },
    );
    expect((await refused.exited).code).not.toBe(0);
    expect(refused.output()).toContain("is broadcast; cannot fail");
    expect((await t.withdrawal(other)).status).toBe("broadcast");
    expect((await balance("carol")).debitsPending).toBe(ETH);

    const failed = spawnCli(
      [
        "withdrawals",
        "fail",
        id,
        "--by",
        "ops-dana",
        "--reason",
        "nonce 7 used by a foreign tx at final block 1200",
        "--json",
      ],
      { DATABASE_URL: t.ctx.db.url, LOG_LEVEL: "silent" },
    );
    const { code } = await failed.exited;
    expect(code, failed.output()).toBe(0);
    const after = await t.withdrawal(id);
    expect(after.status).toBe("failed");
    expect(after.failureReason).toBe(
      "OPERATOR_FAILED: nonce 7 used by a foreign tx at final block 1200",
    );
    // Failed at once (the chain decided the nonce): no cancel was requested.
    expect(after.failRequested).toBeNull();
    const bob = await balance("bob");
    expect(bob.debitsPending).toBe(0n);
    expect(bob.available).toBe(10n * ETH);
    const audit = after.history.find((h: { action: string }) => h.action === "withdrawal.failed");
    expect(audit).toMatchObject({
      actor: "ops-dana",
      details: expect.objectContaining({
        reason: "nonce 7 used by a foreign tx at final block 1200",
      }),
    });
    expect(await eventTypes(id)).toContain("withdrawal.failed");
    // The signer's own record says the same, with who and why in its audit.
    const [signerSide] = await getTxOutcomes(t.ctx.db.pool, { requestIds: [`withdrawal:${id}`] });
    expect(signerSide).toMatchObject({ status: "failed", errorCode: "OPERATOR_FAILED" });
    // Repeating the command (e.g. after a crash) changes nothing and succeeds.
    const repeat = spawnCli(["withdrawals", "fail", id, "--by", "ops-dana", "--reason", "repeat"], {
      DATABASE_URL: t.ctx.db.url,
      LOG_LEVEL: "silent",
    });
    expect((await repeat.exited).code, repeat.output()).toBe(0);
    expect((await balance("bob")).available).toBe(10n * ETH);
    // Failed is terminal: a later signer record changes nothing.
    await t.signerRecords(id, { status: "confirmed", txHash: TX_B, fee: 1n, block: 20 });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("failed");
  }, 300_000);

  it("POST /fail is refused 409 (problem+json) while the block that used the nonce is not final; nothing changes", async () => {
    const id = await t.withdraw("alice", ETH);
    const held = (await balance("alice")).debitsPending;
    // Another transaction of the hot wallet uses its next nonce, in the head block.
    const { from, rpc, nonce } = await hotWalletOf(id);
    await rpc("anvil_setBalance", [from, toHex(ETH)]);
    await rpc("anvil_impersonateAccount", [from]);
    const foreign = (
      await rpc<Hex>("eth_sendTransaction", [{ from, to: from, value: "0x0", nonce: toHex(nonce) }])
    ).toLowerCase();
    await rpc("anvil_stopImpersonatingAccount", [from]);
    await rpc("evm_mine");
    await t.signerRecords(id, {
      status: "needs_review",
      txHash: TX_A,
      nonce,
      reviewReason: "NONCE_CONSUMED_NO_KNOWN_ATTEMPT",
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("needs_review");
    const res = await t.call(t.keys.admin, {
      method: "POST",
      url: `/v1/withdrawals/${id}/fail`,
      headers: { "idempotency-key": `fail-not-final-${id}` },
      payload: { reason: "nonce used by another transaction" },
    });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({ code: "SIGNER_NONCE_NOT_FINAL", tx_hash: foreign });
    expect((await t.withdrawal(id)).status).toBe("needs_review");
    expect((await balance("alice")).debitsPending).toBe(held);
  });

  it("POST /fail of a withdrawal whose nonce nothing used is a cancel: the hold stands until the cancel's block is final", async () => {
    const id = await t.withdraw("alice", ETH);
    const held = (await balance("alice")).debitsPending;
    // A nonce above the wallet's mined count: no transaction used it at the head.
    const nonce = (await hotWalletOf(id)).nonce + 5;
    await t.signerRecords(id, {
      status: "needs_review",
      txHash: TX_A,
      nonce,
      reviewReason: "CANCEL_UNSENDABLE",
    });
    await withdrawals.syncOutcomes();
    const fail = () =>
      t.call(t.keys.admin, {
        method: "POST",
        url: `/v1/withdrawals/${id}/fail`,
        headers: { "idempotency-key": `fail-cancel-${id}-${Math.random()}` },
        payload: { reason: "every send refused; customer asked to cancel" },
      });
    const res = await fail();
    expect(res.statusCode, res.body).toBe(200);
    // Back to broadcast, hold standing: one of its signed sends may still mine.
    expect(res.json()).toMatchObject({
      status: "broadcast",
      failureReason: null,
      failRequested: {
        by: "owner-admin",
        reason: "every send refused; customer asked to cancel",
      },
    });
    const requestedAt = res.json().failRequested.at;
    expect(Date.parse(requestedAt)).not.toBeNaN();
    // Webhook receivers hear it as its own type (a second `withdrawal.broadcast` could not be
    // told from a re-send): the failure is under way, the hold stands.
    const { rows: told } = await t.ctx.db.pool.query(
      `SELECT type, payload->>'status' AS status, payload->'fail_requested' AS f
         FROM api.webhook_events
        WHERE payload->>'withdrawal_id' = $1 AND payload ? 'fail_requested'`,
      [id],
    );
    expect(told).toEqual([
      {
        type: "withdrawal.fail_requested",
        status: "broadcast",
        f: {
          at: requestedAt,
          by: "owner-admin",
          reason: "every send refused; customer asked to cancel",
        },
      },
    ]);
    expect((await balance("alice")).debitsPending).toBe(held);
    const [signerSide] = await getTxOutcomes(t.ctx.db.pool, { requestIds: [`withdrawal:${id}`] });
    expect(signerSide).toMatchObject({ status: "broadcast", errorCode: null });
    expect(signerSide!.cancelRequestedAt).toBeInstanceOf(Date);
    const moved = (await t.withdrawal(id)).history.find(
      (h: { action: string; actor: string }) =>
        h.action === "withdrawal.broadcast" && h.actor === "owner-admin",
    );
    expect(moved?.details).toMatchObject({ by: "operator", cancelling: true });
    // A repeat answers the same and changes nothing; the outcome pass keeps it in broadcast.
    const again = await fail();
    expect(again.statusCode, again.body).toBe(200);
    expect(again.json().status).toBe("broadcast");
    expect(again.json().failRequested.at).toBe(requestedAt);
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    expect((await balance("alice")).debitsPending).toBe(held);
    // The cancel's block is final: the signer fails the request as the operator's; released.
    await t.signerRecords(id, {
      status: "failed",
      txHash: TX_B,
      nonce,
      errorCode: "OPERATOR_FAILED",
      errorMessage: "every send refused; customer asked to cancel",
      finalized: true,
      fee: 21_000n * GWEI,
    });
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({
      status: "failed",
      failureReason: "OPERATOR_FAILED: every send refused; customer asked to cancel",
      failRequested: { at: requestedAt, by: "owner-admin" },
    });
    // The failure is the operator's, though the cancel's final block decided when.
    expect(
      (await t.withdrawal(id)).history.find(
        (h: { action: string }) => h.action === "withdrawal.failed",
      ),
    ).toMatchObject({ actor: "owner-admin", details: expect.objectContaining({ by: "operator" }) });
    expect((await balance("alice")).debitsPending).toBe(held - ETH);
    expect(await eventTypes(id)).toContain("withdrawal.failed");
  });

  it("an operator's repeat after the signer's cancel already failed it books the cancel's gas before releasing", async () => {
    const id = await t.withdraw("bob", ETH);
    const before = await balance("bob");
    await t.signerRecords(id, { status: "needs_review", txHash: TX_A, nonce: 60 });
    await withdrawals.syncOutcomes();
    // The cancel's block became final before the outcome pass ran (the pass lags, or crashed).
    await t.signerRecords(id, {
      status: "failed",
      txHash: TX_B,
      nonce: 60,
      errorCode: "OPERATOR_FAILED",
      errorMessage: "cancelled by ops",
      finalized: true,
      fee: 21_000n * GWEI,
    });
    const w = await withdrawals.failByOperator(id, { by: "ops-dana", reason: "cancelled by ops" });
    expect(w.status).toBe("failed");
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 0).fee)).toMatchObject({
      amount: 21_000n * GWEI,
      chainRef: { txHash: TX_B },
    });
    expect((await balance("bob")).debitsPending).toBe(before.debitsPending - ETH);
  });

  it("an operator's fail while the outcome pass lags behind a revert at a final block records the chain's outcome, not the operator's", async () => {
    const id = await t.withdraw("carol", ETH);
    const before = await balance("carol");
    await t.signerRecords(id, { status: "needs_review", txHash: TX_A, nonce: 62 });
    await withdrawals.syncOutcomes();
    // The signer found the receipt after all: its transaction reverted, and that block is final.
    // The outcome pass has not applied it yet when the operator fails the withdrawal.
    await t.signerRecords(id, {
      status: "failed",
      txHash: TX_A,
      nonce: 62,
      errorCode: "REVERTED",
      finalized: true,
      fee: 21_000n * GWEI,
    });
    const failed = spawnCli(
      ["withdrawals", "fail", id, "--by", "ops-hal", "--reason", "looked stuck"],
      { DATABASE_URL: t.ctx.db.url, LOG_LEVEL: "silent" },
    );
    expect((await failed.exited).code, failed.output()).toBe(0);
    // The chain decided, not the operator: the custody team (CLI, API, audit, webhook) is told so.
    expect(failed.output()).toContain("had already failed on chain (REVERTED");
    const w = await t.withdrawal(id);
    expect(w).toMatchObject({
      status: "failed",
      failureReason: "REVERTED",
      txHash: TX_A,
      fee: (21_000n * GWEI).toString(),
    });
    const audit = w.history.filter((h: { action: string }) => h.action === "withdrawal.failed");
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor: "signer",
      details: expect.objectContaining({ error_code: "REVERTED", fail_requested_by: "ops-hal" }),
    });
    const { rows: ev } = await t.ctx.db.pool.query(
      "SELECT payload FROM api.webhook_events WHERE id = $1",
      [eventIdOf(`withdrawal:${id}:failed`)],
    );
    expect(ev[0]?.payload).toMatchObject({ failure_reason: "REVERTED", tx_hash: TX_A });
    // The money is as the outcome pass would have left it: gas booked, the hold released.
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 0).fee)).toMatchObject({
      amount: 21_000n * GWEI,
      chainRef: { txHash: TX_A },
    });
    expect((await balance("carol")).debitsPending).toBe(before.debitsPending - ETH);
  });

  it("the OpenAPI document lists every withdrawal status", async () => {
    const doc = (await t.app.inject({ method: "GET", url: "/docs/json" })).json();
    const schema =
      doc.paths["/v1/withdrawals/{id}"].get.responses["200"].content["application/json"].schema;
    expect(schema.properties.status.enum).toEqual(
      expect.arrayContaining([
        "confirmed",
        "finalized",
        "receipt_unknown",
        "needs_review",
        "broadcast",
        "failed",
      ]),
    );
  });

  it("a failure reported without a final block or an operator releases nothing", async () => {
    const id = await t.withdraw("carol", ETH);
    const before = await balance("carol");
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A, nonce: 40 });
    await withdrawals.syncOutcomes();
    await t.signerRecords(id, {
      status: "failed",
      txHash: TX_A,
      nonce: 40,
      errorCode: "SOMETHING",
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    expect((await balance("carol")).debitsPending).toBe(before.debitsPending);
    // The same failure decided by a final block (reverted) releases the hold.
    await t.signerRecords(id, {
      status: "failed",
      txHash: TX_A,
      nonce: 40,
      errorCode: "REVERTED",
      finalized: true,
      fee: 21_000n * GWEI,
    });
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({ status: "failed", failureReason: "REVERTED" });
    expect((await balance("carol")).debitsPending).toBe(before.debitsPending - ETH);
  });

  it("the time out and not mined runs on while it flips between broadcast and receipt_unknown; a reorg's re-send starts it again", async () => {
    const id = await t.withdraw("alice", ETH / 10n);
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A });
    await withdrawals.syncOutcomes();
    // Sent two hours ago (every clock of the row moved back; the column list is the row's own).
    const { rows: cols } = await t.ctx.db.pool.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns
        WHERE table_schema = 'api' AND table_name = 'withdrawals' AND data_type LIKE 'timestamp%'`,
    );
    const twoHoursBack = cols
      .map(({ column_name: c }) => `${c} = ${c} - interval '2 hours'`)
      .join(", ");
    await t.ctx.db.pool.query(`UPDATE api.withdrawals SET ${twoHoursBack} WHERE id = $1`, [id]);

    // Its nonce seen used with no receipt, then free again: two status changes, no send.
    await t.signerRecords(id, { status: "receipt_unknown", txHash: TX_A });
    await withdrawals.syncOutcomes();
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    const inStatus = (await withdrawalsByStatus(t.ctx.db.pool, ["broadcast"])).get("broadcast")!;
    expect(inStatus.longestInStatusSeconds).toBeLessThan(3600);
    expect((await oldestUnminedByChain(t.ctx.db.pool)).get(31337)).toBeGreaterThanOrEqual(7200);

    // Mined, then reorged out: the same bytes are sent again, and the clock runs from that send.
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_A,
      fee: 21_000n * GWEI,
      block: 40,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("confirmed");
    await t.signerRecords(id, { status: "broadcast", txHash: TX_A, reorgs: 1 });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("broadcast");
    expect((await oldestUnminedByChain(t.ctx.db.pool)).get(31337)).toBeLessThan(3600);
  });

  it("a receipt found after receipt_unknown confirms and posts", async () => {
    const id = await t.withdraw("carol", ETH);
    await t.signerRecords(id, { status: "receipt_unknown", txHash: TX_B });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("receipt_unknown");
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_B,
      fee: 21_000n * GWEI,
      block: 30,
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("confirmed");
    expect(await ledger.getTransfer(withdrawalTransferIds(id, 0).post)).toMatchObject({
      chainRef: { chainId: 31337, txHash: TX_B, position: "tx" },
    });
  });

  /** needs_review with a nonce nothing used at the head: an operator's failure is a cancel. */
  let aboveMined = 20; // nonces above the wallet's mined count, one per request (unique)
  async function inReviewWithUnusedNonce(customer: string) {
    const id = await t.withdraw(customer, ETH);
    const nonce = (await hotWalletOf(id)).nonce + aboveMined++;
    await t.signerRecords(id, {
      status: "needs_review",
      txHash: TX_A,
      nonce,
      reviewReason: "CANCEL_UNSENDABLE",
    });
    await withdrawals.syncOutcomes();
    expect((await t.withdrawal(id)).status).toBe("needs_review");
    return id;
  }

  /** The operator's decision on the withdrawal itself: failRequested, one audit entry, one event. */
  async function expectFailRequestRecorded(id: string, by: string, reason: string) {
    const w = await t.withdrawal(id);
    expect(w).toMatchObject({ status: "broadcast", failRequested: { by, reason } });
    const requested = w.history.filter(
      (h: { actor: string; details?: { cancelling?: boolean } }) =>
        h.actor === by && h.details?.cancelling === true,
    );
    expect(requested).toHaveLength(1);
    expect(requested[0].details).toMatchObject({ by: "operator", reason });
    const { rows } = await t.ctx.db.pool.query(
      `SELECT payload->>'status' AS status, payload->'fail_requested' AS f FROM api.webhook_events
        WHERE payload->>'withdrawal_id' = $1 AND type = 'withdrawal.fail_requested'`,
      [id],
    );
    expect(rows).toEqual([{ status: "broadcast", f: w.failRequested }]);
    return w;
  }

  it("an outcome pass between an operator's fail by cancel and its record on the withdrawal sees neither: recorded once, nothing overtaken", async () => {
    const id = await inReviewWithUnusedNonce("carol");
    const held = (await balance("carol")).debitsPending;
    // The operator's service on the same database: once the signer's cancel is written, the
    // withdrawal's record in the same transaction is held until an outcome pass runs in between.
    const pool = t.ctx.db.pool;
    const passDone = gate();
    const inWindow = gate();
    const cancelling = async () =>
      (
        await pool.query<{ c: boolean }>(
          "SELECT cancel_requested_at IS NOT NULL AS c FROM custody.tx_requests WHERE id = $1",
          [`withdrawal:${id}`],
        )
      ).rows[0]!.c;
    let holdOnce = true;
    const gatedClient = (client: PoolClient) =>
      new Proxy(client, {
        get(target, prop) {
          if (prop === "query")
            return async (...args: Parameters<PoolClient["query"]>) => {
              if (holdOnce && String(args[0]).trimStart().startsWith("UPDATE api.withdrawals")) {
                holdOnce = false;
                inWindow.open();
                await passDone.wait;
              }
              return (target.query as (...a: unknown[]) => unknown)(...args);
            };
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    const gated = new Proxy(pool, {
      get(target, prop) {
        if (prop === "connect") return async () => gatedClient(await target.connect());
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as Pool;
    const operator = createWithdrawals({ common: t.ctx.common, pool: gated, ledger });
    const reason = "every send refused; customer asked to cancel";
    const failing = operator.failByOperator(id, { by: "ops-erin", reason });
    await inWindow.wait;
    // The signer's cancel commits with the withdrawal's record, not before it: the pass reads the
    // request as it was (needs_review), so it has nothing to apply, and moves nothing meanwhile.
    expect(await cancelling()).toBe(false);
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({ status: "needs_review", failRequested: null });
    passDone.open();
    const answered = await failing;
    expect(answered).toMatchObject({
      status: "broadcast",
      failRequested: { by: "ops-erin", reason },
    });
    expect(await cancelling()).toBe(true);
    await withdrawals.syncOutcomes();
    const w = await expectFailRequestRecorded(id, "ops-erin", reason);
    // A repeat answers the same and records nothing more.
    await operator.failByOperator(id, { by: "ops-erin", reason: "again" });
    await expectFailRequestRecorded(id, "ops-erin", reason);
    expect((await t.withdrawal(id)).failRequested.at).toBe(w.failRequested.at);
    expect((await balance("carol")).debitsPending).toBe(held);
  });

  it("an outcome read before a reorg is not applied after it: the pass decides on the signer's record under the withdrawal's lock", async () => {
    const id = await t.withdraw("bob", ETH);
    await t.signerRecords(id, { status: "broadcast", txHash: TX_B });
    await withdrawals.syncOutcomes();
    const held = await balance("bob");
    await t.signerRecords(id, {
      status: "confirmed",
      txHash: TX_B,
      fee: 21_000n * GWEI,
      block: 20,
    });
    // Another transaction holds the withdrawal's row (an API decision, another task's pass), so the
    // pass reads `confirmed` and then waits; meanwhile a reorg takes the block out.
    const pool = t.ctx.db.pool;
    const locker = await pool.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM api.withdrawals WHERE id = $1 FOR UPDATE", [id]);
      const pass = withdrawals.syncOutcomes();
      await passWaitsForWithdrawal();
      await t.signerRecords(id, { status: "broadcast", txHash: TX_B, reorgs: 1 });
      await locker.query("COMMIT");
      await pass;
    } finally {
      locker.release();
    }
    const w = await t.withdrawal(id);
    expect(w.status).toBe("broadcast");
    expect(w.fee).toBeNull();
    const after = await balance("bob");
    expect([after.debitsPending, after.debitsPosted]).toEqual([
      held.debitsPending,
      held.debitsPosted,
    ]);
    expect(await eventTypes(id)).not.toContain("withdrawal.confirmed");
    expect((await ledger.check()).ok).toBe(true);
  });

  it("an operator's repeat after the signer's cancel was decided alone (tx-requests fail) records it", async () => {
    const id = await inReviewWithUnusedNonce("bob");
    const held = (await balance("bob")).debitsPending;
    const reason = "nonce unused, every send refused";
    // The signer's half decided alone (`custody-node tx-requests fail` on the withdrawal's
    // request, or a fail from before both halves were one transaction); the pass ran meanwhile.
    await failTxRequestByOperator(
      t.ctx.db.pool,
      { requestId: `withdrawal:${id}`, by: "ops-dana", reason },
      nonceEvidenceFromChains(t.ctx.config.chains),
    );
    await withdrawals.syncOutcomes();
    expect(await t.withdrawal(id)).toMatchObject({ status: "broadcast", failRequested: null });
    const w = await withdrawals.failByOperator(id, { by: "ops-dana", reason });
    expect(w.failRequested).toMatchObject({ by: "ops-dana", reason });
    await expectFailRequestRecorded(id, "ops-dana", reason);
    await withdrawals.failByOperator(id, { by: "ops-dana", reason });
    await expectFailRequestRecorded(id, "ops-dana", reason);
    expect((await balance("bob")).debitsPending).toBe(held);
  });

  it("operators failing as many withdrawals at once as the pool has connections: each is answered, none waits for a second connection", async () => {
    const ids = [await inReviewWithUnusedNonce("alice"), await inReviewWithUnusedNonce("carol")];
    const reason = "every send refused; nonce unused";
    // The api's service and ledger on one pool (20 connections there), with as many operators
    // failing at once (console tabs, a script over the review list): here 2 of each.
    const pool = createPool(t.ctx.db.url, { max: ids.length, applicationName: "operator-fails" });
    const own = createLedger({ common: t.ctx.common, pool });
    const locker = await t.ctx.db.pool.connect();
    try {
      await own.ensureAssetsFromConfig(t.ctx.config.chains);
      const operator = createWithdrawals({ common: t.ctx.common, pool, ledger: own });
      // Both in their transactions at once: another session (an outcome pass, a console read for
      // update) holds the two rows until both operators wait for them.
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM api.withdrawals WHERE id = ANY($1::uuid[]) FOR UPDATE", [
        ids,
      ]);
      const failing = Promise.all(
        ids.map((id) => operator.failByOperator(id, { by: "ops-gil", reason })),
      );
      failing.catch(() => {});
      await waitFor(
        "both operators waiting for their withdrawal",
        async () =>
          (
            await t.ctx.db.pool.query(
              `SELECT 1 FROM pg_stat_activity WHERE application_name = 'operator-fails'
                AND wait_event_type = 'Lock' AND query LIKE '%FROM api.withdrawals%'`,
            )
          ).rows.length === ids.length,
      );
      await locker.query("COMMIT");
      const answered = await within("both operators' fails", failing, 30_000);
      expect(answered.map((w) => w.status)).toEqual(["broadcast", "broadcast"]);
      for (const id of ids) await expectFailRequestRecorded(id, "ops-gil", reason);
    } finally {
      locker.release();
      // A hang leaves both sessions in their transactions, holding the withdrawals' rows.
      await t.ctx.db.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'operator-fails' AND state = 'idle in transaction'`,
      );
      // Their clients are then never given back, and that pool is left to the process's exit.
      await own.close();
      await within("the operators' pool to close", pool.end(), 5_000).catch(() => {});
    }
  });

  it("an operator's fail that the outcome pass applies first is audited as the operator's", async () => {
    const id = await t.withdraw("alice", ETH);
    await t.signerRecords(id, { status: "needs_review", txHash: TX_B, reviewReason: "stuck" });
    await withdrawals.syncOutcomes();
    const reason = "nonce used by a foreign tx at a final block";
    // The signer's half decided alone (failed now, no cancel: `tx-requests fail`); the pass
    // applies it before the operator fails the withdrawal.
    await failTxRequestByOperator(
      t.ctx.db.pool,
      { requestId: `withdrawal:${id}`, by: "ops-frank", reason },
      nonceEvidenceFromChains(t.ctx.config.chains),
    );
    await withdrawals.syncOutcomes();
    const w = await t.withdrawal(id);
    expect(w).toMatchObject({ status: "failed", failureReason: `OPERATOR_FAILED: ${reason}` });
    const failed = () =>
      w.history.filter((h: { action: string }) => h.action === "withdrawal.failed");
    expect(failed()).toHaveLength(1);
    expect(failed()[0]).toMatchObject({ actor: "ops-frank" });
    // The operator's transaction then finds it failed: answered as it is, nothing more recorded.
    expect((await withdrawals.failByOperator(id, { by: "ops-frank", reason })).status).toBe(
      "failed",
    );
    const after = (await t.withdrawal(id)).history.filter(
      (h: { action: string }) => h.action === "withdrawal.failed",
    );
    expect(after).toHaveLength(1);
  });
});
