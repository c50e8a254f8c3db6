#!/usr/bin/env node
// The `custody-node` command. It runs the compiled JavaScript in dist/ (`npm run build`; the
// Docker image has only that). Without a build, or when a TypeScript source file is newer than the
// build, it runs the source (./ts-source.js: Node 24's own type stripping, tsx on an older Node;
// dev and tests: an edit is never shadowed by a stale dist/). CUSTODY_NODE_FROM_SOURCE=1 forces
// the source.
import { existsSync, readdirSync, statSync } from "node:fs";
import module from "node:module";

// V8 keeps compiled code on disk between runs (NODE_COMPILE_CACHE sets where; the image warms it).
module.enableCompileCache?.();

const root = new URL("../../", import.meta.url);
const stamp = new URL("dist/.build-stamp", root);

/** True when some .ts under the source folders is newer than the build (a dev tree, not an image). */
function sourceNewerThan(mtimeMs) {
  for (const dir of ["api", "chains", "foundation", "indexers", "ledger", "ops", "signer"]) {
    const base = new URL(`${dir}/`, root);
    if (!existsSync(base)) continue;
    for (const entry of readdirSync(base, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith(".ts")) continue;
      if (statSync(`${entry.parentPath}/${entry.name}`).mtimeMs > mtimeMs) return true;
    }
  }
  return false;
}

const useBuild =
  process.env.CUSTODY_NODE_FROM_SOURCE !== "1" &&
  existsSync(stamp) &&
  !sourceNewerThan(statSync(stamp).mtimeMs);

let cli;
if (useBuild) {
  cli = await import(new URL("dist/ops/cli.js", root).href);
} else {
  // Node's own type stripping where it has it, else tsx (ts-source.js).
  await import("./ts-source.js");
  cli = await import("../cli.ts");
}
await cli.main(process.argv);
