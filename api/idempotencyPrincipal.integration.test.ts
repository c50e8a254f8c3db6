/**
 * An Idempotency-Key is the calling principal's (the keys' owner: the service or person the keys
 * belong to), not one API key's: a service that rotates its key (old and new both valid for a
 * while) and retries a request that timed out under the new key gets the first answer, never a
 * second withdrawal paid out; with another body it is IDEMPOTENCY_KEY_REUSED. Another owner's
 * same key is its own. Real Postgres, anvil and ledger, through /v1.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeApiKey } from "./apiKeys.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";
import { answerLost } from "./testing/lostAnswer.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

let t: WithdrawalApiTestContext;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    fund: { customers: ["rota", "rotb", "rotc"], amount: 10n * ETH },
  });
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const body = (customerId: string, amount: bigint) => ({
  customerId,
  chain: "local-a",
  asset: "native",
  to: DEST,
  amount: amount.toString(),
});
const post = (key: string, idem: string, payload: object) =>
  t.call(key, {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": idem },
    payload,
  });
const withdrawalsUnder = async (idem: string) =>
  (
    await t.ctx.db.pool.query<{ id: string }>(
      "SELECT id::text FROM api.withdrawals WHERE idempotency_key = $1",
      [idem],
    )
  ).rows.map((r) => r.id);
const held = async (customer: string) =>
  (await t.ledger.balance({ assetId: NATIVE, name: `user:${customer}` })).available;

/** The service's key before and after a rotation: one owner, both valid. */
async function rotatedKeys(owner: string) {
  const old = await t.newKey(owner, ["withdrawals:write"]);
  const rotated = await t.newKey(owner, ["withdrawals:write"]);
  return { old, rotated };
}

describe("a withdrawal retried under the rotated key of the same service", () => {
  it("gets the first answer (replayed), one withdrawal, held once", async () => {
    // old code: expected undefined to be 'true' (no Idempotent-Replayed: the retry was a new
    // request, 201, a second withdrawal with a second hold: paid twice)
    const { old, rotated } = await rotatedKeys("payments-svc-a");
    const idem = "rotation-replay";
    const before = await held("rota");
    const first = await post(old, idem, body("rota", ETH));
    expect(first.statusCode, first.body).toBe(201);
    const retry = await post(rotated, idem, body("rota", ETH));
    expect(retry.statusCode, retry.body).toBe(first.statusCode);
    expect(retry.headers["idempotent-replayed"]).toBe("true");
    expect(retry.json().id).toBe(first.json().id);
    expect(await withdrawalsUnder(idem)).toEqual([first.json().id]);
    expect(before - (await held("rota"))).toBe(ETH);
  });

  it("whose first answer was lost (a 5xx after the commit), with the old key revoked meanwhile: the same withdrawal", async () => {
    // old code: expected '<second withdrawal's id>' to be '<first's id>' (created and held again)
    const { old, rotated } = await rotatedKeys("payments-svc-b");
    const idem = "rotation-lost-answer";
    const before = await held("rotb");
    const first = await post(old, idem, body("rotb", ETH));
    expect(first.statusCode, first.body).toBe(201);
    await answerLost(t.ctx.db.pool, idem);
    // The rotation completes: the old key is revoked before the retry.
    const oldId = /^cn_([0-9a-f]{16})_/.exec(old)![1]!;
    expect(await revokeApiKey(t.ctx.db.pool, oldId)).toBe(true);
    const retry = await post(rotated, idem, body("rotb", ETH));
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.json().id).toBe(first.json().id);
    expect(await withdrawalsUnder(idem)).toEqual([first.json().id]);
    expect(before - (await held("rotb"))).toBe(ETH);
  });

  it("with another body is IDEMPOTENCY_KEY_REUSED and changes nothing, stored answer or not", async () => {
    // old code: expected 201 to be 409 (a second withdrawal, of 2 ETH, created under the key)
    const { old, rotated } = await rotatedKeys("payments-svc-c");
    const idem = "rotation-other-body";
    const first = await post(old, idem, body("rotc", ETH));
    expect(first.statusCode, first.body).toBe(201);
    const before = await held("rotc");
    const other = await post(rotated, idem, body("rotc", 2n * ETH));
    expect(other.statusCode, other.body).toBe(409);
    expect(other.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    // And when only the withdrawal's own record is left to tell: the stored record gone, as a 5xx
    // after the commit left it on a revision before api/idempotency.ts kept a 5xx's key.
    await t.ctx.db.pool.query("DELETE FROM api.idempotency_keys WHERE idempotency_key = $1", [
      idem,
    ]);
    const afterLost = await post(rotated, idem, body("rotc", 2n * ETH));
    expect(afterLost.statusCode, afterLost.body).toBe(409);
    expect(afterLost.json().code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await withdrawalsUnder(idem)).toEqual([first.json().id]);
    expect(await held("rotc")).toBe(before);
  });

  it("another owner's same Idempotency-Key is its own request", async () => {
    const mine = await t.newKey("payments-svc-d", ["withdrawals:write"]);
    const theirs = await t.newKey("payments-svc-e", ["withdrawals:write"]);
    const idem = "two-services-one-key";
    const a = await post(mine, idem, body("rota", 1000n));
    const b = await post(theirs, idem, body("rota", 2000n));
    expect(a.statusCode, a.body).toBe(201);
    expect(b.statusCode, b.body).toBe(201);
    expect(b.headers["idempotent-replayed"]).toBeUndefined();
    expect(b.json().id).not.toBe(a.json().id);
    expect((await withdrawalsUnder(idem)).sort()).toEqual([a.json().id, b.json().id].sort());
  });
});
