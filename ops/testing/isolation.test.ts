import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../foundation/config.js";

/**
 * Both projects run without isolation (vitest.config.ts `isolate: false`): a worker process runs
 * its files one after another on one module cache, so what one file changes in the process stays
 * for the next. These are the changes that would: a mocked or spied module, fake timers, a stubbed
 * global, an environment variable set or deleted.
 */
const LEAKS: { what: string; pattern: RegExp }[] = [
  {
    // vi.stubEnv is not one: vitest undoes it after each test (vitest.config.ts `unstubEnvs`).
    what: "a vi mock, spy, stub or fake timers",
    pattern: /\bvi\.(mock|doMock|spyOn|stubGlobal|useFakeTimers)\s*\(/,
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

/**
 * Every test file of both projects (vitest.config.ts `include`) and every test helper (a `testing/`
 * folder's modules), but this file, whose checks name the patterns.
 */
function sharedProcessFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const rel = path.relative(repoRoot, full);
        if (
          rel !== "ops/testing/isolation.test.ts" &&
          (rel.endsWith(".test.ts") || (rel.includes("/testing/") && rel.endsWith(".ts")))
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

describe("test files share a worker process", () => {
  it("no test file or test helper changes the process for the files after it", () => {
    const files = sharedProcessFiles();
    expect(files.length).toBeGreaterThan(350);
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
    // vitest undoes a stubbed variable after each test (`unstubEnvs`); reading is fine.
    expect(leaksIn('vi.stubEnv("AWS_ACCESS_KEY_ID", "x");')).toEqual([]);
    expect(leaksIn('if (process.env.CI === "1") url = process.env.DATABASE_URL ?? url;')).toEqual(
      [],
    );
    expect(leaksIn("spawn(cmd, { env: { ...process.env, PORT: '0' } });")).toEqual([]);
  });
});
