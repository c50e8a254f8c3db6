/**
 * The layering test (issue 16; docs/architecture.md): every production file's imports go the
 * allowed directions written in the doc, no import cycle, no test support in production code, no
 * viem client or transport outside chains/, no SQL naming another module's schema. Today's
 * violations are KNOWN_EXCEPTIONS below: the test fails on one not listed and on a listed one that
 * no longer occurs, so the list only shrinks.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import {
  checkLayering,
  isProduction,
  parseRules,
  type Rules,
  readSources,
  SOURCE_ROOTS,
  type SourceText,
  violationKey,
} from "./layering.js";

/**
 * Issue 16's remaining debt, one line per violation (`violationKey`'s form). Delete a line in the
 * commit that fixes it; add one only with the reason in the commit message.
 */
const KNOWN_EXCEPTIONS: readonly string[] = [];

let rules: Rules;
let sources: SourceText[];
let found: string[];

beforeAll(() => {
  rules = parseRules(readFileSync(path.join(repoRoot, "docs", "architecture.md"), "utf8"));
  sources = readSources(repoRoot);
  found = checkLayering(sources, rules).map(violationKey);
});

describe("the tree", () => {
  it("reads the rules from docs/architecture.md", () => {
    expect(rules.layers.get("foundation")).toEqual(new Set());
    expect(rules.layers.get("ops")).toBe("*");
    for (const [from, to] of rules.layers) {
      if (to === "*") continue;
      expect(to.has("ops"), `${from} may not import ops/ (the composition root)`).toBe(false);
    }
    expect(sources.length).toBeGreaterThan(150);
  });

  it("breaks no rule beyond the known exceptions, and every known exception still occurs", () => {
    const known = new Set(KNOWN_EXCEPTIONS);
    const unexpected = found.filter((k) => !known.has(k));
    const fixed = KNOWN_EXCEPTIONS.filter((k) => !found.includes(k));
    console.log(
      `layering: ${sources.length} production files, ${found.length} violations, ` +
        `${KNOWN_EXCEPTIONS.length} known exceptions (issue 16's debt)`,
    );
    if (unexpected.length > 0 || fixed.length > 0) {
      // The whole list as it stands, to paste over KNOWN_EXCEPTIONS once each change is understood.
      console.log(`today's violations:\n${found.map((k) => `  "${k}",`).join("\n")}`);
    }
    expect(
      unexpected,
      "new layering violations (docs/architecture.md): fix them, or list them in KNOWN_EXCEPTIONS with a reason",
    ).toEqual([]);
    expect(fixed, "fixed: delete these lines from KNOWN_EXCEPTIONS").toEqual([]);
    expect(new Set(KNOWN_EXCEPTIONS).size, "KNOWN_EXCEPTIONS has a duplicate").toBe(
      KNOWN_EXCEPTIONS.length,
    );
  });

  it("counts as production exactly what tsconfig.build.json compiles (plus subgraphs/ponder)", () => {
    const configPath = path.join(repoRoot, "tsconfig.build.json");
    const { config } = ts.readConfigFile(configPath, ts.sys.readFile);
    const built = ts
      .parseJsonConfigFileContent(config, ts.sys, repoRoot, undefined, configPath)
      .fileNames.map((f) => path.relative(repoRoot, f).split(path.sep).join("/"))
      .filter((f) => f.endsWith(".ts"))
      .sort();
    const production = sources.map((s) => s.path).filter((p) => !p.startsWith("subgraphs/"));
    expect(production).toEqual(built);
    expect(SOURCE_ROOTS.filter((r) => r !== "subgraphs/ponder").sort()).toEqual(
      [...(config.include as string[])].sort(),
    );
  });

  it("names each schema's owner as the migrations do (first file NNNN_<schema>.sql)", () => {
    const fromMigrations = new Map<string, string>();
    const walk = (rel: string): void => {
      for (const e of readdirSync(path.join(repoRoot, rel), { withFileTypes: true })) {
        if (!e.isDirectory() || ["node_modules", "testing", "fixtures"].includes(e.name)) continue;
        const p = `${rel}/${e.name}`;
        if (e.name !== "migrations") {
          walk(p);
          continue;
        }
        const first = readdirSync(path.join(repoRoot, p))
          .filter((f) => f.endsWith(".sql"))
          .sort()[0];
        const schema = first && /^\d{4}_([a-z][a-z0-9_]*)\.sql$/.exec(first)?.[1];
        if (schema) fromMigrations.set(schema, rel);
      }
    };
    for (const r of SOURCE_ROOTS) walk(r);
    expect(new Map([...fromMigrations].sort())).toEqual(new Map([...rules.schemas].sort()));
  });
  it("finds each published view created by its owner's migrations", () => {
    for (const view of rules.views) {
      const [schema] = view.split(".");
      const dir = path.join(repoRoot, rules.schemas.get(schema!)!, "migrations");
      const sql = readdirSync(dir)
        .filter((f) => f.endsWith(".sql"))
        .map((f) => readFileSync(path.join(dir, f), "utf8"))
        .join("\n");
      const created = new RegExp(
        `CREATE\\s+(OR\\s+REPLACE\\s+)?VIEW\\s+${view.replace(".", "\\.")}\\b`,
        "i",
      );
      expect(
        created.test(sql),
        `${view} is listed in the views block but no migration creates it`,
      ).toBe(true);
    }
  });
});

describe("the checker", () => {
  const planted: SourceText[] = [
    // a) up the layers: foundation importing ledger; a module importing the composition root;
    //    a dynamic import and an export-from count too.
    { path: "foundation/x.ts", text: 'import { y } from "../ledger/y.js";\nexport const x = y;\n' },
    { path: "ledger/y.ts", text: "export const y = 1;\n" },
    { path: "ledger/w.ts", text: 'import "../ops/root.js";\n' },
    { path: "indexers/d.ts", text: 'export const d = () => import("../api/h.js");\n' },
    { path: "chains/e.ts", text: 'export * from "../signer/s.js";\n' },
    { path: "api/h.ts", text: "export const h = 1;\n" },
    { path: "signer/s.ts", text: "export const s = 1;\n" },
    {
      path: "ops/root.ts",
      text: 'import "../api/h.js";\nimport "../signer/s.js";\nimport "../ledger/y.js";\n',
    },
    // b) a type-only cycle a -> b -> a.
    { path: "ledger/a.ts", text: 'import type { B } from "./b.js";\nexport type A = B | 1;\n' },
    { path: "ledger/b.ts", text: 'import type { A } from "./a.js";\nexport type B = A | 2;\n' },
    // c) production importing test support.
    { path: "indexers/z.ts", text: 'import { chain } from "./testing/chain.js";\nchain();\n' },
    // d) viem clients: in ledger (reported), in chains (allowed), a namespace import in api.
    {
      path: "ledger/rpc.ts",
      text:
        'import { createPublicClient, http as viemHttp } from "viem";\n' +
        'export const c = createPublicClient({ transport: viemHttp("http://x") });\n',
    },
    {
      path: "chains/rpc.ts",
      text: 'import { fallback, http } from "viem";\nexport const t = fallback([http("a")]);\n',
    },
    {
      path: "api/ws.ts",
      text: 'import * as viem from "viem";\nexport const t = viem.webSocket("ws://x");\n',
    },
    // ... and handed on uncalled, or re-exported; a type-only import is not a client.
    {
      path: "signer/t.ts",
      text:
        'import { custom, type HttpTransport, type http as Http } from "viem";\n' +
        "export const make = custom;\nexport type T = HttpTransport | typeof Http;\n",
    },
    { path: "indexers/re.ts", text: 'export { webSocket } from "viem";\n' },
    // e) SQL naming another module's schema (and what is not SQL, or is the owner's own).
    {
      path: "api/q.ts",
      text:
        'export const q = "SELECT * FROM ledger.transfers";\n' +
        "export const r = (id: string) => `UPDATE custody.tx_requests SET x = $" +
        "{id}`;\n" +
        'export const url = "https://api.example.com/v1";\n' +
        "export const own = `SELECT * FROM api.withdrawals`;\n",
    },
    {
      path: "ledger/own.ts",
      text:
        'export const q = "SELECT * FROM ledger.transfers JOIN ledger.accounts a ON true";\n' +
        "export const id = (chain: { id: number }) => chain.id;\n" +
        'export const msg = "chain.transfers is read through the indexers";\n',
    },
    { path: "ledger/recon/r.ts", text: 'export const q = "SELECT 1 FROM ledger.entries";\n' },
  ];

  it("reports each planted violation with its kind", () => {
    const keys = checkLayering(planted, rules).map(violationKey);
    expect(keys).toEqual(
      [
        "cycle: ledger/a.ts <-> ledger/b.ts",
        "direction: chains/e.ts -> signer",
        "direction: foundation/x.ts -> ledger",
        "direction: indexers/d.ts -> api",
        "direction: ledger/w.ts -> ops",
        "rpc-client: api/ws.ts uses viem webSocket",
        "rpc-client: indexers/re.ts uses viem webSocket",
        "rpc-client: ledger/rpc.ts uses viem createPublicClient",
        "rpc-client: ledger/rpc.ts uses viem http",
        "rpc-client: signer/t.ts uses viem custom",
        "schema: api/q.ts names custody.",
        "schema: api/q.ts names ledger.",
        "schema: ledger/recon/r.ts names ledger.",
        "test-support: indexers/z.ts -> indexers/testing/chain.ts",
      ].sort(),
    );
  });

  it("finds nothing in a tree that keeps the rules", () => {
    const clean = planted.filter((f) =>
      [
        "ledger/y.ts",
        "api/h.ts",
        "signer/s.ts",
        "ops/root.ts",
        "chains/rpc.ts",
        "ledger/own.ts",
      ].includes(f.path),
    );
    expect(checkLayering(clean, rules)).toEqual([]);
  });

  it("knows test support from production code", () => {
    for (const p of [
      "ledger/x.test.ts",
      "ledger/x.integration.test.ts",
      "ledger/recon/reconcile.bench.ts",
      "signer/testing/crashPoints.ts",
      "ops/e2e/setup.ts",
      "ops/sim/run.ts",
      "ops/bench/run.ts",
      "ops/infra/app.ts",
    ]) {
      expect(isProduction(p), p).toBe(false);
    }
    for (const p of ["ledger/createLedger.ts", "ops/start.ts", "subgraphs/ponder/run.ts"]) {
      expect(isProduction(p), p).toBe(true);
    }
  });

  it("lets a layer read a published view of a module below it, and nothing else of that schema", () => {
    const withViews: Rules = {
      ...rules,
      views: new Set(["chain.deposit_facts", "ledger.balances"]),
    };
    const files: SourceText[] = [
      { path: "ledger/v.ts", text: 'export const q = "SELECT * FROM chain.deposit_facts";\n' },
      { path: "api/v.ts", text: 'export const q = "SELECT * FROM chain.transfers";\n' },
      { path: "indexers/v.ts", text: 'export const q = "SELECT * FROM ledger.balances";\n' },
      { path: "ledger/recon/v.ts", text: 'export const q = "SELECT * FROM ledger.balances";\n' },
    ];
    expect(checkLayering(files, withViews).map(violationKey)).toEqual([
      "schema: api/v.ts names chain.",
      "schema: indexers/v.ts names ledger.",
    ]);
    expect(
      checkLayering(files, { ...rules, views: new Set<string>() }).map(violationKey),
    ).toContain("schema: ledger/v.ts names chain.");
  });

  it("refuses a doc without its blocks", () => {
    expect(() => parseRules("# nothing here\n")).toThrow(/layers/);
  });
});
