/**
 * subgraphs/ is its own npm package (graph-cli and ponder must not enter the root node_modules), so
 * a fresh clone installs it separately. Tests that need it call `requireSubgraphsInstall()` first:
 * a missing install fails with the command that fixes it, never a skip.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const subgraphsRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const subgraphsBin = (name: string) =>
  path.join(subgraphsRoot, "node_modules", ".bin", name);

export function requireSubgraphsInstall(): void {
  const missing = ["graph", "ponder"].filter((bin) => !existsSync(subgraphsBin(bin)));
  if (missing.length > 0)
    throw new Error(
      `subgraphs/ is not installed (${missing.join(", ")} missing from subgraphs/node_modules/.bin): run \`npm ci --prefix subgraphs\` after the root \`npm ci\``,
    );
}
