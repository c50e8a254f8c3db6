/**
 * Property-based bad input over the OpenAPI document (`/docs/json`): fast-check builds requests for
 * every operation from its own schemas, then corrupts them (NUL, lone surrogates, Object member
 * names, numbers past int64, overlong text, wrong types, unknown fields, raw garbage bodies, other
 * media types, missing or wrong keys). Over ≥1,000 requests per run: no 5xx, every error is
 * application/problem+json with a stable code and its own status, and a rejected request changes
 * no row of the api, ledger, custody, chain or recon tables (checksum before and after).
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "./testing/apiTestContext.js";

const RUNS = Number(process.env.BAD_INPUT_RUNS ?? 1000);
const ETH = 10n ** 18n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/** Server-state answers that are documented 503s, not a verdict on the input. */
const STATE_503 = new Set(["NO_HOT_WALLET", "RECON_NO_FINAL_BLOCK"]);

type Schema = {
  type?: string;
  pattern?: string;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  minLength?: number;
  maxLength?: number;
};
type Operation = {
  method: string;
  path: string;
  params: { name: string; in: string; required?: boolean; schema: Schema }[];
  body?: Schema;
};
type Req = {
  op: Operation;
  url: string;
  headers: Record<string, string>;
  payload?: string;
};

let t: WithdrawalApiTestContext;
let operations: Operation[];
let checksumSql: string;
const known: Record<string, string[]> = {};

async function checksum(): Promise<string> {
  const { rows } = await t.ctx.db.pool.query<{ h: string }>(checksumSql);
  return rows[0]!.h;
}

beforeAll(async () => {
  t = await createWithdrawalApiTestContext({
    v1: { rateLimit: { max: 1_000_000, timeWindowMs: 60_000 } },
    policy: { perTransaction: 10n * ETH, rolling24h: 1000n * ETH, approvalThreshold: 500n },
    fund: { customers: ["alice"], amount: 50n * ETH },
  });
  const pending = await t.call(t.keys.admin, {
    method: "POST",
    url: "/v1/withdrawals",
    headers: { "idempotency-key": "prop-seed" },
    payload: { customerId: "alice", chain: "local-a", asset: "native", to: DEST, amount: "1000" },
  });
  expect(pending.statusCode).toBe(201);
  // Real ids so some requests reach existing rows.
  known.id = [pending.json().id, "1"];
  known.customerId = ["alice", "constructor", "__proto__"];
  known.eventId = [pending.json().id];

  const doc = (await t.app.inject({ method: "GET", url: "/docs/json" })).json();
  operations = [];
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>))
    for (const [method, raw] of Object.entries(ops)) {
      const op = raw as {
        parameters?: Operation["params"];
        requestBody?: { content: Record<string, { schema: Schema }> };
      };
      operations.push({
        method: method.toUpperCase(),
        path,
        params: op.parameters ?? [],
        ...(op.requestBody ? { body: Object.values(op.requestBody.content)[0]!.schema } : {}),
      });
    }
  // BAD_INPUT_SKIP=/v1/prefix leaves an area out while its own bug is being fixed (never in CI).
  const skip = process.env.BAD_INPUT_SKIP;
  if (skip) operations = operations.filter((o) => !o.path.startsWith(skip));
  expect(operations.length).toBeGreaterThanOrEqual(20);

  const { rows: tables } = await t.ctx.db.pool.query<{ name: string }>(
    `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS name FROM pg_tables
      WHERE schemaname IN ('api', 'ledger', 'custody', 'chain', 'recon')
        AND tablename <> 'schema_migrations' ORDER BY 1`,
  );
  expect(tables.length).toBeGreaterThan(10);
  checksumSql = `SELECT md5(string_agg(h, ',' ORDER BY n)) AS h FROM (${tables
    .map(
      ({ name }, i) =>
        `SELECT ${i} AS n, count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') AS h FROM ${name} x`,
    )
    .join(" UNION ALL ")}) s`;
});
afterAll(async () => {
  await t?.cleanup();
});

/** Values that broke or could break a naive API. */
const nasty = fc.constantFrom(
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
  "9223372036854775807",
  "9223372036854775808",
  "99999999999999999999999999999999999999999999999999999999999999999999999999999999",
  "-1",
  "0",
  "1e400",
  "NaN",
  "",
  " ",
  "0x",
  "0x0000000000000000000000000000000000000000",
  DEST.toLowerCase(),
  "😀",
  "%00",
  "../../etc/passwd",
  "' OR 1=1 --",
  "a".repeat(129),
  "b".repeat(5000),
);

const garbage: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: nasty },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.constantFrom(null, true, [], {}, 1.5, -0, 2 ** 64) },
);

function valid(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => valid(s, depth)));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  switch (schema.type) {
    case "string":
      if (schema.pattern) {
        try {
          return fc.stringMatching(new RegExp(schema.pattern, "u"));
        } catch {
          return fc.string();
        }
      }
      return fc.string({
        minLength: schema.minLength ?? 0,
        maxLength: Math.min(schema.maxLength ?? 30, 30),
      });
    case "integer":
      return fc.integer({ min: -5, max: 2000 });
    case "number":
      return fc.double();
    case "boolean":
      return fc.boolean();
    case "array":
      return depth > 3
        ? fc.constant([])
        : fc.array(maybe(schema.items ?? {}, depth + 1), { maxLength: 3 });
    case "object": {
      const props = schema.properties ?? {};
      if (depth > 3) return fc.constant({});
      const shaped = fc.record(
        Object.fromEntries(Object.entries(props).map(([k, s]) => [k, maybe(s, depth + 1)])),
        { requiredKeys: (schema.required ?? []).filter((k) => k in props) },
      );
      return fc.oneof(
        { weight: 4, arbitrary: shaped },
        {
          weight: 1,
          arbitrary: fc
            .tuple(shaped, fc.oneof(nasty, fc.string({ maxLength: 10 })), garbage)
            .map(([o, k, v]) => ({ ...(o as object), [k as string]: v })),
        },
      );
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Mostly what the schema asks for, sometimes garbage. */
function maybe(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: valid(schema, depth) },
    { weight: 1, arbitrary: garbage },
  );
}

/** Percent-encodes any string, lone surrogates included (as UTF-8 of U+FFFD, like a browser). */
function encode(value: unknown): string {
  const text = typeof value === "string" ? value : (JSON.stringify(value) ?? "");
  return [...Buffer.from(text, "utf8")]
    .map((b) =>
      /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).padStart(2, "0")}`,
    )
    .join("");
}

const rawSegment = fc.constantFrom("%00", "%", "%E0%A4%A", "%ED%A0%80", "a%2Fb", "..", "%C0%AF");

function requestFor(op: Operation): fc.Arbitrary<Req> {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  const pathArb = fc.tuple(
    ...pathParams.map((p) =>
      fc.oneof(
        { weight: 2, arbitrary: valid(p.schema).map(encode) },
        { weight: 2, arbitrary: fc.constantFrom(...(known[p.name] ?? ["x"])).map(encode) },
        { weight: 1, arbitrary: garbage.map(encode) },
        { weight: 1, arbitrary: rawSegment },
      ),
    ),
  );
  const queryArb = fc.record(
    Object.fromEntries(queryParams.map((p) => [p.name, maybe(p.schema)])),
    { requiredKeys: [] },
  );
  const extraQuery = fc.option(fc.tuple(fc.oneof(nasty, fc.string({ maxLength: 8 })), garbage), {
    nil: undefined,
  });
  const bodyArb: fc.Arbitrary<{ payload?: string; contentType?: string }> = fc.oneof(
    {
      weight: 6,
      arbitrary: (op.body ? maybe(op.body) : garbage).map((b) => ({
        payload: JSON.stringify(b) ?? "null",
        contentType: "application/json",
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .string({ unit: "binary", maxLength: 60 })
        .map((s) => ({ payload: s, contentType: "application/json" })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          "text/plain",
          "application/x-www-form-urlencoded",
          "application/xml",
          "application/json; charset=latin1",
        )
        .map((ct) => ({ payload: "a=1", contentType: ct })),
    },
    { weight: 1, arbitrary: fc.constant({}) },
  );
  const keyArb = fc.oneof(
    { weight: 8, arbitrary: fc.constant(t.keys.admin) },
    { weight: 2, arbitrary: fc.constantFrom(...Object.values(t.keys)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("", "cn_", "cn_0000000000000000_x", "Bearer", "cn_abc_def"),
    },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  const idemArb = fc.oneof(
    { weight: 8, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.constantFrom("", " ", "a".repeat(201), "x y") },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  return fc
    .tuple(pathArb, queryArb, extraQuery, bodyArb, keyArb, idemArb)
    .map(([segments, query, extra, body, key, idem]) => {
      let i = 0;
      const path = op.path.replace(/\{[^}]+\}/g, () => segments[i++] as string);
      const qs = Object.entries(query as Record<string, unknown>).map(
        ([k, v]) => `${encode(k)}=${encode(v)}`,
      );
      if (extra) qs.push(`${encode(extra[0])}=${encode(extra[1])}`);
      const headers: Record<string, string> = {};
      if (key !== null) headers.authorization = `Bearer ${key}`;
      if (idem !== null) headers["idempotency-key"] = idem;
      const hasBody = op.method === "POST" && body.payload !== undefined;
      if (hasBody) headers["content-type"] = body.contentType!;
      return {
        op,
        url: qs.length ? `${path}?${qs.join("&")}` : path,
        headers,
        ...(hasBody ? { payload: body.payload! } : {}),
      };
    });
}

describe("bad input over the OpenAPI document (property-based)", () => {
  it(`never answers 5xx, always problem+json, and a rejected request changes nothing (${RUNS} requests)`, async () => {
    const statuses: Record<string, number> = {};
    let sent = 0;
    let rejectedGets = 0;
    let before = await checksum();
    // Each operation's arbitrary is built once: built per request (`.chain(requestFor)`), its
    // pattern strings' regexes and records were compiled again for every one of the requests,
    // about half the case's time. Arbitraries keep no state: reused, they draw requests as before.
    const perOperation = new Map(operations.map((op) => [op, requestFor(op)]));
    const arbitrary = fc.constantFrom(...operations).chain((op) => perOperation.get(op)!);
    await fc.assert(
      fc.asyncProperty(arbitrary, async (req) => {
        const res = await t.app.inject({
          method: req.op.method as "GET",
          url: req.url,
          headers: req.headers,
          ...(req.payload !== undefined ? { payload: req.payload } : {}),
        });
        sent++;
        const what = `${req.op.method} ${req.url.slice(0, 200)} ${JSON.stringify(req.payload)?.slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 300)}`;
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode >= 500) {
          const code = String(res.headers["content-type"] ?? "").includes("problem+json")
            ? res.json().code
            : "";
          expect(res.statusCode === 503 && STATE_503.has(code), what).toBe(true);
        }
        if (res.statusCode >= 400) {
          expect(res.headers["content-type"], what).toContain("application/problem+json");
          const body = res.json();
          expect(typeof body.code, what).toBe("string");
          expect(body.status, what).toBe(res.statusCode);
          // Every rejected POST is checked; GETs never write, so every 10th rejected one is.
          if (req.op.method === "POST" || ++rejectedGets % 10 === 0) {
            const after = await checksum();
            expect(after, `state changed by a rejected request: ${what}`).toBe(before);
          }
        } else if (req.op.method === "POST") before = await checksum();
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    expect(sent).toBeGreaterThanOrEqual(RUNS);
    // The generator reaches both sides: accepted requests and several kinds of refusal.
    const rejected = Object.entries(statuses).filter(([s]) => Number(s) >= 400);
    expect(rejected.length).toBeGreaterThanOrEqual(4);
    expect(Object.keys(statuses).some((s) => Number(s) < 300)).toBe(true);
    console.log(`bad-input suite: ${sent} requests, statuses ${JSON.stringify(statuses)}`);
  }, 120_000);
});
