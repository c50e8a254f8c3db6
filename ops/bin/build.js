#!/usr/bin/env node
// `npm run build`: compile the TypeScript to dist/ (tsconfig.build.json), copy the files the
// program reads at run time (SQL migrations, the example config, contract artifacts, HTML) to the
// same relative paths, and stamp the build so ops/bin/custody-node.js can tell a stale dist/.
// Usage: node ops/bin/build.js [--out-dir <dir>]   (default: dist/ at the package root)
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const i = process.argv.indexOf("--out-dir");
const outDir = path.resolve(i > 0 ? process.argv[i + 1] : path.join(root, "dist"));

/** Source folders compiled into dist/ (tsconfig.build.json's include). */
export const SOURCE_DIRS = ["api", "chains", "foundation", "indexers", "ledger", "ops", "signer"];
/**
 * Run-time assets: copied beside the compiled code. Plain .js modules in the source (the proof
 * verifier shared with its HTML page) count too; tests, fixtures, these scripts and the CDK app
 * stay out.
 */
const ASSET =
  /(\/migrations\/[^/]+\.sql|\.html|\.css|\.js|^ops\/config\.example\.json|^chains\/contracts\/[^/]+\.json)$/;
const SKIP = /(^|\/)(node_modules|testing|fixtures|e2e|infra)(\/|$)|^ops\/bin\/|\.test\.js$/;

rmSync(outDir, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const compiled = spawnSync(
  process.execPath,
  [tsc, "-p", path.join(root, "tsconfig.build.json"), "--outDir", outDir],
  { stdio: "inherit" },
);
if (compiled.status !== 0) {
  console.error(`build: tsc failed (exit ${compiled.status ?? compiled.signal})`);
  process.exit(1);
}

let copied = 0;
for (const dir of SOURCE_DIRS) {
  for (const entry of readdirSync(path.join(root, dir), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const rel = path
      .relative(root, path.join(entry.parentPath, entry.name))
      .split(path.sep)
      .join("/");
    if (SKIP.test(rel) || !ASSET.test(rel)) continue;
    mkdirSync(path.dirname(path.join(outDir, rel)), { recursive: true });
    cpSync(path.join(root, rel), path.join(outDir, rel));
    copied++;
  }
}
writeFileSync(path.join(outDir, ".build-stamp"), `${new Date().toISOString()}\n`);
console.log(
  `build: compiled to ${path.relative(process.cwd(), outDir) || "."}, ${copied} asset file(s) copied`,
);
