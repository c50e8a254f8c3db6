/**
 * Runs once before the test projects: `npm test` on a fresh clone needs subgraphs/ installed (its
 * own npm package: graph-cli and Ponder stay out of the root node_modules). `.ci/run` installs it
 * explicitly; here a missing install is done the same way, so the README's `npm ci` then `npm test`
 * holds. A failed install fails the run with npm's output.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../config.js";

export default function setup(): void {
  const bin = (name: string) => path.join(repoRoot, "subgraphs", "node_modules", ".bin", name);
  if (["graph", "ponder"].every((name) => existsSync(bin(name)))) return;
  console.log("subgraphs/ is not installed: running npm ci --prefix subgraphs (once)");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const result = spawnSync(npm, ["ci", "--prefix", "subgraphs", "--no-audit", "--no-fund"], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (result.status !== 0)
    throw new Error(`npm ci --prefix subgraphs failed (exit ${result.status ?? result.signal})`);
}
