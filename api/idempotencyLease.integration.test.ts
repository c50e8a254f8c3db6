/**
 * An Idempotency-Key held by a process that died mid-request (kill -9: no response stored, no
 * renewal) is free again within its lease (seconds, not minutes), the retry creates the withdrawal
 * once, and a further retry replays that answer.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson, LEASE_S } from "./idempotency.js";
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

describe("idempotency after a crash", () => {
  it("a key held by a dead process is released within its lease and never creates a duplicate", async () => {
    const key = "lease-dead-1";
    const hash = createHash("sha256")
      .update(canonicalJson({ method: "POST", route: "/v1/withdrawals", params: {}, body }))
      .digest("hex");
    // What a process killed mid-request leaves: the key taken, no answer, a lease it renewed
    // until it died (2 s left).
    await t.ctx.db.pool.query(
      `INSERT INTO api.idempotency_keys
         (api_key_id, idempotency_key, method, route, request_hash, lease_until)
       VALUES ($1, $2, 'POST', 'POST /v1/withdrawals', $3, now() + interval '2 seconds')`,
      [t.keyRows["withdrawals:write"].id, key, hash],
    );
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
