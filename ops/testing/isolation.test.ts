import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";

/**
 * The integration project runs without isolation (vitest.config.ts `isolate: false`): a worker
 * process runs its files one after another on one module cache, so what one file changes in the
 * process stays for the next. These are the changes that would: a mocked or spied module, fake
 * timers, a stubbed global, an environment variable set or deleted.
 */
const LEAKS: { what: string; pattern: RegExp }[] = [
  {
    what: "a vi mock, spy, stub or fake timers",
    pattern: /\bvi\.(mock|doMock|spyOn|stubEnv|stubGlobal|useFakeTimers)\s*\(/,
  },
  {
    what: "process.env assigned",
    pattern: /process\.env(\.\w+|\[[^\]]+\])\s*(=(?!=)|\?\?=|\|\|=)/,
  },
  { what: "process.env deleted", pattern: /delete\s+process\.env\b/ },
  {
    what: "process.env replaced",
    pattern: /process\.env\s*=(?!=)|Object\.assign\(\s*process\.env\b/,
  },
];

const TOP = ["api", "chains", "foundation", "indexers", "ledger", "ops", "signer", "subgraphs"];

/** The files of the integration project (vitest.config.ts `include`) and the helpers in ops/testing. */
function integrationFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const rel = path.relative(repoRoot, full);
        if (
          rel.endsWith(".integration.test.ts") ||
          (rel.startsWith("ops/e2e/") && rel.endsWith(".test.ts")) ||
          (rel.startsWith("ops/testing/") && rel.endsWith(".ts") && !rel.endsWith(".test.ts"))
        )
          out.push(rel);
      }
    }
  };
  for (const top of TOP) walk(path.join(repoRoot, top));
  return out.sort();
}

function leaksIn(source: string): string[] {
  return LEAKS.filter((l) => l.pattern.test(source)).map((l) => l.what);
}

describe("integration files share a worker process", () => {
  it("no integration file or test helper changes the process for the files after it", () => {
    const files = integrationFiles();
    expect(files.length).toBeGreaterThan(100);
    const found = files
      .map((file) => ({ file, leaks: leaksIn(readFileSync(path.join(repoRoot, file), "utf8")) }))
      .filter((f) => f.leaks.length > 0);
    expect(found).toEqual([]);
  });

  it("the check sees each kind of change", () => {
    expect(leaksIn('vi.mock("../db.js", () => ({}));')).toEqual([
      "a vi mock, spy, stub or fake timers",
    ]);
    expect(leaksIn("const s = vi.spyOn(console, 'log');")).toHaveLength(1);
    expect(leaksIn("vi.useFakeTimers();")).toHaveLength(1);
    expect(leaksIn('process.env.KMS_EMULATOR = "1";')).toEqual(["process.env assigned"]);
    expect(leaksIn('process.env["REDIS_PREFIX"] ??= "x";')).toEqual(["process.env assigned"]);
    expect(leaksIn("delete process.env.KMS_EMULATOR;")).toEqual(["process.env deleted"]);
    expect(leaksIn("Object.assign(process.env, extra);")).toEqual(["process.env replaced"]);
    // Reading is fine.
    expect(leaksIn('if (process.env.CI === "1") url = process.env.DATABASE_URL ?? url;')).toEqual(
      [],
    );
    expect(leaksIn("spawn(cmd, { env: { ...process.env, PORT: '0' } });")).toEqual([]);
  });
});
