/**
 * The layering check (issue 16): reads every production file's imports and reports what breaks the
 * rules written in docs/architecture.md. Pure functions over { path, text } pairs, so the test can
 * run them on the tree and on planted fixtures alike; `readSources` is the only file-system reader.
 *
 * What it reports (`Violation.kind`):
 * - `direction`: a production file imports a module its layer may not import (the doc's `layers` block);
 * - `cycle`: production files that import each other in a circle (type-only imports count);
 * - `test-support`: a production file imports test support (a `testing/` folder, a test, a bench,
 *   ops/e2e, ops/sim, ops/bench, ops/infra);
 * - `rpc-client`: a viem client or transport constructor used outside chains/ (imported as a value,
 *   re-exported, or called through a namespace import);
 * - `schema`: SQL naming a Postgres schema outside the folder that owns it (the doc's `schemas` block),
 *   except a view the owner publishes (the `views` block) read from a layer that may import the owner.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

export type SourceText = { path: string; text: string };

export type Violation =
  | { kind: "direction"; file: string; target: string; from: string; to: string }
  | { kind: "cycle"; files: string[] }
  | { kind: "test-support"; file: string; target: string }
  | { kind: "rpc-client"; file: string; name: string }
  | { kind: "schema"; file: string; schema: string };

export type Rules = {
  /** Module -> the modules its production files may import ("*": any). */
  layers: Map<string, Set<string> | "*">;
  /** Postgres schema -> the folder that owns it (e.g. "recon" -> "ledger/recon"). */
  schemas: Map<string, string>;
  /**
   * The views an owner publishes for other modules to read ("chain.deposit_facts"): naming one is
   * allowed wherever the reader's layer may import the owner's module.
   */
  views: Set<string>;
};

/** The folders whose production files are checked (subgraphs/custody is AssemblyScript). */
export const SOURCE_ROOTS = [
  "api",
  "chains",
  "foundation",
  "indexers",
  "ledger",
  "signer",
  "ops",
  "subgraphs/ponder",
] as const;

/** Folders never read: dependencies and generated output. */
const SKIP_DIRS = new Set(["node_modules", "generated", "build", "dist", ".ponder"]);

/**
 * Test support and tooling, never shipped: the same set tsconfig.build.json excludes from the build
 * (tests, benches, `testing/` folders, ops/e2e, ops/bench, ops/sim, ops/infra).
 */
const NOT_PRODUCTION =
  /(\.test\.ts|\.bench\.ts|\.scale\.ts)$|(^|\/)testing\/|^ops\/(e2e|bench|sim|infra)\//;

export function isProduction(file: string): boolean {
  return !NOT_PRODUCTION.test(file);
}

/** The layer a repo-relative path belongs to: its top-level folder ("subgraphs/ponder/x.ts" -> "subgraphs"). */
export function moduleOf(file: string): string {
  const i = file.indexOf("/");
  return i < 0 ? "." : file.slice(0, i);
}

/**
 * Reads the machine-read blocks of docs/architecture.md (and a third, `views`, one published
 * `<schema>.<view>` per line):
 *
 *     ```layers                     ```schemas
 *     chains -> foundation          chain -> indexers
 *     ops -> *                      recon -> ledger/recon
 *     ```                           ```
 *
 * A `layers` line `a -> b, c` lets module a import b and c (and itself); `a ->` nothing else; a
 * module with no line may import nothing but itself. A `schemas` line names the folder owning a schema.
 */
export function parseRules(markdown: string): Rules {
  const block = (tag: string): string[] => {
    const m = new RegExp("^```" + tag + "[ \\t]*\\n([\\s\\S]*?)^```", "m").exec(markdown);
    if (!m) throw new Error(`docs/architecture.md has no \`\`\`${tag} block`);
    return m[1]!
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim())
      .filter((l) => l !== "");
  };
  const arrow = (line: string, tag: string): [string, string] => {
    const m = /^([\w/.-]+)\s*->\s*(.*)$/.exec(line);
    if (!m) throw new Error(`bad line in the ${tag} block: ${line}`);
    return [m[1]!, m[2]!.trim()];
  };
  const layers = new Map<string, Set<string> | "*">();
  for (const line of block("layers")) {
    const [from, to] = arrow(line, "layers");
    if (layers.has(from)) throw new Error(`layers block: ${from} listed twice`);
    layers.set(
      from,
      to === "*"
        ? "*"
        : new Set(
            to
              .split(",")
              .map((s) => s.trim())
              .filter((s) => s !== ""),
          ),
    );
  }
  const schemas = new Map<string, string>();
  for (const line of block("schemas")) {
    const [schema, owner] = arrow(line, "schemas");
    schemas.set(schema, owner.replace(/\/$/, ""));
  }
  const views = new Set<string>();
  for (const line of block("views")) {
    const name = line.split(/\s+/)[0]!;
    const m = /^([a-z_]+)\.([a-z_]+)$/.exec(name);
    if (!m || !schemas.has(m[1]!))
      throw new Error(
        `bad line in the views block (want <schema>.<view> of a listed schema): ${line}`,
      );
    views.add(name);
  }
  return { layers, schemas, views };
}

/** Every production .ts file under SOURCE_ROOTS, with repo-relative posix paths. */
export function readSources(root: string): SourceText[] {
  const out: SourceText[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) walk(p);
      } else if (e.isFile() && e.name.endsWith(".ts") && isProduction(p)) {
        out.push({ path: p, text: readFileSync(path.join(root, p), "utf8") });
      }
    }
  };
  for (const r of SOURCE_ROOTS) walk(r);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** viem's constructors of clients and transports: only chains/ calls them. */
const VIEM_BUILDERS = new Set([
  "createClient",
  "createPublicClient",
  "createWalletClient",
  "createTestClient",
  "http",
  "webSocket",
  "fallback",
  "custom",
  "ipc",
  // The JSON-RPC client http() is built on (chains/rpc.ts uses it for each endpoint).
  "getHttpRpcClient",
]);

/** A string is SQL if it has one of these (upper-case, as this repo writes SQL). */
const SQL_WORD =
  /\b(SELECT|INSERT|UPDATE|DELETE|FROM|JOIN|TRUNCATE|LOCK TABLE|ALTER TABLE|CREATE)\b/;

type Parsed = {
  imports: string[];
  viemBuilders: Set<string>;
  sqlTexts: string[];
};

function parse(file: SourceText): Parsed {
  const sf = ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, false);
  const imports: string[] = [];
  const sqlTexts: string[] = [];
  const viemBuilders = new Set<string>();
  const viemNamespaces = new Set<string>();
  const isViem = (spec: string) => spec === "viem" || spec.startsWith("viem/");

  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const spec = node.moduleSpecifier.text;
      imports.push(spec);
      // Importing (or re-exporting) a constructor as a value is using it: it may be called later or
      // handed on, so the import is what counts, not only a direct call.
      const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
      const typeOnly = clause ? clause.isTypeOnly : ts.isExportDeclaration(node) && node.isTypeOnly;
      const bindings = clause
        ? clause.namedBindings
        : ts.isExportDeclaration(node)
          ? node.exportClause
          : undefined;
      if (isViem(spec) && !typeOnly && bindings) {
        if (ts.isNamespaceImport(bindings)) viemNamespaces.add(bindings.name.text);
        if (ts.isNamedImports(bindings) || ts.isNamedExports(bindings)) {
          for (const el of bindings.elements) {
            const name = (el.propertyName ?? el.name).text;
            if (!el.isTypeOnly && VIEM_BUILDERS.has(name)) viemBuilders.add(name);
          }
        }
      }
      return;
    }
    if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteral(node.moduleReference.expression)
    ) {
      imports.push(node.moduleReference.expression.text);
    }
    if (ts.isCallExpression(node)) {
      const [arg] = node.arguments;
      if (
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        arg &&
        ts.isStringLiteralLike(arg)
      ) {
        imports.push(arg.text);
      }
      const callee = node.expression;
      if (
        ts.isPropertyAccessExpression(callee) &&
        ts.isIdentifier(callee.expression) &&
        viemNamespaces.has(callee.expression.text) &&
        VIEM_BUILDERS.has(callee.name.text)
      ) {
        viemBuilders.add(callee.name.text);
      }
    }
    if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      imports.push(node.argument.literal.text);
    }
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
      if (SQL_WORD.test(node.text)) sqlTexts.push(node.text);
    } else if (ts.isTemplateExpression(node)) {
      const text = [node.head.text, ...node.templateSpans.map((s) => s.literal.text)].join(" $x ");
      if (SQL_WORD.test(text)) sqlTexts.push(text);
      // The spans' own expressions may hold SQL too.
      for (const s of node.templateSpans) visit(s.expression);
      return;
    }
    ts.forEachChild(node, visit);
  };
  // A namespace import is seen before its calls: imports come first in this repo's files.
  visit(sf);
  return { imports, viemBuilders, sqlTexts };
}

/** Resolves a relative specifier to a repo-relative path (`.js` -> `.ts` when that file is known). */
function resolve(from: string, spec: string, known: Set<string>): string | undefined {
  if (!spec.startsWith(".")) return undefined;
  const p = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  for (const [js, t] of [
    [".js", ".ts"],
    [".mjs", ".mts"],
  ] as const) {
    if (p.endsWith(js)) {
      const asTs = p.slice(0, -js.length) + t;
      if (known.has(asTs) || !known.has(p)) return asTs;
    }
  }
  return p;
}

/** The folder owning a file's SQL: the longest owner folder containing it. */
function sqlOwner(file: string, owners: string[]): string | undefined {
  let best: string | undefined;
  for (const o of owners) {
    if (file.startsWith(`${o}/`) && (best === undefined || o.length > best.length)) best = o;
  }
  return best;
}

/** Every violation of the rules in the given production files, sorted by key. */
export function checkLayering(files: readonly SourceText[], rules: Rules): Violation[] {
  const known = new Set(files.map((f) => f.path));
  const owners = [...new Set(rules.schemas.values())];
  const schemaRe = new RegExp(`\\b(${[...rules.schemas.keys()].join("|")})\\.([a-z_]+)`, "g");
  const out: Violation[] = [];
  const edges = new Map<string, Set<string>>();

  for (const file of files) {
    const parsed = parse(file);
    const from = moduleOf(file.path);
    const allowed = rules.layers.get(from);
    const next = new Set<string>();
    edges.set(file.path, next);
    for (const spec of parsed.imports) {
      const target = resolve(file.path, spec, known);
      if (target === undefined) continue;
      if (!isProduction(target)) {
        out.push({ kind: "test-support", file: file.path, target });
        continue;
      }
      if (known.has(target)) next.add(target);
      const to = moduleOf(target);
      if (to === from || allowed === "*" || allowed?.has(to)) continue;
      out.push({ kind: "direction", file: file.path, target, from, to });
    }
    if (from !== "chains") {
      for (const name of parsed.viemBuilders)
        out.push({ kind: "rpc-client", file: file.path, name });
    }
    const owner = sqlOwner(file.path, owners);
    const named = new Set<string>();
    for (const sql of parsed.sqlTexts) {
      for (const m of sql.matchAll(schemaRe)) {
        // A published view is the owner's interface: readable from any layer that may import it.
        const viewOwner = rules.schemas.get(m[1]!)!.split("/")[0]!;
        const mayRead = viewOwner === from || allowed === "*" || allowed?.has(viewOwner);
        if (rules.views.has(`${m[1]}.${m[2]}`) && mayRead) continue;
        named.add(m[1]!);
      }
    }
    for (const schema of named) {
      if (rules.schemas.get(schema) !== owner)
        out.push({ kind: "schema", file: file.path, schema });
    }
  }

  for (const scc of stronglyConnected(edges)) {
    if (scc.length > 1 || edges.get(scc[0]!)?.has(scc[0]!)) {
      out.push({ kind: "cycle", files: [...scc].sort() });
    }
  }
  return dedupe(out);
}

/**
 * One stable line per violation, the form the test's list of known exceptions uses. A direction
 * is keyed by file and target module (a second import of the same module from the same file is
 * the same debt); a cycle by its files.
 */
export function violationKey(v: Violation): string {
  switch (v.kind) {
    case "direction":
      return `direction: ${v.file} -> ${v.to}`;
    case "cycle":
      return `cycle: ${v.files.join(" <-> ")}`;
    case "test-support":
      return `test-support: ${v.file} -> ${v.target}`;
    case "rpc-client":
      return `rpc-client: ${v.file} uses viem ${v.name}`;
    case "schema":
      return `schema: ${v.file} names ${v.schema}.`;
  }
}

function dedupe(vs: Violation[]): Violation[] {
  const byKey = new Map<string, Violation>();
  for (const v of vs) if (!byKey.has(violationKey(v))) byKey.set(violationKey(v), v);
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

/** Tarjan's strongly connected components (iterative, so a deep import chain cannot overflow). */
function stronglyConnected(edges: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  for (const root of edges.keys()) {
    if (index.has(root)) continue;
    const work: { node: string; it: Iterator<string> }[] = [];
    const enter = (n: string) => {
      index.set(n, counter);
      low.set(n, counter);
      counter++;
      stack.push(n);
      onStack.add(n);
      work.push({ node: n, it: (edges.get(n) ?? new Set<string>()).values() });
    };
    enter(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const step = top.it.next();
      if (!step.done) {
        const w = step.value;
        if (!edges.has(w)) continue;
        if (!index.has(w)) enter(w);
        else if (onStack.has(w)) low.set(top.node, Math.min(low.get(top.node)!, index.get(w)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!));
      if (low.get(top.node) === index.get(top.node)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== top.node);
        out.push(scc);
      }
    }
  }
  return out;
}
