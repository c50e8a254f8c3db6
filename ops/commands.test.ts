/**
 * The CLI registers only the module commands a run needs (ops/commands.ts): MODULE_COMMANDS must
 * name exactly what each module registers, and a command built alone must be the command built
 * with every other (same options, subcommands and help), or a run would differ from `--help`.
 * The trees come from one child process (ops/testing/cliTree.ts): it imports every module.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import type { CliTree } from "./testing/cliTree.js";
import { tsNodeArgs } from "./testing/process.js";

describe("CLI module commands", () => {
  let tree: CliTree;
  // One CLI start's worth of imports: seconds, more on a loaded CI machine.
  beforeAll(async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      tsNodeArgs("ops/testing/cliTree.ts"),
      { cwd: repoRoot, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
    );
    tree = JSON.parse(stdout) as CliTree;
  }, 120_000);

  it("each entry names exactly the top-level commands its module registers", () => {
    expect(tree.modules.length).toBeGreaterThan(0);
    for (const m of tree.modules)
      expect([...new Set(m.registered)].sort()).toEqual([...new Set(m.listed)].sort());
  });

  it("without a command, or with one that is not a module's, every command is there", () => {
    const listed = [...new Set(tree.modules.flatMap((m) => m.listed))];
    expect(tree.names).toEqual(["start", "migrate", "dev", ...listed]);
    for (const first of ["--help", "help", "bogus"])
      expect(tree.built[first]?.help, first).toEqual(tree.help);
  });

  it("a command built alone is the same command as in the full CLI", () => {
    for (const name of tree.names) {
      const alone = tree.built[name]?.command;
      expect(alone, name).toBeTruthy();
      expect(alone).toEqual(tree.built["--help"]?.help.filter((h) => isUnder(h, name)));
    }
  });

  it("start, migrate and dev load no module's commands", () => {
    for (const name of ["start", "migrate", "dev"])
      expect(tree.built[name]?.names).toEqual(["start", "migrate", "dev"]);
  });
});

/** True when a help entry (its first line is the command's path) is `name` or under it. */
function isUnder(entry: string, name: string): boolean {
  const at = entry.slice(0, entry.indexOf("\n"));
  return at === `custody-node ${name}` || at.startsWith(`custody-node ${name} `);
}
