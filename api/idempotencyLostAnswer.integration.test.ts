/**
 * A request whose effect committed and whose answer was then a 5xx (here: its connection killed
 * while it read the withdrawal back for the answer) keeps its Idempotency-Key: the key is that
 * request's whatever the route, so a create, a deposit address or the fail with another reason
 * under it is IDEMPOTENCY_KEY_REUSED and changes nothing, and the same request sent again runs
 * once more, answered by its route's own ids (an operator's fail: the withdrawal as it is, audited
 * once; a deposit address: the address, allocated once). And an operator's fail refused (409: its
 * key freed, nothing changed) only before the signer's request is failed, even when the outcome
 * pass moves the withdrawal in between. Real Postgres, anvil and ledger, through /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../ops/testing/wait.js";
import { setTxRequestState } from "../signer/testing/txRequestState.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";
import {
  answeredWith5xxAfterCommit,
  answerLost,
  withdrawalInReview,
} from "./testing/lostAnswer.js";
import { createWithdrawals } from "./withdrawals/service.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;
let admin: string;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({ fund: { customers: ["gus"], amount: 10n * ETH } });
  admin = await t.newKey("ops-dana", ["admin"]);
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const count = async (sql: string, params: unknown[]) =>
  (await t.ctx.db.pool.query<{ n: number }>(sql, params)).rows[0]!.n;

/** A withdrawal of gus the signer's tracker gave up on (its nonce 99 unused): needs_review. */
const inReview = () => withdrawalInReview(t, "gus", ETH, 99);

describe("a key whose request answered a 5xx after its commit", () => {
  it("an operator's fail: another route under its key is IDEMPOTENCY_KEY_REUSED; its retry gets the withdrawal, audited once", async () => {
    const id = await inReview();
    const idem = "fail-then-5xx";
    const fail = () =>
      t.call(admin, {
        method: "POST",
        url: `/v1/withdrawals/${id}/fail`,
        headers: { "idempotency-key": idem },
        payload: { reason: "nonce 99 checked on chain" },
      });
    // The fail never touches api.withdrawal_approvals; its answer reads it after the commit.
    const lost = await answeredWith5xxAfterCommit(t.ctx.db.pool, "api.withdrawal_approvals", fail);
    expect(lost.statusCode, lost.body).toBe(503);
    expect(lost.json().code).toBe("DATABASE_UNAVAILABLE");
    // The fail committed: nonce 99 is unused, so the signer cancels it and the withdrawal waits.
    const seen = await t.call(admin, { method: "GET", url: `/v1/withdrawals/${id}` });
    expect(seen.json()).toMatchObject({ status: "broadcast" });
    const audited = () =>
      count(
        `SELECT count(*)::int AS n FROM audit.audit_log
          WHERE entity_type = 'withdrawal' AND entity_id = $1 AND actor = 'ops-dana'`,
        [id],
      );
    const auditedFirst = await audited();
    expect(auditedFirst).toBeGreaterThan(0);

    const before = await t.ledger.balance({ assetId: NATIVE, name: "user:gus" });
    for (const [url, payload] of [
      [
        "/v1/withdrawals",
        { customerId: "gus", chain: "local-a", asset: "native", to: DEST, amount: "1000" },
      ],
      ["/v1/customers/fresh-customer/deposit-addresses", { chain: "local-a" }],
      [`/v1/withdrawals/${id}/fail`, { reason: "another reason" }],
    ] as const) {
      const res = await t.call(admin, {
        method: "POST",
        url,
        headers: { "idempotency-key": idem },
        payload,
      });
      expect(res.statusCode, `${url}: ${res.body}`).toBe(409);
      expect(res.headers["content-type"]).toContain("application/problem+json");
      expect(res.json()).toMatchObject({ code: "IDEMPOTENCY_KEY_REUSED", idempotency_key: idem });
    }
    expect(
      await count("SELECT count(*)::int AS n FROM api.withdrawals WHERE idempotency_key = $1", [
        idem,
      ]),
    ).toBe(0);
    const addresses = await t.call(admin, {
      method: "GET",
      url: "/v1/customers/fresh-customer/deposit-addresses",
    });
    expect(addresses.json().addresses).toEqual([]);
    expect(await t.ledger.balance({ assetId: NATIVE, name: "user:gus" })).toEqual(before);

    // The same request again: run once more, answered with the withdrawal as the fail left it.
    const retry = await fail();
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toMatchObject({ id, status: "broadcast" });
    expect(await audited()).toBe(auditedFirst);
    const replay = await fail();
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.json()).toEqual(retry.json());
  });

  it("a deposit address, its answer left unstored (as a 5xx now leaves it): the retry gets the address, allocated once; a create under its key is refused", async () => {
    const idem = "address-then-lost";
    const allocate = () =>
      t.call(admin, {
        method: "POST",
        url: "/v1/customers/hal/deposit-addresses",
        headers: { "idempotency-key": idem },
        payload: { chain: "local-a" },
      });
    const first = await allocate();
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().created).toBe(true);
    await answerLost(t.ctx.db.pool, idem);
    const create = await t.call(admin, {
      method: "POST",
      url: "/v1/withdrawals",
      headers: { "idempotency-key": idem },
      payload: { customerId: "gus", chain: "local-a", asset: "native", to: DEST, amount: "1000" },
    });
    expect(create.statusCode, create.body).toBe(409);
    expect(create.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    const retry = await allocate();
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json()).toMatchObject({ address: first.json().address, created: false });
    expect(
      await count(
        `SELECT count(*)::int AS n FROM audit.audit_log
          WHERE action = 'deposit_address.allocated' AND entity_id = 'hal'`,
        [],
      ),
    ).toBe(1);
  });
});

describe("an operator's fail racing the outcome pass", () => {
  it("refused (409) only before the signer's request is failed: the refusal changes nothing", async () => {
    // Never signed (no nonce): the chain check lets the signer fail it now.
    const id = await withdrawalInReview(t, "gus", ETH, null);
    const pool = t.ctx.db.pool;
    // The signer's tracker is at it again: its request is receipt_unknown, not yet applied.
    await setTxRequestState(pool, `withdrawal:${id}`, {
      status: "receipt_unknown",
      txHash: `0x${"e5".repeat(32)}`,
    });
    const waiting = async (n: number) =>
      (
        await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query LIKE '%FROM api.withdrawals%'`,
        )
      ).rows[0]!.n >= n;
    const locker = await pool.connect();
    let pass: Promise<number> | undefined;
    let fail: Promise<Awaited<ReturnType<typeof t.call>>> | undefined;
    try {
      await locker.query("BEGIN");
      await locker.query("SELECT 1 FROM api.withdrawals WHERE id = $1 FOR UPDATE", [id]);
      // The outcome pass reads receipt_unknown, then waits for the withdrawal's row...
      pass = createWithdrawals({ common: t.ctx.common, pool, ledger: t.ledger }).syncOutcomes();
      await waitFor("the outcome pass waiting for the withdrawal", () => waiting(1));
      // ...and the operator's fail queues behind it.
      fail = (async () =>
        await t.call(admin, {
          method: "POST",
          url: `/v1/withdrawals/${id}/fail`,
          headers: { "idempotency-key": "fail-racing-pass" },
          payload: { reason: "never signed" },
        }))();
      await waitFor("the fail waiting for the withdrawal", () => waiting(2));
      await locker.query("ROLLBACK");
    } finally {
      locker.release();
    }
    await pass;
    const res = await fail!;
    // The pass moved it first (receipt_unknown): the fail is refused, and the refusal (its key
    // freed: nothing changed) must leave the signer's request as it was.
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json().code).toBe("WITHDRAWAL_INVALID_STATE");
    const signer = await pool.query<{ status: string; error_code: string | null }>(
      "SELECT status, error_code FROM custody.tx_requests WHERE id = $1",
      [`withdrawal:${id}`],
    );
    expect(signer.rows[0]).toEqual({ status: "receipt_unknown", error_code: null });
    expect(
      await count(
        `SELECT count(*)::int AS n FROM audit.audit_log WHERE actor = 'ops-dana' AND entity_id LIKE $1`,
        [`%${id}%`],
      ),
    ).toBe(0);
  });
});
