/**
 * An Idempotency-Key held by a process that died mid-request (kill -9: no response stored, no
 * renewal) is free again within its lease (seconds, not minutes), the retry creates the withdrawal
 * once, and a further retry replays that answer. A lease a 5xx lapsed is not renewed again by a
 * renewal that read the keys in flight before it.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson, LEASE_S, renewLeases } from "./idempotency.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";

const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const body = { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: "1000" };

let t: WithdrawalApiTestContext;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    fund: { customers: ["alice"], amount: 10n ** 18n },
  });
});
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string) =>
  t.call(t.keys["withdrawals:write"], {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": key },
    payload: body,
  });

/**
 * `key` taken by a POST /v1/withdrawals of `body` under the withdrawals:write key, unanswered, its
 * lease ending `leaseS` seconds from now (negative: lapsed); returns the key's holder (its API key).
 */
async function taken(key: string, leaseS: number): Promise<string> {
  const holder = t.keyRows["withdrawals:write"].id;
  const hash = createHash("sha256")
    .update(canonicalJson({ method: "POST", route: "/v1/withdrawals", params: {}, body }))
    .digest("hex");
  await t.ctx.db.pool.query(
    `INSERT INTO api.idempotency_keys
       (api_key_id, idempotency_key, method, route, request_hash, lease_until)
     VALUES ($1, $2, 'POST', 'POST /v1/withdrawals', $3, now() + make_interval(secs => $4))`,
    [holder, key, hash, leaseS],
  );
  return holder;
}

describe("idempotency leases", () => {
  it("a key held by a dead process is released within its lease and never creates a duplicate", async () => {
    const key = "lease-dead-1";
    // What a process killed mid-request leaves: the key taken, no answer, a lease it renewed
    // until it died (2 s left).
    await taken(key, 2);
    const busy = await post(key);
    expect(busy.statusCode).toBe(409);
    expect(busy.json()).toMatchObject({ code: "IDEMPOTENCY_IN_PROGRESS" });

    const start = Date.now();
    let res = busy;
    while (res.statusCode !== 201) {
      expect(res.json().code).toBe("IDEMPOTENCY_IN_PROGRESS");
      if (Date.now() - start > (LEASE_S + 10) * 1000)
        throw new Error(`key still held after ${Date.now() - start} ms`);
      await new Promise((r) => setTimeout(r, 200));
      res = await post(key);
    }
    expect(Date.now() - start).toBeLessThan((LEASE_S + 5) * 1000);
    const replay = await post(key);
    expect(replay.statusCode).toBe(201);
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.json().id).toBe(res.json().id);
    const { rows } = await t.ctx.db.pool.query(
      `SELECT count(*)::int AS n FROM api.withdrawals WHERE idempotency_key = $1`,
      [key],
    );
    expect(rows[0].n).toBe(1);
  });

  it("a renewal reaching Postgres after a 5xx lapsed the key leaves it lapsed: the same request retried at once runs", async () => {
    const key = "lease-lapsed-1";
    // What a 5xx after the commit leaves (api/idempotency.ts onSend): the key bound to its
    // request, unanswered, its lease lapsed a second ago.
    const holder = await taken(key, -1);
    // The process's renewal tick read the key while the request was in flight, and its UPDATE
    // reaches Postgres only now, after the lapse (a loaded pool): it must not revive the lease.
    await renewLeases(t.ctx.db.pool, [[holder, key]]);
    const { rows } = await t.ctx.db.pool.query(
      `SELECT lease_until < now() AS lapsed FROM api.idempotency_keys WHERE idempotency_key = $1`,
      [key],
    );
    expect(rows).toEqual([{ lapsed: true }]);
    const retry = await post(key);
    expect(retry.statusCode, retry.body).toBe(201);
  });

  it("a renewal moves a live lease ahead", async () => {
    const key = "lease-live-renewed";
    const holder = await taken(key, 1);
    await renewLeases(t.ctx.db.pool, [[holder, key]]);
    const { rows } = await t.ctx.db.pool.query(
      `SELECT lease_until > now() + make_interval(secs => $2 - 1) AS renewed
         FROM api.idempotency_keys WHERE idempotency_key = $1`,
      [key, LEASE_S],
    );
    expect(rows).toEqual([{ renewed: true }]);
  });

  it("a live request's key is leased, and the lease is cleared with its stored answer kept", async () => {
    const res = await post("lease-live-1");
    expect(res.statusCode).toBe(201);
    const { rows } = await t.ctx.db.pool.query(
      `SELECT status_code, lease_until > created_at AS leased FROM api.idempotency_keys
        WHERE idempotency_key = 'lease-live-1'`,
    );
    expect(rows).toEqual([{ status_code: 201, leased: true }]);
  });
});
