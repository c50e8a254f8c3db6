/**
 * Withdrawal API calls racing each other on real Postgres (each race fired with Promise.all, many
 * rounds, so an unlucky interleaving shows): decisions on one withdrawal (one wins, the others get
 * a problem+json 409, one signer request at most), approvers racing for the last approval, the same
 * Idempotency-Key sent at once (one withdrawal, one hold; a first request whose lease lapsed while
 * it waited is answered by its own withdrawal, not a 500), creates, approvals and a cancel racing the
 * rolling 24 h limit, and a create racing the reorg hold that blocks the customer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDepositCrediting } from "../../ledger/index.js";
import { waitFor } from "../../ops/testing/wait.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { createWithdrawals } from "./service.js";

const ETH = 10n ** 18n;
const CHAIN = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const NATIVE = `${CHAIN}:${ZERO}`;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ROUNDS = 20;
const LIMIT = 12n * ETH;
const customers = (prefix: string) => Array.from({ length: ROUNDS }, (_, i) => `${prefix}-${i}`);

let t: WithdrawalApiTestContext;
let requester: string;
let anna: string;
let annaAgain: string;
let ben: string;
let carl: string;
let dora: string;
let n = 0;

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    policy: {
      perTransaction: 10n * ETH,
      rolling24h: LIMIT,
      approvalThreshold: ETH,
      requiredApprovals: 2,
    },
    fund: {
      customers: [
        ...customers("dec"),
        ...customers("apr"),
        ...customers("idem"),
        ...customers("roll"),
        ...customers("svc"),
        "lapsed",
      ],
      amount: 20n * ETH,
    },
  });
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
  anna = await t.newKey("ops-anna", ["withdrawals:approve"]);
  annaAgain = await t.newKey("ops-anna", ["withdrawals:approve"]);
  ben = await t.newKey("ops-ben", ["withdrawals:approve"]);
  carl = await t.newKey("ops-carl", ["withdrawals:approve"]);
  dora = await t.newKey("ops-dora", ["withdrawals:approve"]);
}, 120_000);
afterAll(async () => {
  await t?.cleanup();
});

const post = (key: string, url: string, payload: object = {}, idem = `race-${++n}`) =>
  t.call(key, { method: "POST", url, headers: { "idempotency-key": idem }, payload });
const body = (customerId: string, amount: bigint) => ({
  customerId,
  chain: "local-a",
  asset: "native",
  to: DEST,
  amount: amount.toString(),
});
const withdraw = (customerId: string, amount: bigint, idem?: string) =>
  post(requester, "/v1/withdrawals", body(customerId, amount), idem);
const balance = (customer: string) =>
  t.ledger.balance({ assetId: NATIVE, name: `user:${customer}` });
const count = async (sql: string, params: unknown[]) =>
  (await t.ctx.db.pool.query<{ n: number }>(sql, params)).rows[0]!.n;
const signerRequests = (id: string) =>
  count("SELECT count(*)::int AS n FROM custody.tx_requests WHERE id = $1", [`withdrawal:${id}`]);
/** Every answer that is not a 2xx is a problem+json with one of the expected codes. */
function expectRefused(res: Awaited<ReturnType<typeof post>>, status: number, codes: string[]) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers["content-type"]).toContain("application/problem+json");
  expect(codes).toContain(res.json().code);
}

describe("racing decisions on one withdrawal", () => {
  it("approve, approve, cancel and reject at once: one wins, the others 409, one signer request at most", async () => {
    for (const customer of customers("dec")) {
      const created = await withdraw(customer, 2n * ETH);
      expect(created.statusCode, created.body).toBe(201);
      const w = created.json();
      expect(w.status).toBe("pending_approval");
      // One approval in: the next approver's approval hands it to the signer.
      expect((await post(anna, `/v1/withdrawals/${w.id}/approve`)).json().status).toBe(
        "pending_approval",
      );
      const results = await Promise.all([
        post(ben, `/v1/withdrawals/${w.id}/approve`),
        post(carl, `/v1/withdrawals/${w.id}/approve`),
        post(requester, `/v1/withdrawals/${w.id}/cancel`, { reason: "changed mind" }),
        post(dora, `/v1/withdrawals/${w.id}/reject`, { reason: "looks wrong" }),
      ]);
      const won = results.filter((r) => r.statusCode === 200);
      expect(won, results.map((r) => r.body).join("\n")).toHaveLength(1);
      for (const lost of results.filter((r) => r.statusCode !== 200))
        expectRefused(lost, 409, ["WITHDRAWAL_INVALID_STATE"]);
      const status = won[0]!.json().status as string;
      expect(["signing", "cancelled", "rejected"]).toContain(status);
      const stored = await t.call(anna, { method: "GET", url: `/v1/withdrawals/${w.id}` });
      expect(stored.json().status).toBe(status);
      expect(await signerRequests(w.id)).toBe(status === "signing" ? 1 : 0);
      // Signed: the hold stands; cancelled or rejected: it was voided, once.
      expect((await balance(customer)).debitsPending).toBe(status === "signing" ? 2n * ETH : 0n);
      expect((await balance(customer)).available).toBe(
        status === "signing" ? 18n * ETH : 20n * ETH,
      );
    }
  });

  it("approvers racing for the last approval: one hands it to the signer, one request, two approvals", async () => {
    for (const customer of customers("apr")) {
      const w = (await withdraw(customer, 2n * ETH)).json();
      expect(w.status).toBe("pending_approval");
      const results = await Promise.all(
        [anna, annaAgain, ben, carl].map((key) => post(key, `/v1/withdrawals/${w.id}/approve`)),
      );
      const ok = results.filter((r) => r.statusCode === 200).map((r) => r.json().status);
      expect(ok.sort(), results.map((r) => r.body).join("\n")).toEqual([
        "pending_approval",
        "signing",
      ]);
      for (const lost of results.filter((r) => r.statusCode !== 200))
        expectRefused(lost, 409, ["ALREADY_DECIDED", "WITHDRAWAL_INVALID_STATE"]);
      expect(await signerRequests(w.id)).toBe(1);
      const approvers = await t.ctx.db.pool.query<{ approver: string }>(
        "SELECT approver FROM api.withdrawal_approvals WHERE withdrawal_id = $1",
        [w.id],
      );
      expect(new Set(approvers.rows.map((r) => r.approver)).size).toBe(2);
      expect(approvers.rows).toHaveLength(2);
      expect((await balance(customer)).debitsPending).toBe(2n * ETH);
    }
  });
});

describe("the same Idempotency-Key at once", () => {
  it("through /v1: one withdrawal and one hold; the others 409 (in progress, or reused with another body)", async () => {
    for (const customer of customers("idem")) {
      const key = `same-key-${customer}`;
      const results = await Promise.all([
        ...Array.from({ length: 4 }, () => withdraw(customer, 2n * ETH, key)),
        withdraw(customer, 3n * ETH, key),
      ]);
      const created = results.filter((r) => r.statusCode === 201);
      expect(created.length, results.map((r) => r.body).join("\n")).toBeGreaterThanOrEqual(1);
      expect(new Set(created.map((r) => r.json().id)).size).toBe(1);
      for (const lost of results.filter((r) => r.statusCode !== 201))
        expectRefused(lost, 409, ["IDEMPOTENCY_IN_PROGRESS", "IDEMPOTENCY_KEY_REUSED"]);
      const rows = await t.ctx.db.pool.query<{ amount: bigint }>(
        "SELECT amount FROM api.withdrawals WHERE customer_id = $1",
        [customer],
      );
      expect(rows.rows).toHaveLength(1);
      expect((await balance(customer)).debitsPending).toBe(rows.rows[0]!.amount);
    }
  });

  it("in the service (a lapsed lease taken over): the stored withdrawal or a conflict, never a database error", async () => {
    const withdrawals = createWithdrawals({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      ledger: t.ledger,
    });
    const caller = t.keyRows["withdrawals:write"];
    for (let i = 0; i < ROUNDS; i++) {
      const customer = `svc-${i}`;
      const key = `svc-key-${i}`;
      const same = body(customer, 2n * ETH);
      const settled = await Promise.allSettled([
        withdrawals.create(caller, same, key),
        withdrawals.create(caller, same, key),
        withdrawals.create(caller, same, key),
        withdrawals.create(caller, body(customer, 3n * ETH), key),
      ]);
      const errors = settled.flatMap((s) => (s.status === "rejected" ? [s.reason] : []));
      for (const error of errors)
        expect((error as { code?: string }).code, String(error)).toBe("IDEMPOTENCY_KEY_REUSED");
      const ids = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value.id] : []));
      expect(new Set(ids).size).toBe(1);
      const rows = await t.ctx.db.pool.query<{ amount: bigint }>(
        "SELECT amount FROM api.withdrawals WHERE customer_id = $1",
        [customer],
      );
      expect(rows.rows).toHaveLength(1);
      expect((await balance(customer)).debitsPending).toBe(rows.rows[0]!.amount);
    }
  });

  it("through /v1: a retry taking over a first request whose lease lapsed while it waited gets that withdrawal", async () => {
    const customer = "lapsed";
    const key = "lapsed-key";
    // Requests waiting on an advisory lock in this file's database: pg_locks shows the whole
    // cluster, where other test files (and other runs) wait on locks of their own.
    // old code (every database's waiters counted): a waiter elsewhere let the lease lapse before
    // the first request held the key: expected 409 to be 201 (IDEMPOTENCY_IN_PROGRESS)
    const waiting = () =>
      count(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [],
      );
    const lapse = () =>
      t.ctx.db.pool.query(
        `UPDATE api.idempotency_keys SET lease_until = now() - interval '1 second'
          WHERE idempotency_key = $1`,
        [key],
      );
    // Another withdrawal of the customer's is being decided: the first request waits for it (as
    // it does under load), long enough for its lease to lapse.
    const busy = await t.ctx.db.pool.connect();
    try {
      await busy.query("BEGIN");
      await busy.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
        `withdrawal:${customer}:${NATIVE}`,
      ]);
      const first = withdraw(customer, 2n * ETH, key);
      await waitFor("the first request to wait on the customer's lock", async () => {
        return (await waiting()) >= 1;
      });
      // The first request's process is alive and renews its lease every few seconds: a renewal
      // between the lapse and the retry's read answers the retry IDEMPOTENCY_IN_PROGRESS (right,
      // its holder lives), so the lease is lapsed again until a retry takes the key over and
      // waits behind the first request.
      // old code (one lapse, then a retry): a renewal in between (3.2 s between them): Error:
      // fewer than 2 waiting on a lock
      let retry: { answer: ReturnType<typeof withdraw>; settled: boolean } | undefined;
      const retries: Awaited<ReturnType<typeof withdraw>>[] = [];
      const taken = await waitFor(
        "a retry to take the lapsed lease over and wait behind the first request",
        async () => {
          if (retry?.settled) {
            retries.push(await retry.answer);
            retry = undefined;
          }
          if (!retry) {
            await lapse();
            const r = { answer: withdraw(customer, 2n * ETH, key), settled: false };
            const settle = () => {
              r.settled = true;
            };
            r.answer.then(settle, settle);
            retry = r;
          }
          return (await waiting()) >= 2 && retry;
        },
      );
      for (const refused of retries) expectRefused(refused, 409, ["IDEMPOTENCY_IN_PROGRESS"]);
      await busy.query("COMMIT");
      const [a, b] = await Promise.all([first, taken.answer]);
      expect(a.statusCode, a.body).toBe(201);
      expect(b.statusCode, b.body).toBe(201);
      expect(b.json().id).toBe(a.json().id);
    } finally {
      busy.release();
    }
    expect(
      await count("SELECT count(*)::int AS n FROM api.withdrawals WHERE customer_id = $1", [
        customer,
      ]),
    ).toBe(1);
    expect((await balance(customer)).debitsPending).toBe(2n * ETH);
  });
});

describe("the rolling 24 h limit under racing calls", () => {
  it("creates, approvals and a cancel at once never take a customer's counted total over the limit", async () => {
    for (const customer of customers("roll")) {
      // 9 of 12 ETH counted, awaiting approvals.
      const pending = [];
      for (let k = 0; k < 3; k++)
        pending.push((await withdraw(customer, 3n * ETH)).json().id as string);
      const creates = Array.from({ length: 4 }, () => withdraw(customer, 3n * ETH));
      const results = await Promise.all([
        ...creates,
        ...pending
          .slice(0, 2)
          .flatMap((id) => [
            post(anna, `/v1/withdrawals/${id}/approve`),
            post(ben, `/v1/withdrawals/${id}/approve`),
          ]),
        post(requester, `/v1/withdrawals/${pending[2]}/cancel`),
      ]);
      const createResults = results.slice(0, 4);
      for (const r of createResults.filter((x) => x.statusCode !== 201))
        expectRefused(r, 422, ["ROLLING_LIMIT_EXCEEDED"]);
      for (const r of results.slice(4)) expect(r.statusCode, r.body).toBe(200);
      const counted = await t.ctx.db.pool.query<{ total: bigint }>(
        `SELECT COALESCE(sum(amount), 0) AS total FROM api.withdrawals
          WHERE customer_id = $1 AND status NOT IN ('rejected', 'cancelled', 'failed')`,
        [customer],
      );
      expect(counted.rows[0]!.total).toBeLessThanOrEqual(LIMIT);
      expect((await balance(customer)).debitsPending).toBe(counted.rows[0]!.total);
    }
  });
});

describe("a create racing the reorg hold that blocks the customer", () => {
  it("either the create is refused, or it is held first and the reorg's shortfall blocks the customer", async () => {
    const crediting = createDepositCrediting({
      common: t.ctx.common,
      pool: t.ctx.db.pool,
      ledger: t.ledger,
    });
    for (let i = 0; i < ROUNDS; i++) {
      const customer = `blk-${i}`;
      const deposit = `0x${(0xd100 + i).toString(16).padStart(40, "0")}`;
      const tx = `0x${(0xab00 + i).toString(16).padStart(64, "0")}`;
      const block = 1000 + 10 * i;
      await t.ctx.db.pool.query(
        `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
         VALUES ($1, $2, 'deposit', $3)`,
        [CHAIN, deposit, customer],
      );
      // A 5 ETH deposit, confirmed and credited: all the customer has.
      await t.ctx.db.pool.query(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
           kind, asset, from_address, to_address, amount, status)
         VALUES ($1, $2, $3, $4, 0, 'tx', 'native', $5, $6, $7, $8, 'confirmed')`,
        [CHAIN, block, `0xb${i}`, tx, ZERO, `0x${"ee".repeat(20)}`, deposit, (5n * ETH).toString()],
      );
      expect((await crediting.sweep({ chainId: CHAIN })).credited).toBe(1);
      // The indexer orphans it; the crediting pass that holds it races a 3 ETH withdrawal.
      await t.ctx.db.pool.query(
        `UPDATE chain.transfers SET status = 'orphaned', orphaned_after_confirmation = true
          WHERE tx_hash = $1`,
        [tx],
      );
      await t.ctx.db.pool.query(
        `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
           new_tip_number, new_tip_hash, beyond_window)
         VALUES ($1, 1, $2, $3, $4, $3, $5, false)`,
        [CHAIN, block - 1, block, `0xb${i}`, `0xnew${i}`],
      );
      // The pass starts a little later each round, so that across the rounds it lands before,
      // inside and after the create's transaction.
      const [created, swept] = await Promise.all([
        withdraw(customer, 3n * ETH),
        new Promise((r) => setTimeout(r, i * 1.5)).then(() => crediting.sweep({ chainId: CHAIN })),
      ]);
      expect(swept.held).toBe(1);
      const blocked = await count(
        `SELECT count(*)::int AS n FROM ledger.withdrawal_blocks
          WHERE customer_id = $1 AND cleared_at IS NULL`,
        [customer],
      );
      if (created.statusCode === 201) {
        // Held first: the reorg hold took what was left (2 ETH) and the rest is a shortfall.
        expect(blocked).toBe(1);
      } else {
        expectRefused(created, 422, [
          "INSUFFICIENT_AVAILABLE_BALANCE",
          "CUSTOMER_WITHDRAWALS_BLOCKED",
        ]);
        expect(blocked).toBe(0);
      }
      const b = await balance(customer);
      expect(b.available).toBe(0n);
      expect(b.debitsPending).toBe(5n * ETH);
    }
  });
});
