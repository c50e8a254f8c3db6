/**
 * Every list that pages with `after` (the last id of the previous page) refuses a cursor that names
 * no row (400 PAGE_CURSOR_UNKNOWN naming `querystring.after`): an empty page would be the same
 * answer as the list's end, and a client with a mistyped, truncated or foreign cursor would stop
 * paging as if it had read everything. A cursor naming a real row still pages, to an empty page at
 * the end, and also when the row has since left the list's filter (a withdrawal's or break's state
 * moved on between two pages). Real Postgres; rows seeded as their modules store them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit } from "../foundation/audit.js";
import { createLedger, transferId } from "../ledger/index.js";
import type { Scope } from "./apiKeys.js";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

let t: ApiTestContext;
beforeAll(async () => {
  t = await createApiTestContext();
});
afterAll(async () => {
  await t?.cleanup();
});

const get = (scope: Scope, url: string) => t.call(t.keys[scope], { method: "GET", url });

/** The answer to a cursor that names no row: 400 problem+json naming the field, nothing listed. */
async function expectUnknownCursor(scope: Scope, url: string) {
  const res = await get(scope, url);
  expect(res.statusCode, res.body).toBe(400);
  expect(res.headers["content-type"]).toContain("application/problem+json");
  expect(res.json()).toMatchObject({
    code: "PAGE_CURSOR_UNKNOWN",
    status: 400,
    errors: [{ field: "querystring.after" }],
  });
}

async function expectPage(scope: Scope, url: string, key: string, length: number) {
  const res = await get(scope, url);
  expect(res.statusCode, res.body).toBe(200);
  expect(res.json()[key], url).toHaveLength(length);
}

describe("a page cursor that names no row", () => {
  it("GET /v1/withdrawals refuses it; a real one pages, also once its row left the filter", async () => {
    const id = "0b0e8c9c-1d4a-4f0e-9a55-3c1e2f0a7b10";
    await t.ctx.db.pool.query(
      `INSERT INTO api.withdrawals (id, customer_id, chain_id, asset, to_address, amount, status,
         requested_by, api_key_id, idempotency_key)
       VALUES ($1, 'cursor-alice', 31337, '0x0000000000000000000000000000000000000000',
         '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', 1, 'pending_approval', 'owner', $2, 'cursor-1')`,
      [id, t.keyRows["withdrawals:write"].id],
    );
    await expectUnknownCursor(
      "withdrawals:write",
      "/v1/withdrawals?after=7d6f9a2e-0000-4000-8000-000000000000",
    );
    await expectUnknownCursor(
      "withdrawals:write",
      "/v1/withdrawals?order=newest&after=7d6f9a2e-0000-4000-8000-000000000000",
    );
    await expectPage("withdrawals:write", `/v1/withdrawals?after=${id}`, "withdrawals", 0);
    await expectPage(
      "withdrawals:write",
      `/v1/withdrawals?status=signing&order=newest&after=${id}`,
      "withdrawals",
      0,
    );
  });

  it("GET /v1/recon/breaks refuses it; a break resolved since still pages", async () => {
    const run = await t.ctx.db.pool.query<{ id: string }>(
      `INSERT INTO recon.runs (chain_id, block_number, mode, status, finished_at)
       VALUES (31337, 7, 'full', 'completed', now()) RETURNING id`,
    );
    const identity = "missing_credit|31337|31337:0x0|cursor-tx";
    await t.ctx.db.pool.query(
      `INSERT INTO recon.break_states (identity, chain_id, type, asset_id, key, state,
         first_run_id, last_run_id, last_difference)
       VALUES ($1, 31337, 'missing_credit', '31337:0x0', 'cursor-tx', 'resolved', $2, $2, 1)`,
      [identity, run.rows[0]!.id],
    );
    await expectUnknownCursor(
      "recon:read",
      `/v1/recon/breaks?after=${encodeURIComponent("missing_credit|31337|31337:0x0|no-such-tx")}`,
    );
    await expectPage(
      "recon:read",
      `/v1/recon/breaks?after=${encodeURIComponent(identity)}`,
      "breaks",
      0,
    );
  });

  it("GET /v1/deposits and /v1/deposits/holds refuse it", async () => {
    await expectUnknownCursor("deposits:read", "/v1/deposits?after=987654321");
    await expectUnknownCursor("deposits:read", "/v1/deposits?order=newest&after=987654321");
    await expectUnknownCursor(
      "deposits:read",
      "/v1/deposits/holds?after=5e0c1b7a-0000-4000-8000-000000000000",
    );
    // A hold's credit that is no longer held (its deposit came back) still names a place.
    const creditId = "5e0c1b7a-1111-4000-8000-000000000001";
    await t.ctx.db.pool.query(
      `INSERT INTO ledger.deposit_credits (credit_id, chain_id, tx_hash, position, to_address,
         asset, amount, owner, block_number, block_hash, state)
       VALUES ($1, 31337, '0x' || repeat('a', 64), '0', '0x' || repeat('b', 40),
         '0x0000000000000000000000000000000000000000', 5, 'cursor-bob', 3, '0x' || repeat('c', 64),
         'credited')`,
      [creditId],
    );
    await expectPage("deposits:read", `/v1/deposits/holds?after=${creditId}`, "holds", 0);
  });

  it("GET /v1/audit and /v1/treasury/moves refuse it; the last entry pages to an empty page", async () => {
    await appendAudit(t.ctx.db.pool, {
      actor: "ops",
      action: "treasury.fund",
      entityType: "treasury",
      entityId: "31337:0xcursor",
    });
    const newest = await get("admin", "/v1/audit?order=newest&limit=1");
    const lastId = newest.json().entries[0].id as string;
    const unknown = String(BigInt(lastId) + 1000n);
    await expectUnknownCursor("admin", `/v1/audit?after=${unknown}`);
    await expectUnknownCursor("admin", `/v1/audit?order=newest&after=${unknown}`);
    await expectUnknownCursor("admin", `/v1/treasury/moves?after=${unknown}`);
    await expectPage("admin", `/v1/audit?after=${lastId}`, "entries", 0);
    await expectPage("admin", `/v1/treasury/moves?after=${lastId}`, "moves", 0);
  });
});

describe("a customer's transfers cursor that names no transfer of the account", () => {
  it("GET /v1/customers/{id}/transfers refuses it; a nextCursor pages to the end", async () => {
    const NATIVE = "31337:0x0000000000000000000000000000000000000000";
    const ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
    try {
      const fund = (customer: string, n: number) =>
        ledger.transfer({
          id: transferId(`test:cursor:${customer}:${n}`),
          assetId: NATIVE,
          debit: "custody:deposits",
          credit: `user:${customer}`,
          amount: 1000n + BigInt(n),
          kind: "manual",
        });
      for (const n of [1, 2, 3]) await fund("cursor-carol", n);
      await fund("cursor-dave", 1);
      const url = (customer: string, cursor?: string) =>
        `/v1/customers/${customer}/transfers?asset=${NATIVE}&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const first = await get("ledger:read", url("cursor-carol"));
      expect(first.statusCode, first.body).toBe(200);
      const { transfers, nextCursor } = first.json() as {
        transfers: { seq: string }[];
        nextCursor: string;
      };
      expect(transfers).toHaveLength(2);
      expect(nextCursor).toBe(transfers[1]!.seq);
      const last = await get("ledger:read", url("cursor-carol", nextCursor));
      expect(last.statusCode, last.body).toBe(200);
      expect(last.json()).toMatchObject({ nextCursor: null });
      expect(last.json().transfers).toHaveLength(1);
      // The oldest transfer's seq names a row: the empty page after it is the list's end.
      const oldest = last.json().transfers[0].seq as string;
      expect((await get("ledger:read", url("cursor-carol", oldest))).json()).toEqual({
        transfers: [],
        nextCursor: null,
      });

      const unknown = async (customer: string, cursor: string) => {
        const res = await get("ledger:read", url(customer, cursor));
        return `${customer} ${cursor}: ${res.statusCode} ${res.json().code} ${res.json().errors?.[0]?.field}`;
      };
      const dave = (await get("ledger:read", url("cursor-dave"))).json().transfers[0].seq as string;
      const cases = [
        // Another customer's transfer (a cursor from the wrong customer's pages).
        ["cursor-carol", dave],
        // A seq past every transfer, one before the first (cut short: a leading digit lost).
        ["cursor-carol", String(BigInt(nextCursor) + 1_000_000n)],
        ["cursor-carol", "0"],
        // A customer with no account in the asset: no cursor of theirs names a row.
        ["cursor-nobody", nextCursor],
      ] as const;
      const answers = await Promise.all(cases.map(([c, cursor]) => unknown(c, cursor)));
      expect(answers).toEqual(
        cases.map(([c, cursor]) => `${c} ${cursor}: 400 PAGE_CURSOR_UNKNOWN querystring.cursor`),
      );
    } finally {
      await ledger.close();
    }
  });
});
