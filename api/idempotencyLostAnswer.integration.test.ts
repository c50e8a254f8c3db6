/**
 * A request whose effect committed and whose answer was then a 5xx (here: its connection killed
 * while it read the withdrawal back for the answer) keeps its Idempotency-Key: the key is that
 * request's whatever the route, so a create, a deposit address or the fail with another reason
 * under it is IDEMPOTENCY_KEY_REUSED and changes nothing, and the same request sent again runs
 * once more, answered by its route's own ids (an operator's fail: the withdrawal as it is, audited
 * once; a deposit address: the address, allocated once). Real Postgres, anvil and ledger, through
 * /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setTxRequestState } from "../signer/testing/txRequestState.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";
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
async function inReview(): Promise<string> {
  const { id } = await t.withdrawNative(t.keys["withdrawals:write"], "gus", ETH);
  const withdrawals = createWithdrawals({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    ledger: t.ledger,
  });
  for (const status of ["broadcast", "receipt_unknown", "needs_review"]) {
    await setTxRequestState(t.ctx.db.pool, `withdrawal:${id}`, {
      status,
      txHash: `0x${"e5".repeat(32)}`,
      nonce: 99,
      ...(status === "needs_review" ? { reviewReason: "no receipt on any endpoint" } : {}),
    });
    await withdrawals.syncOutcomes();
  }
  return id;
}

/**
 * `send` with its answer lost after the commit: while it runs, api.withdrawal_approvals is locked
 * (the fail never touches it); the read of the approvals for the answer waits, and its backend is
 * terminated (a connection lost on the way back), so the request answers 503.
 */
async function answeredWith5xxAfterCommit<T>(send: () => Promise<T>): Promise<T> {
  const locker = await t.ctx.db.pool.connect();
  try {
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE api.withdrawal_approvals IN ACCESS EXCLUSIVE MODE");
    // inject() sends when awaited: start it now, lock held.
    const answer = (async () => await send())();
    const start = Date.now();
    // Watched from another session: the locker's transaction sees one snapshot of the activity.
    for (;;) {
      const { rows } = await t.ctx.db.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'
            AND query LIKE '%FROM api.withdrawal_approvals%'`,
      );
      if (rows[0]) {
        await t.ctx.db.pool.query("SELECT pg_terminate_backend($1)", [rows[0].pid]);
        break;
      }
      if (Date.now() - start > 20_000) throw new Error("the answer never read the approvals");
      await new Promise((r) => setTimeout(r, 20));
    }
    await locker.query("ROLLBACK");
    return await answer;
  } finally {
    locker.release();
  }
}

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
    const lost = await answeredWith5xxAfterCommit(fail);
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
    const { rowCount } = await t.ctx.db.pool.query(
      `UPDATE api.idempotency_keys
          SET status_code = NULL, response_body = NULL, content_type = NULL, completed_at = NULL,
              lease_until = now() - interval '1 second'
        WHERE idempotency_key = $1`,
      [idem],
    );
    expect(rowCount).toBe(1);
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
