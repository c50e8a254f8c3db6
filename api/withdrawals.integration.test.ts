/**
 * Withdrawals through /v1 on real Postgres and Redis with the real ledger and signer intake:
 * policy, holds, M-of-N approvals by distinct owners (never the requester), rejection and
 * cancellation voiding the hold, idempotent create. (Signing and confirmation on anvil are in
 * ops/e2e.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Ledger, transferId } from "../ledger/index.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let ledger: Ledger;
let hot: string;
let requester: string;
let approver1: string;
let approver1b: string;
let approver2: string;
let n = 0;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    policy: {
      perTransaction: 10n * ETH,
      rolling24h: 12n * ETH,
      approvalThreshold: ETH,
      requiredApprovals: 2,
    },
    fund: { customers: ["alice"], amount: 20n * ETH },
  });
  hot = t.hotWallet;
  ledger = t.ledger;
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
  approver1 = await t.newKey("ops-anna", ["withdrawals:approve"]);
  approver1b = await t.newKey("ops-anna", ["withdrawals:approve"]);
  approver2 = await t.newKey("ops-ben", ["withdrawals:approve", "withdrawals:write"]);
});
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object = {}, idem = `k${++n}`) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": idem }, payload });
const withdraw = (amount: bigint, extra: object = {}, idem?: string) =>
  post(
    requester,
    "/v1/withdrawals",
    {
      customerId: "alice",
      chain: "local-a",
      asset: "native",
      to: DEST,
      amount: amount.toString(),
      ...extra,
    },
    idem,
  );
const balance = async (customer = "alice") => {
  const res = await t.call(t.keys["ledger:read"], {
    method: "GET",
    url: `/v1/customers/${customer}/balances`,
  });
  return res.json().balances.find((b: { assetId: string }) => b.assetId === NATIVE);
};
const txRequest = async (id: string) =>
  (
    await t.ctx.db.pool.query(
      "SELECT from_address, to_address, value, kind, ref_id, status FROM custody.tx_requests WHERE id = $1",
      [`withdrawal:${id}`],
    )
  ).rows[0];

describe("withdrawals", () => {
  it("below the threshold: held, approved by policy and handed to the signer at once", async () => {
    const res = await withdraw(ETH / 2n);
    expect(res.statusCode).toBe(201);
    const w = res.json();
    expect(w).toMatchObject({
      customerId: "alice",
      assetId: NATIVE,
      to: DEST,
      amount: (ETH / 2n).toString(),
      status: "signing",
      requiredApprovals: 0,
      requestedBy: "exchange-backend",
    });
    expect(await txRequest(w.id)).toEqual({
      from_address: hot,
      to_address: DEST.toLowerCase(),
      value: ETH / 2n,
      kind: "withdrawal",
      ref_id: w.id,
      status: "pending",
    });
    expect(await balance()).toMatchObject({
      posted: (20n * ETH).toString(),
      pending: (ETH / 2n).toString(),
      available: (20n * ETH - ETH / 2n).toString(),
    });
    const got = await t.call(t.keys["withdrawals:approve"], {
      method: "GET",
      url: `/v1/withdrawals/${w.id}`,
    });
    expect(got.json().history.map((h: { action: string }) => h.action)).toEqual([
      "withdrawal.requested",
      "withdrawal.approved",
      "withdrawal.signing",
    ]);
    const events = await t.ctx.db.pool.query(
      "SELECT type FROM api.webhook_events WHERE payload->>'withdrawal_id' = $1",
      [w.id],
    );
    expect(events.rows).toEqual([{ type: "withdrawal.approved" }]);
  });

  it("a repeated create with the same Idempotency-Key returns the same withdrawal, once", async () => {
    const a = await withdraw(ETH / 10n, {}, "same-key");
    const b = await withdraw(ETH / 10n, {}, "same-key");
    expect(b.statusCode).toBe(201);
    expect(b.json().id).toBe(a.json().id);
    const c = await withdraw(ETH / 5n, {}, "same-key");
    expect(c.statusCode).toBe(409);
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM api.withdrawals WHERE idempotency_key = 'same-key'",
    );
    expect(rows[0].n).toBe(1);
  });

  it("above the threshold: needs two distinct approvers, never the requester", async () => {
    const w = (await withdraw(2n * ETH)).json();
    expect(w).toMatchObject({ status: "pending_approval", requiredApprovals: 2 });
    expect(await txRequest(w.id)).toBeUndefined();
    const url = `/v1/withdrawals/${w.id}/approve`;

    const self = await post(
      approver2,
      `/v1/withdrawals/${(await withdrawAs(approver2)).id}/approve`,
    );
    expect(self.statusCode).toBe(403);
    expect(self.json()).toMatchObject({ code: "APPROVER_IS_REQUESTER" });

    const noScope = await post(requester, url);
    expect(noScope.statusCode).toBe(403);
    expect(noScope.json()).toMatchObject({ code: "AUTH_SCOPE_MISSING" });

    const first = await post(approver1, url, { reason: "known customer" });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ status: "pending_approval" });
    expect(first.json().approvals).toEqual([
      expect.objectContaining({
        approver: "ops-anna",
        decision: "approve",
        reason: "known customer",
      }),
    ]);
    // the same person with another key is still one approver
    const again = await post(approver1b, url);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: "ALREADY_DECIDED" });

    const second = await post(approver2, url);
    expect(second.json()).toMatchObject({ status: "signing" });
    expect((await txRequest(w.id))?.value).toBe(2n * ETH);

    const late = await post(approver1b, `/v1/withdrawals/${w.id}/reject`);
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({
      code: "WITHDRAWAL_INVALID_STATE",
      withdrawal_status: "signing",
    });
  });

  it("rows written before owners were normalised: the requester and an earlier approver are still recognised", async () => {
    // As a row of that time would hold them: the requester's and an approver's own spelling.
    const w = (await withdraw(2n * ETH)).json();
    await t.ctx.db.pool.query(
      "UPDATE api.withdrawals SET requested_by = 'Exchange-Backend' WHERE id = $1",
      [w.id],
    );
    await t.ctx.db.pool.query(
      `INSERT INTO api.withdrawal_approvals (withdrawal_id, approver, api_key_id, decision)
       SELECT $1, 'OPS-Anna', id, 'approve' FROM api.api_keys WHERE owner = 'ops-anna' LIMIT 1`,
      [w.id],
    );
    const url = `/v1/withdrawals/${w.id}/approve`;
    const requesterKey = await t.newKey("exchange-backend", ["withdrawals:approve"]);
    const self = await post(requesterKey, url);
    expect(self.statusCode).toBe(403);
    expect(self.json()).toMatchObject({ code: "APPROVER_IS_REQUESTER" });
    const again = await post(approver1, url);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: "ALREADY_DECIDED" });
    // One approver so far: the second distinct one hands it to the signer.
    expect(
      (
        await t.call(t.keys["withdrawals:write"], { method: "GET", url: `/v1/withdrawals/${w.id}` })
      ).json().status,
    ).toBe("pending_approval");
    const second = await post(approver2, url);
    expect(second.json()).toMatchObject({ status: "signing" });
    // And the requester, under the spelling of that time, may still cancel its own.
    const other = (await withdraw(2n * ETH)).json();
    await t.ctx.db.pool.query(
      "UPDATE api.withdrawals SET requested_by = 'Exchange-Backend' WHERE id = $1",
      [other.id],
    );
    const cancelled = await post(requester, `/v1/withdrawals/${other.id}/cancel`);
    expect(cancelled.json()).toMatchObject({ status: "cancelled" });
  });

  it("a rejected withdrawal voids its hold: the balance is restored and nothing is sent", async () => {
    const before = await balance();
    const w = (await withdraw(3n * ETH)).json();
    expect((await balance()).available).toBe((BigInt(before.available) - 3n * ETH).toString());
    const rejected = await post(approver1, `/v1/withdrawals/${w.id}/reject`, {
      reason: "suspicious",
    });
    expect(rejected.json()).toMatchObject({ status: "rejected", failureReason: "suspicious" });
    expect(await balance()).toEqual(before);
    expect(await txRequest(w.id)).toBeUndefined();
    const voided = await ledger.getTransfer(transferId(`withdrawal:${w.id}:void`));
    expect(voided?.type).toBe("void");
  });

  it("the requester can cancel while it awaits approval, not once it is with the signer", async () => {
    const before = await balance();
    const w = (await withdraw(2n * ETH)).json();
    const other = await post(approver2, `/v1/withdrawals/${w.id}/cancel`);
    expect(other.statusCode).toBe(403);
    expect(other.json()).toMatchObject({ code: "NOT_REQUESTER" });
    const cancelled = await post(requester, `/v1/withdrawals/${w.id}/cancel`);
    expect(cancelled.json()).toMatchObject({ status: "cancelled" });
    expect(await balance()).toEqual(before);

    const signing = (await withdraw(ETH / 100n)).json();
    const tooLate = await post(requester, `/v1/withdrawals/${signing.id}/cancel`);
    expect(tooLate.statusCode).toBe(409);
    expect(tooLate.json()).toMatchObject({ code: "WITHDRAWAL_INVALID_STATE" });
  });

  it("enforces the per-transaction and rolling 24h limits and the available balance", async () => {
    const above = await withdraw(11n * ETH);
    expect(above.statusCode).toBe(422);
    expect(above.json()).toMatchObject({ code: "AMOUNT_ABOVE_LIMIT", field: "body.amount" });
    // live so far: 0.5 + 0.1 + 2 + 0.01 (+ approver2's 1.5 for bob below is another customer)
    const rolling = await withdraw(10n * ETH);
    expect(rolling.statusCode).toBe(422);
    expect(rolling.json()).toMatchObject({ code: "ROLLING_LIMIT_EXCEEDED", field: "body.amount" });

    const broke = await post(requester, "/v1/withdrawals", {
      customerId: "carol",
      chain: "local-a",
      asset: "native",
      to: DEST,
      amount: "1",
    });
    expect(broke.statusCode).toBe(422);
    expect(broke.json()).toMatchObject({
      code: "INSUFFICIENT_AVAILABLE_BALANCE",
      field: "body.amount",
      available: "0",
    });
    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM api.withdrawals WHERE customer_id = 'carol'",
    );
    expect(rows[0].n).toBe(0);
  });

  it("concurrent requests cannot together pass the rolling limit or the balance", async () => {
    await ledger.transfer({
      id: transferId("test:fund:dave"),
      assetId: NATIVE,
      debit: "custody:deposits",
      credit: "user:dave",
      amount: 100n * ETH,
      kind: "manual",
    });
    await ledger.transfer({
      id: transferId("test:fund:erin"),
      assetId: NATIVE,
      debit: "custody:deposits",
      credit: "user:erin",
      amount: 7n * ETH,
      kind: "manual",
    });
    const burst = (customerId: string) =>
      Promise.all(
        Array.from({ length: 6 }, () =>
          post(requester, "/v1/withdrawals", {
            customerId,
            chain: "local-a",
            asset: "native",
            to: DEST,
            amount: (3n * ETH).toString(),
          }),
        ),
      );
    // dave: 6 × 3 ETH against a 12 ETH rolling limit → exactly 4 pass
    const dave = await burst("dave");
    expect(dave.filter((r) => r.statusCode === 201)).toHaveLength(4);
    expect(new Set(dave.filter((r) => r.statusCode !== 201).map((r) => r.json().code))).toEqual(
      new Set(["ROLLING_LIMIT_EXCEEDED"]),
    );
    // erin: 6 × 3 ETH against a 7 ETH balance → exactly 2 holds
    const erin = await burst("erin");
    expect(erin.filter((r) => r.statusCode === 201)).toHaveLength(2);
    expect(new Set(erin.filter((r) => r.statusCode !== 201).map((r) => r.json().code))).toEqual(
      new Set(["INSUFFICIENT_AVAILABLE_BALANCE"]),
    );
    expect(await balance("erin")).toMatchObject({
      pending: (6n * ETH).toString(),
      available: ETH.toString(),
    });
  });

  it("refuses a custody address as destination", async () => {
    const alloc = await post(t.keys["deposits:write"], "/v1/customers/alice/deposit-addresses", {
      chain: "local-a",
    });
    const own = await withdraw(1n, { to: alloc.json().address });
    expect(own.statusCode).toBe(422);
    expect(own.json()).toMatchObject({ code: "DESTINATION_IS_CUSTODY", field: "body.to" });
  });

  it("lists the customer's ledger transfers, newest first, with holds and voids", async () => {
    const res = await t.call(t.keys["ledger:read"], {
      method: "GET",
      url: `/v1/customers/alice/transfers?asset=${NATIVE}&limit=100`,
    });
    expect(res.statusCode).toBe(200);
    const transfers = res.json().transfers as { type: string; direction: string; amount: string }[];
    expect(transfers.at(-1)).toMatchObject({
      type: "single",
      direction: "credit",
      amount: (20n * ETH).toString(),
    });
    expect(
      transfers.filter((x) => x.type === "pending").every((x) => x.direction === "debit"),
    ).toBe(true);
    expect(transfers.some((x) => x.type === "void")).toBe(true);
    const page = await t.call(t.keys["ledger:read"], {
      method: "GET",
      url: `/v1/customers/alice/transfers?asset=${NATIVE}&limit=2`,
    });
    expect(page.json().transfers).toHaveLength(2);
    const next = await t.call(t.keys["ledger:read"], {
      method: "GET",
      url: `/v1/customers/alice/transfers?asset=${NATIVE}&limit=2&cursor=${page.json().nextCursor}`,
    });
    expect(next.json().transfers[0].seq).not.toBe(page.json().transfers[0].seq);
    const unknown = await t.call(t.keys["ledger:read"], {
      method: "GET",
      url: "/v1/customers/alice/transfers?asset=1:0x0000000000000000000000000000000000000000",
    });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ code: "UNKNOWN_CHAIN", field: "querystring.asset" });
  });

  it("lists withdrawals by customer and status", async () => {
    const res = await t.call(approver1, {
      method: "GET",
      url: "/v1/withdrawals?customer_id=alice&status=rejected",
    });
    expect(res.json().withdrawals).toHaveLength(1);
    expect(res.json().withdrawals[0]).toMatchObject({ status: "rejected", customerId: "alice" });
    const all = (
      await t.call(approver1, {
        method: "GET",
        url: "/v1/withdrawals?customer_id=alice&limit=1000",
      })
    ).json().withdrawals as { id: string }[];
    const first = await t.call(approver1, {
      method: "GET",
      url: "/v1/withdrawals?customer_id=alice&limit=2",
    });
    const second = await t.call(approver1, {
      method: "GET",
      url: `/v1/withdrawals?customer_id=alice&limit=2&after=${first.json().withdrawals[1].id}`,
    });
    expect(
      [...first.json().withdrawals, ...second.json().withdrawals].map((w: { id: string }) => w.id),
    ).toEqual(all.slice(0, 4).map((w) => w.id));
  });
});

/** A withdrawal requested by ops-ben for bob (funded) that needs approval. */
async function withdrawAs(key: string) {
  await ledger.transfer({
    id: transferId("test:fund:bob"),
    assetId: NATIVE,
    debit: "custody:deposits",
    credit: "user:bob",
    amount: 5n * ETH,
    kind: "manual",
  });
  const res = await post(key, "/v1/withdrawals", {
    customerId: "bob",
    chain: "local-a",
    asset: "native",
    to: DEST,
    amount: ((3n * ETH) / 2n).toString(),
  });
  return res.json();
}
