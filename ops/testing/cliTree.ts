/**
 * Prints, as JSON, the CLI's command trees that ops/commands.test.ts compares: the full CLI, each
 * MODULE_COMMANDS entry registered alone, and the CLI built for each first argument. Run as its
 * own process (`node --import ./ops/bin/ts-source.js ops/testing/cliTree.ts`): importing every
 * module once costs a CPU-second or two there, through vitest's transform several times that.
 */
import { Command } from "commander";
import { buildCli } from "../cli.js";
import { MODULE_COMMANDS } from "../commands.js";

/** Every command's help under `c`, with its path: what a user can run and read. */
function helpTree(c: Command, at: string[] = []): string[] {
  const here = [...at, c.name()];
  return [
    `${here.join(" ")}\n${c.helpInformation()}`,
    ...c.commands.flatMap((sub) => helpTree(sub, here)),
  ];
}

const names = (program: Command) => program.commands.map((c) => c.name());

export type CliTree = {
  /** Top-level command names of the full CLI, in help order. */
  names: string[];
  /** helpTree of the full CLI. */
  help: string[];
  /** Per command path of the full CLI, the options a run must give (help does not mark them). */
  requiredOptions: Record<string, string[]>;
  /** Per MODULE_COMMANDS entry: what it says it registers, what it registered. */
  modules: { listed: string[]; registered: string[] }[];
  /** Per first argument: the top-level names of the CLI built for it, and its help tree. */
  built: Record<string, { names: string[]; help: string[]; command: string[] | null }>;
};

/** Each command's path under `c` and the long flags of its mandatory options. */
function requiredOptions(c: Command, at: string[] = []): [string, string[]][] {
  const here = [...at, c.name()];
  return [
    [here.join(" "), c.options.filter((o) => o.mandatory).map((o) => o.long ?? o.flags)],
    ...c.commands.flatMap((sub) => requiredOptions(sub, here)),
  ];
}

const all = await buildCli();
const tree: CliTree = {
  names: names(all),
  help: helpTree(all),
  requiredOptions: Object.fromEntries(requiredOptions(all)),
  modules: [],
  built: {},
};
for (const m of MODULE_COMMANDS) {
  const program = new Command("custody-node");
  await m.register(program);
  tree.modules.push({ listed: [...m.commands], registered: names(program) });
}
for (const first of [...names(all), "--help", "help", "bogus"]) {
  const program = await buildCli(first);
  const command = program.commands.find((c) => c.name() === first);
  tree.built[first] = {
    names: names(program),
    help: helpTree(program),
    command: command ? helpTree(command, [program.name()]) : null,
  };
}
process.stdout.write(JSON.stringify(tree));
