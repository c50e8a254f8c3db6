/**
 * The CLI registers only the module commands a run needs (ops/commands.ts): MODULE_COMMANDS must
 * name exactly what each module registers, and a command built alone must be the command built
 * with every other (same options, subcommands and help), or a run would differ from `--help`.
 */
import { Command } from "commander";
import { beforeAll, describe, expect, it } from "vitest";
import { buildCli } from "./cli.js";
import { MODULE_COMMANDS } from "./commands.js";

/** Every command's help under `c`, with its path: what a user can run and read. */
function helpTree(c: Command, at: string[] = []): string[] {
  const here = [...at, c.name()];
  return [
    `${here.join(" ")}\n${c.helpInformation()}`,
    ...c.commands.flatMap((sub) => helpTree(sub, here)),
  ];
}

const names = (program: Command) => program.commands.map((c) => c.name());

describe("CLI module commands", () => {
  let all: Command;
  beforeAll(async () => {
    // Imports every module's cli.ts (seconds on a loaded machine).
    all = await buildCli();
  });

  it("each entry names exactly the top-level commands its module registers", async () => {
    for (const m of MODULE_COMMANDS) {
      const program = new Command("custody-node");
      await m.register(program);
      expect([...new Set(names(program))].sort()).toEqual([...new Set(m.commands)].sort());
    }
  });

  it("without a command, or with one that is not a module's, every command is there", async () => {
    const listed = [...new Set(MODULE_COMMANDS.flatMap((m) => m.commands))];
    expect(names(all)).toEqual(["start", "migrate", "dev", ...listed]);
    for (const first of ["--help", "help", "bogus"])
      expect(helpTree(await buildCli(first))).toEqual(helpTree(all));
  });

  it("a command built alone is the same command as in the full CLI", async () => {
    for (const name of names(all)) {
      const alone = await buildCli(name);
      const command = alone.commands.find((c) => c.name() === name);
      expect(command, name).toBeDefined();
      expect(helpTree(command as Command)).toEqual(
        helpTree(all.commands.find((c) => c.name() === name) as Command),
      );
    }
  });

  it("start, migrate and dev load no module's commands", async () => {
    for (const name of ["start", "migrate", "dev"])
      expect(names(await buildCli(name))).toEqual(["start", "migrate", "dev"]);
  });
});
