/**
 * The bad-input suite: every malformed, mistyped, out-of-range or conflicting request gets a 4xx
 * problem+json naming the field, never a 5xx, and changes no row in any table or any balance.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ledger } from "../ledger/index.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";

const ETH = 10n ** 18n;
const NATIVE = "31337:0x0000000000000000000000000000000000000000";
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const valid = { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: "1000" };

let t: WithdrawalApiTestContext;
let ledger: Ledger;
let pendingId: string;
let n = 0;

/** Every table of every schema the API can touch, as row counts plus a checksum of its content. */
async function snapshot(): Promise<Record<string, string>> {
  const { rows: tables } = await t.ctx.db.pool.query<{ name: string }>(
    `SELECT schemaname || '.' || tablename AS name FROM pg_tables
      WHERE schemaname IN ('api', 'ledger', 'custody', 'chain', 'recon')
        AND tablename <> 'schema_migrations' ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const { rows } = await t.ctx.db.pool.query<{ n: string; h: string | null }>(
      `SELECT count(*)::text AS n, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM ${name} x`,
    );
    out[name] = `${rows[0]!.n}:${rows[0]!.h ?? ""}`;
  }
  return out;
}

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    policy: { perTransaction: 10n * ETH, rolling24h: 20n * ETH, approvalThreshold: 500n },
    fund: { customers: ["alice"], amount: 5n * ETH },
  });
  ledger = t.ledger;
  // one withdrawal awaiting approval, so approve/reject/cancel have something to refuse
  const first = await send({ ...valid }, "first");
  expect(first.statusCode).toBe(201);
  pendingId = first.json().id;
});
afterAll(async () => {
  await t?.cleanup();
});

function send(
  payload: unknown,
  idem: string | null = `bad-${++n}`,
  opts: { url?: string; contentType?: string; key?: string } = {},
) {
  const raw = typeof payload === "string" ? payload : JSON.stringify(payload);
  return t.call(opts.key ?? t.keys["withdrawals:write"], {
    method: "POST",
    url: opts.url ?? "/v1/withdrawals",
    headers: {
      "content-type": opts.contentType ?? "application/json",
      ...(idem !== null ? { "idempotency-key": idem } : {}),
    },
    ...(payload === undefined ? {} : { payload: raw }),
  });
}

type Case = {
  name: string;
  payload: unknown;
  field: string;
  code?: string;
  status?: number;
  idem?: string | null;
  url?: string;
  contentType?: string;
  key?: string;
};

const cases: Case[] = [
  {
    name: "malformed JSON",
    payload: '{"customerId": "alice",',
    field: "body",
    code: "MALFORMED_JSON",
  },
  { name: "JSON null", payload: "null", field: "body" },
  { name: "a JSON array", payload: [valid], field: "body" },
  { name: "empty JSON body", payload: "", field: "body" },
  {
    name: "text/plain body",
    payload: "amount=1",
    field: "body",
    contentType: "text/plain",
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  },
  { name: "amount as a number", payload: { ...valid, amount: 1000 }, field: "body.amount" },
  { name: "amount as a float", payload: { ...valid, amount: 1.5 }, field: "body.amount" },
  { name: "amount negative", payload: { ...valid, amount: "-1" }, field: "body.amount" },
  {
    name: "amount zero",
    payload: { ...valid, amount: "0" },
    field: "body.amount",
    code: "AMOUNT_INVALID",
  },
  { name: "amount fractional", payload: { ...valid, amount: "1.5" }, field: "body.amount" },
  { name: "amount exponent", payload: { ...valid, amount: "1e18" }, field: "body.amount" },
  { name: "amount with spaces", payload: { ...valid, amount: " 1" }, field: "body.amount" },
  { name: "amount empty", payload: { ...valid, amount: "" }, field: "body.amount" },
  {
    name: "amount 2^256",
    payload: { ...valid, amount: (1n << 256n).toString() },
    field: "body.amount",
    code: "AMOUNT_INVALID",
  },
  { name: "amount 79 digits", payload: { ...valid, amount: "9".repeat(79) }, field: "body.amount" },
  {
    name: "amount above the balance",
    payload: { ...valid, amount: (6n * ETH).toString() },
    field: "body.amount",
    code: "INSUFFICIENT_AVAILABLE_BALANCE",
  },
  {
    name: "amount above the per-transaction limit",
    payload: { ...valid, amount: (11n * ETH).toString() },
    field: "body.amount",
    code: "AMOUNT_ABOVE_LIMIT",
  },
  { name: "missing amount", payload: { ...valid, amount: undefined }, field: "body.amount" },
  {
    name: "customerId as a number",
    payload: { ...valid, customerId: 7 },
    field: "body.customerId",
  },
  {
    name: "customerId with a space",
    payload: { ...valid, customerId: "a b" },
    field: "body.customerId",
  },
  {
    name: "customerId too long",
    payload: { ...valid, customerId: "x".repeat(129) },
    field: "body.customerId",
  },
  { name: "unknown field", payload: { ...valid, memo: "hi" }, field: "body.memo" },
  { name: "address too short", payload: { ...valid, to: "0x1234" }, field: "body.to" },
  { name: "address not hex", payload: { ...valid, to: `0x${"zz".repeat(20)}` }, field: "body.to" },
  { name: "address as an array", payload: { ...valid, to: [DEST] }, field: "body.to" },
  {
    name: "address lowercase (not checksummed)",
    payload: { ...valid, to: DEST.toLowerCase() },
    field: "body.to",
    code: "ADDRESS_NOT_CHECKSUMMED",
  },
  {
    name: "address with a wrong checksum",
    payload: { ...valid, to: DEST.replace("C5", "c5") },
    field: "body.to",
    code: "ADDRESS_NOT_CHECKSUMMED",
  },
  {
    name: "the zero address",
    payload: { ...valid, to: "0x0000000000000000000000000000000000000000" },
    field: "body.to",
    code: "INVALID_ADDRESS",
  },
  {
    name: "unknown chain key",
    payload: { ...valid, chain: "mainnet" },
    field: "body.chain",
    code: "UNKNOWN_CHAIN",
  },
  {
    name: "unknown chain id",
    payload: { ...valid, chain: "1" },
    field: "body.chain",
    code: "UNKNOWN_CHAIN",
  },
  { name: "chain as a number", payload: { ...valid, chain: 31337 }, field: "body.chain" },
  {
    name: "unknown asset",
    payload: { ...valid, asset: "DOGE" },
    field: "body.asset",
    code: "UNKNOWN_ASSET",
  },
  {
    name: "unlisted token address",
    payload: { ...valid, asset: "0x5FbDB2315678afecb367f032d93F642f64180aa3" },
    field: "body.asset",
    code: "UNKNOWN_ASSET",
  },
  {
    name: "oversized body",
    payload: { ...valid, customerId: "x".repeat(70 * 1024) },
    field: "body",
    code: "BODY_TOO_LARGE",
    status: 413,
  },
  { name: "no Idempotency-Key", payload: valid, field: "headers.idempotency-key", idem: null },
  {
    name: "Idempotency-Key too long",
    payload: valid,
    field: "headers.idempotency-key",
    idem: "k".repeat(201),
  },
  {
    name: "repeated Idempotency-Key with another body",
    payload: { ...valid, amount: "999" },
    field: "headers.idempotency-key",
    code: "IDEMPOTENCY_KEY_REUSED",
    status: 409,
    idem: "first",
  },
  {
    name: "approve: id not a UUID",
    payload: {},
    field: "params.id",
    url: "/v1/withdrawals/123/approve",
  },
  {
    name: "approve: unknown withdrawal",
    payload: {},
    field: "",
    code: "RESOURCE_NOT_FOUND",
    status: 404,
    url: "/v1/withdrawals/00000000-0000-4000-8000-000000000000/approve",
  },
  {
    name: "approve: reason as a number",
    payload: { reason: 5 },
    field: "body.reason",
    url: "/v1/withdrawals/PENDING/approve",
  },
  {
    name: "allocate: bad chain",
    payload: { chain: "Main Net" },
    field: "body.chain",
    url: "/v1/customers/alice/deposit-addresses",
  },
];

const badQueries: {
  url: string;
  field: string;
  scope: "ledger:read" | "deposits:read" | "admin";
}[] = [
  {
    url: `/v1/customers/alice/transfers?asset=${NATIVE}&cursor=zzz`,
    field: "querystring.cursor",
    scope: "ledger:read",
  },
  { url: "/v1/customers/alice/transfers", field: "querystring.asset", scope: "ledger:read" },
  {
    url: "/v1/customers/alice/transfers?asset=31337:native",
    field: "querystring.asset",
    scope: "ledger:read",
  },
  { url: "/v1/deposits?limit=0", field: "querystring.limit", scope: "deposits:read" },
  { url: "/v1/deposits?limit=1001", field: "querystring.limit", scope: "deposits:read" },
  { url: "/v1/deposits?chain_id=-1", field: "querystring.chain_id", scope: "deposits:read" },
  { url: "/v1/deposits/abc", field: "params.id", scope: "deposits:read" },
  { url: "/v1/audit?after=x", field: "querystring.after", scope: "admin" },
  { url: "/v1/webhooks/deliveries?status=lost", field: "querystring.status", scope: "admin" },
];

describe("bad input", () => {
  it("answers every case with a 4xx problem+json naming the field, and changes nothing", async () => {
    const before = await snapshot();
    const balanceBefore = await ledger.balance({ assetId: NATIVE, name: "user:alice" });
    const failures: string[] = [];
    for (const c of cases) {
      const url = c.url?.replace("PENDING", pendingId);
      const key = c.url?.includes("/approve")
        ? t.keys["withdrawals:approve"]
        : c.url?.includes("deposit-addresses")
          ? t.keys["deposits:write"]
          : undefined;
      const res = await send(c.payload, c.idem === undefined ? `bad-${++n}` : c.idem, {
        ...(url ? { url } : {}),
        ...(c.contentType ? { contentType: c.contentType } : {}),
        ...(key ? { key } : {}),
      });
      const body = res.json();
      const fields: string[] = [
        body.field,
        ...(body.errors ?? []).map((e: { field: string }) => e.field),
      ];
      const problems: string[] = [];
      if (res.statusCode < 400 || res.statusCode >= 500) problems.push(`status ${res.statusCode}`);
      if (c.status && res.statusCode !== c.status)
        problems.push(`status ${res.statusCode} ≠ ${c.status}`);
      if (!String(res.headers["content-type"]).startsWith("application/problem+json"))
        problems.push(`content-type ${res.headers["content-type"]}`);
      if (typeof body.code !== "string") problems.push("no code");
      if (c.code && body.code !== c.code) problems.push(`code ${body.code} ≠ ${c.code}`);
      if (c.field && !fields.some((f) => f?.startsWith(c.field)))
        problems.push(`fields ${JSON.stringify(fields)} do not name ${c.field}`);
      if (problems.length > 0)
        failures.push(`${c.name}: ${problems.join("; ")} (${JSON.stringify(body)})`);
    }
    expect(failures).toEqual([]);
    expect(await ledger.balance({ assetId: NATIVE, name: "user:alice" })).toEqual(balanceBefore);
    expect(await snapshot()).toEqual(before);
  });

  it("bad query strings and path parameters get a 400 naming the field", async () => {
    for (const q of badQueries) {
      const res = await t.call(t.keys[q.scope], { method: "GET", url: q.url });
      expect({ url: q.url, status: res.statusCode }).toEqual({ url: q.url, status: 400 });
      expect(res.headers["content-type"]).toContain("application/problem+json");
      expect(
        res
          .json()
          .errors.map((e: { field: string }) => e.field)
          .join(","),
      ).toContain(q.field);
    }
  });

  it("the withdrawal that went through is untouched and still the only one", async () => {
    const { rows } = await t.ctx.db.pool.query("SELECT id::text, status FROM api.withdrawals");
    expect(rows).toEqual([{ id: pendingId, status: "pending_approval" }]);
  });
});
