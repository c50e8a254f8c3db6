/**
 * The OpenAPI document is one SDK generators like: Redocly's recommended rules pass with no error
 * and no warning (`redocly lint`), every operation has an operationId, a summary and a 4xx answer,
 * every /v1 operation describes the 500, 502 and 503 problems (503 with its Retry-After),
 * health routes declare `security: []`, there is a server; and a client generated from it with
 * openapi-typescript type-checks a typed call (and refuses a mistyped one).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import openapiTS, { astToString } from "openapi-typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiTestContext, createApiTestContext } from "./testing/apiTestContext.js";

const run = promisify(execFile);
const bin = (name: string) => path.join(process.cwd(), "node_modules", ".bin", name);

type Operation = {
  operationId?: string;
  summary?: string;
  security?: unknown[];
  responses?: Record<string, unknown>;
};

let t: ApiTestContext;
let doc: {
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
};
let dir: string;

beforeAll(async () => {
  t = await createApiTestContext({ chains: [{ chainId: 31337, key: "local-a" }] });
  doc = (await t.app.inject({ method: "GET", url: "/docs/json" })).json();
  dir = await mkdtemp(path.join(tmpdir(), "custody-openapi-"));
  await writeFile(path.join(dir, "openapi.json"), JSON.stringify(doc));
});
afterAll(async () => {
  await t?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ route: `${method.toUpperCase()} ${p}`, op })),
  );

describe("the OpenAPI document", () => {
  it("gives every operation a unique operationId, a summary and a 4xx answer; has servers", () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThanOrEqual(20);
    const missing = ops.filter(
      ({ op }) =>
        !op.operationId ||
        !op.summary ||
        !Object.keys(op.responses ?? {}).some((s) => /^4(\d\d|XX)$/.test(s)),
    );
    expect(missing.map((m) => m.route)).toEqual([]);
    const ids = ops.map(({ op }) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(doc.servers?.length).toBeGreaterThan(0);
  });

  it("describes the 5xx problems every /v1 operation can answer, 503's Retry-After with them", () => {
    type Response = { description?: string; headers?: Record<string, unknown> };
    const v1 = operations().filter(({ route }) => / \/v1\//.test(route));
    expect(v1.length).toBeGreaterThanOrEqual(20);
    const missing = v1.flatMap(({ route, op }) =>
      ["500", "502", "503"]
        .filter((status) => !(op.responses as Record<string, Response> | undefined)?.[status])
        .map((status) => `${route}: ${status}`),
    );
    expect(missing).toEqual([]);
    const { responses } = v1[0]!.op as { responses: Record<string, Response> };
    expect(responses["500"]!.description).toContain("INTERNAL");
    expect(responses["502"]!.description).toContain("CHAIN_RPC_UNAVAILABLE");
    expect(responses["503"]!.description).toContain("DATABASE_UNAVAILABLE");
    expect(responses["503"]!.headers?.["retry-after"]).toMatchObject({
      schema: { type: "integer" },
    });
  });

  it("describes 429's Retry-After on every /v1 operation, and 500 on the health routes", () => {
    type Response = { description?: string; headers?: Record<string, unknown> };
    const responsesOf = (op: Operation) => (op.responses ?? {}) as Record<string, Response>;
    const v1 = operations().filter(({ route }) => / \/v1\//.test(route));
    expect(v1.length).toBeGreaterThanOrEqual(20);
    // RATE_LIMITED and AUTH_RATE_LIMITED are always sent with Retry-After (api/auth.ts, api/v1.ts).
    const without = v1
      .filter(({ op }) => !responsesOf(op)["429"]?.headers?.["retry-after"])
      .map(({ route }) => route);
    expect(without).toEqual([]);
    const tooMany = responsesOf(v1[0]!.op)["429"]!;
    expect(tooMany.description).toContain("RATE_LIMITED");
    expect(tooMany.description).toContain("AUTH_RATE_LIMITED");
    expect(tooMany.headers?.["retry-after"]).toMatchObject({ schema: { type: "integer" } });
    const health = operations().filter(({ route }) => / \/(healthz|readyz|metrics)$/.test(route));
    expect(health.map(({ route }) => route).sort()).toEqual([
      "GET /healthz",
      "GET /metrics",
      "GET /readyz",
    ]);
    expect(health.filter(({ op }) => !responsesOf(op)["500"]).map(({ route }) => route)).toEqual(
      [],
    );
  });

  it("declares health routes open (security: []) and every /v1 route keyed", () => {
    for (const { route, op } of operations()) {
      if (/ \/(healthz|readyz|metrics)$/.test(route)) expect(op.security, route).toEqual([]);
      else expect(op.security?.length, route).toBeGreaterThan(0);
    }
  });

  it("passes redocly lint (recommended rules) with no error and no warning", async () => {
    const { stdout, stderr } = await run(
      bin("redocly"),
      ["lint", path.join(dir, "openapi.json"), "--format=json"],
      {
        env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
        maxBuffer: 20 * 1024 * 1024,
      },
    ).catch((e: { stdout: string; stderr: string }) => e);
    const report = JSON.parse(stdout) as {
      totals: { errors: number; warnings: number };
      problems: { ruleId: string; message: string }[];
    };
    expect(
      report.problems.map((p) => `${p.ruleId}: ${p.message}`),
      stderr.slice(0, 500),
    ).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 60_000);

  it("generates a typed client (openapi-typescript) whose calls type-check", async () => {
    const types = astToString(await openapiTS(doc as never));
    await writeFile(path.join(dir, "schema.d.ts"), types);
    const client = (extra: string) => `
import type { operations, paths } from "./schema.js";

type JsonBody<Op> = Op extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;
type JsonOk<Op, S extends number> = Op extends { responses: { [K in S]: { content: { "application/json": infer B } } } } ? B : never;

/** A typed POST /v1/withdrawals, as an SDK would generate it from the operationId. */
export async function postWithdrawals(
  base: string,
  key: string,
  body: JsonBody<operations["postWithdrawals"]>,
  headers: operations["postWithdrawals"]["parameters"]["header"],
): Promise<JsonOk<operations["postWithdrawals"], 201>> {
  const res = await fetch(\`\${base}/v1/withdrawals\`, {
    method: "POST",
    headers: { authorization: \`Bearer \${key}\`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return (await res.json()) as JsonOk<operations["postWithdrawals"], 201>;
}

export async function example(): Promise<string> {
  const w = await postWithdrawals(
    "http://localhost:8080",
    "cn_x",
    { customerId: "alice", chain: "local-a", asset: "native", to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", amount: "1000" },
    { "idempotency-key": "k1" },
  );
  const status: string = w.status;
  const balances: paths["/v1/customers/{customerId}/balances"]["get"]["parameters"]["path"] = { customerId: "alice" };
  return \`\${w.id} \${status} \${balances.customerId}\`;
}
${extra}
`;
    const tsc = async (files: string[]) => {
      const config = path.join(dir, "tsconfig.json");
      await writeFile(
        config,
        JSON.stringify({
          compilerOptions: {
            noEmit: true,
            strict: true,
            exactOptionalPropertyTypes: true,
            target: "es2022",
            module: "nodenext",
            moduleResolution: "nodenext",
            lib: ["es2022", "dom"],
            types: [],
            // lib.dom is large and not ours; schema.d.ts is still resolved by every use.
            skipLibCheck: true,
          },
          files,
        }),
      );
      return run(
        process.execPath,
        [path.join(process.cwd(), "node_modules", "typescript", "bin", "tsc"), "-p", config],
        { maxBuffer: 10 * 1024 * 1024 },
      ).then(
        () => "",
        (e: { stdout: string }) => e.stdout,
      );
    };
    await writeFile(path.join(dir, "client.ts"), client(""));
    // The same client with a number for an amount (a decimal string in the API) does not compile.
    await writeFile(
      path.join(dir, "bad.ts"),
      client(
        `export const wrong = postWithdrawals("", "", { customerId: "a", chain: "c", asset: "native", to: "0x", amount: 1 }, { "idempotency-key": "k" });`,
      ),
    );
    const out = await tsc(["client.ts", "bad.ts"]);
    expect(out).not.toContain("client.ts(");
    expect(out).toMatch(
      /bad\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/,
    );
    expect(out.match(/error TS/g)).toHaveLength(1);
  }, 120_000);
});
