/**
 * Policies fail closed and approvers are people: through /v1 on real Postgres and Redis, a listed
 * asset with no explicit withdrawal policy is refused (422 WITHDRAWAL_POLICY_MISSING, no row, no
 * hold) and the api role warns about it at start; approver identities are normalised (case, spaces,
 * NFKC), so `anna`, ` ANNA ` and fullwidth `ａｎｎａ` count once, and keys that share nothing but
 * that another key of the person joins are that one person too; a customer id that is an Object
 * member name has no allowlist of its own and gets a clean answer, never a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealth } from "../../foundation/health.js";
import { type Ledger, transferId } from "../../ledger/index.js";
import { capturedLogger } from "../../ops/testing/logs.js";
import { createApiKey, type Scope } from "../apiKeys.js";
import { buildApp } from "../app.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { createV1Plugin } from "../v1.js";

const ETH = 10n ** 18n;
const TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

let t: WithdrawalApiTestContext;
let ledger: Ledger;
let requester: string;
let n = 0;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    chain: {
      chainId: 31337,
      key: "local-a",
      config: { tokens: [{ address: TOKEN, symbol: "TKN", decimals: 18 }] },
    },
    // the native asset has a policy, the token has none
    policy: {
      perTransaction: 10n * ETH,
      rolling24h: 20n * ETH,
      approvalThreshold: ETH,
      customerAllowlists: { alice: [DEST, OTHER] },
      requiredApprovals: 2,
    },
    fund: {
      customers: ["alice", "constructor", "__proto__", "toString", "dave"],
      amount: 5n * ETH,
    },
  });
  ledger = t.ledger;
  await ledger.transfer({
    id: transferId("test:fund:alice:token"),
    assetId: `31337:${TOKEN.toLowerCase()}`,
    debit: "custody:deposits",
    credit: "user:alice",
    amount: 5n * ETH,
    kind: "manual",
  });
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
});
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object = {}) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": `fc-${++n}` }, payload });
const withdraw = (payload: object) =>
  post(requester, "/v1/withdrawals", {
    customerId: "alice",
    chain: "local-a",
    asset: "native",
    to: DEST,
    amount: "1000",
    ...payload,
  });
const count = async (table: string) =>
  Number((await t.ctx.db.pool.query(`SELECT count(*) FROM ${table}`)).rows[0].count);

describe("withdrawal policy fails closed", () => {
  it("refuses an asset without an explicit policy with 422 WITHDRAWAL_POLICY_MISSING, changing nothing", async () => {
    const before = [await count("api.withdrawals"), await count("ledger.transfers")];
    const res = await withdraw({ asset: "TKN", amount: "1" });
    expect(res.statusCode).toBe(422);
    expect(res.headers["content-type"]).toContain("application/problem+json");
    expect(res.json()).toMatchObject({
      code: "WITHDRAWAL_POLICY_MISSING",
      asset_id: `31337:${TOKEN.toLowerCase()}`,
      errors: [{ field: "body.asset" }],
    });
    expect([await count("api.withdrawals"), await count("ledger.transfers")]).toEqual(before);
    // the asset with a policy still works
    expect((await withdraw({ amount: "1000" })).statusCode).toBe(201);
  });

  it("warns at start-up naming each asset without a policy", async () => {
    const { logger, lines } = capturedLogger("warn");
    const common = { ...t.ctx.common, logger };
    const app = await buildApp({
      common,
      health: createHealth(),
      plugins: [createV1Plugin({ common, pool: t.ctx.db.pool, redis: t.ctx.redis.redis })],
    });
    await app.ready();
    await app.close();
    const warned = lines.filter((l) => l.field === "policies.withdrawals.limits");
    expect(warned.map((l) => l.asset_id)).toEqual([`31337:${TOKEN.toLowerCase()}`]);
  });
});

describe("approver identity", () => {
  it("counts anna, ' ANNA ' and fullwidth ａｎｎａ as one approver; a second person completes it", async () => {
    const anna = await t.newKey("anna", ["withdrawals:approve"]);
    const annaUpper = await t.newKey(" ANNA ", ["withdrawals:approve"]);
    const annaWide = await t.newKey("ａｎｎａ", ["withdrawals:approve"]);
    const ben = await t.newKey("Ben", ["withdrawals:approve"]);
    const created = await withdraw({ amount: (2n * ETH).toString() });
    expect(created.statusCode).toBe(201);
    const w = created.json();
    expect(w).toMatchObject({ status: "pending_approval", requiredApprovals: 2 });
    const url = `/v1/withdrawals/${w.id}/approve`;
    expect((await post(anna, url)).json()).toMatchObject({ status: "pending_approval" });
    for (const same of [annaUpper, annaWide]) {
      const again = await post(same, url);
      expect(again.statusCode).toBe(409);
      expect(again.json()).toMatchObject({ code: "ALREADY_DECIDED", approver: "anna" });
    }
    const { rows } = await t.ctx.db.pool.query(
      `SELECT approver FROM api.withdrawal_approvals WHERE withdrawal_id = $1`,
      [w.id],
    );
    expect(rows).toEqual([{ approver: "anna" }]);
    expect((await post(ben, url)).json()).toMatchObject({ status: "signing" });
  });

  it("keys sharing nothing that a third key joins are one person: one approval, and not the requester's", async () => {
    const keyOf = async (owner: string, email: string, scopes: Scope[]) =>
      (await createApiKey(t.ctx.db.pool, { owner, email, scopes })).plaintext;
    // Bob's old key and his new one share the owner; `robert` carries his new email: one person.
    const bobOld = await keyOf("bob", "bob@old.example", ["withdrawals:approve"]);
    await keyOf("bob", "bob@new.example", ["withdrawals:approve"]);
    const robert = await keyOf("robert", "bob@new.example", ["withdrawals:approve"]);
    const carl = await keyOf("carl", "carl@example.com", ["withdrawals:approve"]);
    const created = await withdraw({ customerId: "dave", amount: (2n * ETH).toString() });
    const w = created.json();
    const url = `/v1/withdrawals/${w.id}/approve`;
    expect((await post(bobOld, url)).json()).toMatchObject({ status: "pending_approval" });
    const twice = await post(robert, url);
    expect(twice.statusCode, twice.body).toBe(409);
    expect(twice.json()).toMatchObject({ code: "ALREADY_DECIDED", approver: "robert" });
    const { rows } = await t.ctx.db.pool.query(
      "SELECT approver FROM api.withdrawal_approvals WHERE withdrawal_id = $1",
      [w.id],
    );
    expect(rows).toEqual([{ approver: "bob" }]);
    expect((await post(carl, url)).json()).toMatchObject({ status: "signing" });

    // Bob requests under his old key: his `robert` key may not decide on it either.
    const bobBackend = await keyOf("bob", "bob@old.example", ["withdrawals:write"]);
    const mine = await post(bobBackend, "/v1/withdrawals", {
      customerId: "dave",
      chain: "local-a",
      asset: "native",
      to: DEST,
      amount: (2n * ETH).toString(),
    });
    expect(mine.statusCode, mine.body).toBe(201);
    for (const action of ["approve", "reject"]) {
      const res = await post(robert, `/v1/withdrawals/${mine.json().id}/${action}`);
      expect(res.statusCode, action).toBe(403);
      expect(res.json()).toMatchObject({ code: "APPROVER_IS_REQUESTER" });
    }
  });

  it("the requester under another spelling is still the requester", async () => {
    const created = await withdraw({ amount: (2n * ETH).toString() });
    const me = await t.newKey("EXCHANGE-Backend", ["withdrawals:approve"]);
    const res = await post(me, `/v1/withdrawals/${created.json().id}/approve`);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "APPROVER_IS_REQUESTER" });
  });
});

describe("customer ids named like Object members", () => {
  it("have no allowlist of their own (never an inherited one) and never get a 5xx", async () => {
    for (const customerId of ["constructor", "__proto__", "toString"]) {
      const res = await withdraw({ customerId, amount: "1000" });
      expect(res.statusCode, customerId).toBe(201);
      expect(res.json()).toMatchObject({ customerId });
    }
  });
});
