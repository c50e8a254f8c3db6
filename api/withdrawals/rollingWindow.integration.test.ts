/**
 * The rolling 24 h limit counts a withdrawal until its money has been out for 24 h, not for 24 h
 * after it was requested (and for as long as it is not confirmed): one that waited for approvals longer than a day is released now, so it
 * counts with the withdrawals requested beside it. Otherwise a day's limit is sent twice within
 * minutes (the old request approved with a new one). Real Postgres, ledger and signer intake; the
 * passing day is the row's timestamps moved back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTwoApproverTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";

const ETH = 10n ** 18n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let requester: string;
let anna: string;
let ben: string;
let n = 0;

beforeAll(async () => {
  ({ t, requester, anna, ben } = await createTwoApproverTestContext({
    policy: { perTransaction: 10n * ETH, rolling24h: 12n * ETH, approvalThreshold: ETH },
    fund: { customers: ["alice", "bob"], amount: 50n * ETH },
  }));
});
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object = {}) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": `rw-${++n}` }, payload });
const withdraw = (customerId: string, amount: bigint) =>
  post(requester, "/v1/withdrawals", {
    customerId,
    chain: "local-a",
    asset: "native",
    to: DEST,
    amount: amount.toString(),
  });
const approve = async (id: string) => {
  await post(anna, `/v1/withdrawals/${id}/approve`);
  return post(ben, `/v1/withdrawals/${id}/approve`);
};
/** As if the withdrawal had been requested, and last changed, `hours` ago. */
const age = (id: string, hours: number) =>
  t.ctx.db.pool.query(
    `UPDATE api.withdrawals SET created_at = created_at - make_interval(hours => $2),
       updated_at = updated_at - make_interval(hours => $2) WHERE id = $1`,
    [id, hours],
  );
/** What went to the signer for the customer within the last hour (wei). */
const sentLastHour = async (customerId: string) =>
  BigInt(
    (
      await t.ctx.db.pool.query(
        `SELECT COALESCE(sum(r.value), 0)::text AS v FROM custody.tx_requests r
           JOIN api.withdrawals w ON r.id = 'withdrawal:' || w.id
          WHERE w.customer_id = $1 AND r.created_at > now() - interval '1 hour'`,
        [customerId],
      )
    ).rows[0].v,
  );

describe("the rolling 24 h limit", () => {
  it("counts a withdrawal requested over a day ago and still awaiting approval", async () => {
    const old = (await withdraw("alice", 10n * ETH)).json();
    expect(old.status).toBe("pending_approval");
    await age(old.id, 25);

    const fresh = await withdraw("alice", 10n * ETH);
    if (fresh.statusCode === 201) {
      await approve(old.id);
      await approve(fresh.json().id);
    }
    expect(
      await sentLastHour("alice"),
      "sent within the hour against a 12 ETH day",
    ).toBeLessThanOrEqual(12n * ETH);
    expect(fresh.statusCode).toBe(422);
    expect(fresh.json()).toMatchObject({
      code: "ROLLING_LIMIT_EXCEEDED",
      used: (10n * ETH).toString(),
    });
  });

  it("counts one released to the signer within the day, whenever it was requested", async () => {
    const old = (await withdraw("bob", 10n * ETH)).json();
    await age(old.id, 30);
    expect((await approve(old.id)).json().status).toBe("signing");

    const fresh = await withdraw("bob", 10n * ETH);
    expect(fresh.statusCode).toBe(422);
    expect(fresh.json()).toMatchObject({ code: "ROLLING_LIMIT_EXCEEDED" });

    // Until its money has surely left (being signed or sent), it counts whenever it last changed.
    await age(old.id, 25);
    expect((await withdraw("bob", 10n * ETH)).statusCode).toBe(422);
    // Confirmed over a day ago, it no longer counts.
    await t.ctx.db.pool.query("UPDATE api.withdrawals SET status = 'confirmed' WHERE id = $1", [
      old.id,
    ]);
    await age(old.id, 25);
    expect((await withdraw("bob", 10n * ETH)).statusCode).toBe(201);
  });
});
