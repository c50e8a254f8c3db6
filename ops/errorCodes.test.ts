/**
 * docs/errors.md against the codes the code raises: every code a BaseError (or a class extending
 * it) is built with in production code has a row, and every row names a code the production code
 * still has. api/errorStatus.test.ts checks the HTTP column for the codes the API maps; this checks
 * the CLI, signer, worker and log codes too. Pure file reads: the sources are parsed with the
 * TypeScript compiler, not run.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import { FAILURE_CODES } from "../ledger/types.js";
import { readSources, type SourceText } from "./layering.js";

const CODE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^[A-Z]{4,}$/;

/** The codes docs/errors.md has a row for. */
function documentedCodes(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1] as string));
}

const parse = (file: SourceText) =>
  ts.createSourceFile(file.path, file.text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);

/** Names of the classes that extend BaseError, directly or through another such class. */
function errorClasses(files: readonly ts.SourceFile[]): Set<string> {
  const parents = new Map<string, string>();
  const visit = (node: ts.Node): void => {
    if (ts.isClassDeclaration(node) && node.name) {
      const base = node.heritageClauses
        ?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword)
        ?.types[0]?.expression.getText();
      if (base) parents.set(node.name.text, base);
    }
    ts.forEachChild(node, visit);
  };
  for (const f of files) visit(f);
  const classes = new Set(["BaseError"]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [name, base] of parents)
      if (!classes.has(name) && classes.has(base)) {
        classes.add(name);
        grew = true;
      }
  }
  return classes;
}

/** The code-like string literals an expression can evaluate to (`cond ? "A" : "B"` gives both). */
function literalCodes(e: ts.Expression): string[] {
  if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e))
    return CODE.test(e.text) ? [e.text] : [];
  if (ts.isConditionalExpression(e))
    return [...literalCodes(e.whenTrue), ...literalCodes(e.whenFalse)];
  if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e)) return literalCodes(e.expression);
  return [];
}

/**
 * The codes errors are built with: in `new X(…)` of an error class and in `super(…)` of one, each
 * code-like literal argument (`new InvalidFieldError("AMOUNT_INVALID", …)`) and the `code` of an
 * options object (`{ code: "RECON_LOCK_LOST" }`), with the file that builds it.
 */
function raisedCodes(files: readonly ts.SourceFile[]): Map<string, string> {
  const classes = errorClasses(files);
  const codes = new Map<string, string>();
  const fromArguments = (args: readonly ts.Expression[], file: string) => {
    for (const a of args) {
      const found = ts.isObjectLiteralExpression(a)
        ? a.properties.flatMap((p) =>
            ts.isPropertyAssignment(p) && p.name.getText() === "code"
              ? literalCodes(p.initializer)
              : [],
          )
        : literalCodes(a);
      for (const c of found) if (!codes.has(c)) codes.set(c, file);
    }
  };
  for (const f of files) {
    let inErrorClass = false;
    const visit = (node: ts.Node): void => {
      if (ts.isClassDeclaration(node)) {
        const outer = inErrorClass;
        inErrorClass = node.name !== undefined && classes.has(node.name.text);
        ts.forEachChild(node, visit);
        inErrorClass = outer;
        return;
      }
      if (ts.isNewExpression(node) && classes.has(node.expression.getText()))
        fromArguments(node.arguments ?? [], f.fileName);
      if (
        inErrorClass &&
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.SuperKeyword
      )
        fromArguments(node.arguments, f.fileName);
      ts.forEachChild(node, visit);
    };
    visit(f);
  }
  return codes;
}

/** Every string the production code spells out (literals and the text of template literals). */
function sourceStrings(files: readonly ts.SourceFile[]): Set<string> {
  const strings = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) strings.add(node.text);
    ts.forEachChild(node, visit);
  };
  for (const f of files) visit(f);
  return strings;
}

describe("docs/errors.md and the codes the code raises", () => {
  let files: ts.SourceFile[];
  let documented: Set<string>;
  let raised: Map<string, string>;
  beforeAll(() => {
    files = readSources(repoRoot).map(parse);
    documented = documentedCodes(readFileSync(path.join(repoRoot, "docs", "errors.md"), "utf8"));
    raised = raisedCodes(files);
    // The ledger's failure codes reach TransferFailedError as a value, not a literal.
    for (const c of FAILURE_CODES) if (!raised.has(c)) raised.set(c, "ledger/types.ts");
  });

  it("reads the doc and the code", () => {
    // A parser that finds nothing would check nothing.
    expect(documented.size).toBeGreaterThan(90);
    expect(raised.size).toBeGreaterThan(60);
    // `{ code: "…" }` in a subclass's super(), a code argument, and a BaseError built directly.
    expect(raised.get("SIGNER_REQUEST_NOT_REVIEWABLE")).toBe("signer/errors.ts");
    expect(raised.get("AMOUNT_INVALID")).toBe("api/withdrawals/validate.ts");
    expect(raised.get("WITHDRAWAL_RELEASE_REFUSED")).toBe("api/withdrawals/follow.ts");
  });

  it("every code an error is built with has a row", () => {
    const missing = [...raised]
      .filter(([code]) => !documented.has(code))
      .map(([code, file]) => `${code} (${file})`);
    expect(missing).toEqual([]);
  });

  it("every row names a code the production code still has", () => {
    // Each code-like word of every string (`OPERATOR_FAILED: ${reason}` gives OPERATOR_FAILED).
    const words = new Set([...sourceStrings(files)].flatMap((s) => s.split(/[^A-Z0-9_]+/)));
    const inCode = (code: string) => words.has(code);
    expect([...documented].filter((code) => !inCode(code))).toEqual([]);
  });

  it("the check sees a code built without a row", () => {
    const file = ts.createSourceFile(
      "x.ts",
      `class StuckError extends BaseError { constructor() { super("m", { code: c ? "X_ONE" : "X_TWO" }); } }
       new BaseError("m", { code: "X_THREE" }); new StuckError(); new StuckError("X_FOUR");`,
      ts.ScriptTarget.Latest,
      true,
    );
    expect([...raisedCodes([file]).keys()].sort()).toEqual(["X_FOUR", "X_ONE", "X_THREE", "X_TWO"]);
  });
});
