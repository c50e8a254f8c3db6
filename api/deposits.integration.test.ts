/** Deposit addresses and deposits through /v1 (with idempotency), on real Postgres, Redis and anvil. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";
import { deployTestFactory } from "./testing/factory.js";

let t: ApiTestContext;
let alice: string;
beforeAll(async () => {
  t = await createApiTestContext({ chains: [{ chainId: 31337, key: "local-a" }] });
  await deployTestFactory(t.ctx);
});
afterAll(async () => {
  await t?.cleanup();
});

const allocate = (key: string, idem: string | undefined, body: unknown, customer = "alice") =>
  t.call(key, {
    method: "POST",
    url: `/v1/customers/${customer}/deposit-addresses`,
    headers: idem ? { "idempotency-key": idem } : {},
    payload: body as object,
  });

describe("deposit address allocation", () => {
  it("allocates once, replays a repeated Idempotency-Key, and refuses the key with another body", async () => {
    const first = await allocate(t.keys["deposits:write"], "alloc-1", { chain: "local-a" });
    expect(first.statusCode).toBe(200);
    const body = first.json();
    expect(body).toMatchObject({ chainId: 31337, chain: "local-a", created: true });
    expect(body.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    alice = body.address;

    const replay = await allocate(t.keys["deposits:write"], "alloc-1", { chain: "local-a" });
    expect(replay.statusCode).toBe(200);
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.json()).toEqual(body);

    const again = await allocate(t.keys["deposits:write"], "alloc-2", { chain: "31337" });
    expect(again.json()).toMatchObject({ address: alice, created: false });

    const conflict = await allocate(t.keys["deposits:write"], "alloc-1", { chain: "31337" });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toMatchObject({
      code: "IDEMPOTENCY_KEY_REUSED",
      field: "headers.idempotency-key",
      idempotency_key: "alloc-1",
    });
  });

  it("needs an Idempotency-Key, the deposits:write scope, a known chain and a valid customer", async () => {
    const missing = await allocate(t.keys["deposits:write"], undefined, { chain: "local-a" });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().errors[0].field).toBe("headers.idempotency-key");

    const wrongScope = await allocate(t.keys["deposits:read"], "x1", { chain: "local-a" });
    expect(wrongScope.statusCode).toBe(403);
    expect(wrongScope.json()).toMatchObject({ code: "AUTH_SCOPE_MISSING" });

    const unknown = await allocate(t.keys["deposits:write"], "x2", { chain: "mainnet" });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({ code: "UNKNOWN_CHAIN", field: "body.chain" });

    const badCustomer = await allocate(
      t.keys["deposits:write"],
      "x3",
      { chain: "local-a" },
      ":bad",
    );
    expect(badCustomer.statusCode).toBe(400);
    expect(badCustomer.json().errors[0].field).toBe("params.customerId");

    const { rows } = await t.ctx.db.pool.query(
      "SELECT count(*)::int AS n FROM chain.custody_addresses WHERE kind = 'deposit'",
    );
    expect(rows[0].n).toBe(1);
  });

  it("commits the allocation and its audit entry together: a failed audit write allocates nothing", async () => {
    const audits = async () =>
      (
        await t.ctx.db.pool.query(
          "SELECT actor, details FROM audit.audit_log WHERE action = 'deposit_address.allocated' AND entity_id = 'carol'",
        )
      ).rows;
    const addresses = async () =>
      (
        await t.ctx.db.pool.query(
          "SELECT count(*)::int AS n FROM chain.deposit_addresses WHERE customer_id = 'carol'",
        )
      ).rows[0].n;
    await t.ctx.db.pool.query(`
      CREATE FUNCTION audit.refuse_test() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$;
      CREATE TRIGGER refuse_test BEFORE INSERT ON audit.audit_log
        FOR EACH ROW EXECUTE FUNCTION audit.refuse_test()`);
    try {
      const refused = await allocate(
        t.keys["deposits:write"],
        "carol-1",
        { chain: "local-a" },
        "carol",
      );
      expect(refused.statusCode).toBe(500);
      expect(await addresses()).toBe(0);
    } finally {
      await t.ctx.db.pool.query(
        "DROP TRIGGER refuse_test ON audit.audit_log; DROP FUNCTION audit.refuse_test()",
      );
    }
    const retried = await allocate(
      t.keys["deposits:write"],
      "carol-2",
      { chain: "local-a" },
      "carol",
    );
    expect(retried.json()).toMatchObject({ created: true });
    expect(await addresses()).toBe(1);
    expect(await audits()).toEqual([
      expect.objectContaining({ details: { chain_id: 31337, address: retried.json().address } }),
    ]);
  });

  it("lists the customer's deposit addresses", async () => {
    const res = await t.call(t.keys["deposits:read"], {
      method: "GET",
      url: "/v1/customers/alice/deposit-addresses",
    });
    expect(res.json().addresses).toEqual([
      expect.objectContaining({ chainId: 31337, chain: "local-a", address: alice }),
    ]);
  });
});

describe("deposits", () => {
  beforeAll(async () => {
    const insert = (n: number, status: string) =>
      t.ctx.db.pool.query(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
           kind, asset, from_address, to_address, amount, status)
         VALUES (31337, $1, $2, $3, 0, 'tx', 'native', '0x0000000000000000000000000000000000000000',
           '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', $4, $5, $6)`,
        [
          n,
          `0x${n.toString(16).padStart(64, "b")}`,
          `0x${n.toString(16).padStart(64, "a")}`,
          alice.toLowerCase(),
          `${n}000`,
          status,
        ],
      );
    await insert(10, "confirmed");
    await insert(11, "seen");
    // a transfer to a non-deposit address is not a deposit
    await t.ctx.db.pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount)
       VALUES (31337, 12, '0x${"c".repeat(64)}', '0x${"d".repeat(64)}', 0, 'tx', 'native',
         '0x0000000000000000000000000000000000000000', '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
         '0x00000000000000000000000000000000000000ee', 5)`,
    );
  });

  it("lists a customer's deposits with amounts as decimal strings, filterable by status", async () => {
    const key = t.keys["deposits:read"];
    const all = await t.call(key, { method: "GET", url: "/v1/deposits?customer_id=alice" });
    expect(all.statusCode).toBe(200);
    const deposits = all.json().deposits;
    expect(deposits.map((d: { amount: string; status: string }) => [d.amount, d.status])).toEqual([
      ["10000", "confirmed"],
      ["11000", "seen"],
    ]);
    expect(deposits[0]).toMatchObject({
      customerId: "alice",
      chainId: 31337,
      address: alice,
      from: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      blockNumber: "10",
    });
    const seen = await t.call(key, { method: "GET", url: "/v1/deposits?status=seen" });
    expect(seen.json().deposits).toHaveLength(1);
    const one = await t.call(key, { method: "GET", url: `/v1/deposits/${deposits[1].id}` });
    expect(one.json()).toEqual(deposits[1]);
    const paged = await t.call(key, {
      method: "GET",
      url: `/v1/deposits?after=${deposits[0].id}&limit=1`,
    });
    expect(paged.json().deposits.map((d: { id: string }) => d.id)).toEqual([deposits[1].id]);
  });

  it("answers 404 for an unknown deposit and 400 for a bad filter", async () => {
    const key = t.keys["deposits:read"];
    const missing = await t.call(key, { method: "GET", url: "/v1/deposits/999999" });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: "RESOURCE_NOT_FOUND" });
    const bad = await t.call(key, { method: "GET", url: "/v1/deposits?status=lost" });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].field).toMatch(/^querystring\.status/);
    const extra = await t.call(key, { method: "GET", url: "/v1/deposits?colour=red" });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().errors[0].field).toBe("querystring.colour");
    const noScope = await t.call(t.keys["withdrawals:write"], {
      method: "GET",
      url: "/v1/deposits",
    });
    expect(noScope.statusCode).toBe(403);
  });
});
