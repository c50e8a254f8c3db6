/**
 * `npm run bench` runs every benchmark; `npm run bench -- NAME [NAME…]` runs the named ones.
 * A benchmark is a file `NAME.bench.ts` anywhere in the tree, run as its own process; it prints its
 * workload and machine, then figures one per line as `label: value unit`.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../foundation/config.js";
import { tsNodeArgs } from "../testing/process.js";

const SKIP = new Set(["node_modules", ".git", ".dev", "generated", "build", ".ponder"]);

export function findBenchmarks(dir = repoRoot): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) for (const [k, v] of findBenchmarks(full)) found.set(k, v);
    else if (entry.name.endsWith(".bench.ts"))
      found.set(entry.name.slice(0, -".bench.ts".length), full);
  }
  return found;
}

const all = findBenchmarks();
/** Benchmarks that run only when named (they seed a large database of their own first). */
const NAMED_ONLY = new Map([["scale", path.join(repoRoot, "ops", "bench", "scale.ts")]]);
for (const [k, v] of NAMED_ONLY) all.set(k, v);
const wanted = process.argv.slice(2).filter((a) => a !== "--");
const unknown = wanted.filter((w) => !all.has(w));
if (unknown.length > 0) {
  console.error(
    `unknown benchmark(s): ${unknown.join(", ")}; available: ${[...all.keys()].sort().join(", ")}`,
  );
  process.exit(2);
}
const names = wanted.length > 0 ? wanted : [...all.keys()].filter((k) => !NAMED_ONLY.has(k)).sort();
let failed = 0;
for (const name of names) {
  const file = all.get(name)!;
  console.log(`\n== bench ${name} (${path.relative(repoRoot, file)})`);
  const result = spawnSync(process.execPath, tsNodeArgs(file), {
    stdio: "inherit",
    cwd: repoRoot,
  });
  if (result.status !== 0) {
    failed++;
    console.error(`bench ${name} failed with exit code ${result.status}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
