/**
 * What the README and docs/ (runbooks above all) tell someone to run or read exists: every
 * `custody-node …` command, with the options the doc gives it (and, for a whole command line, the
 * options it must have); every `npm run` script; every `custody_*` metric. An operator paged at
 * night runs what the runbook says, and a command or metric renamed in code must take its docs
 * with it. The CLI's commands and help come from one child process (ops/testing/cliTree.ts, as
 * ops/commands.test.ts reads them); the rest are plain file reads.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../foundation/config.js";
import { readSources } from "./layering.js";
import type { CliTree } from "./testing/cliTree.js";
import { tsNodeArgs } from "./testing/process.js";

/**
 * A command of the CLI as its help shows it. A group (`ledger withdrawal-blocks`) only prints its
 * help: what it lists is under its subcommands.
 */
type CliCommand = {
  path: string;
  takesArguments: boolean;
  group: boolean;
  options: Set<string>;
  required: string[];
};

/** The commands of the full CLI by path ("custody-node chains resume"), from their help. */
function cliCommands(tree: CliTree): Map<string, CliCommand> {
  const commands = new Map<string, CliCommand>();
  for (const entry of tree.help) {
    const [at = "", ...lines] = entry.split("\n");
    const usage = lines.find((l) => l.startsWith("Usage: ")) ?? "";
    const options = new Set(["--help"]);
    for (const l of lines) {
      const m = /^\s+(?:-[a-zA-Z], )?(--[a-z0-9-]+)/.exec(l);
      if (m) options.add(m[1] as string);
    }
    commands.set(at, {
      path: at,
      takesArguments: /<|\[(?!options\]|command\])/.test(usage),
      group: lines.includes("Commands:"),
      options,
      required: tree.requiredOptions[at] ?? [],
    });
  }
  return commands;
}

/** The docs that tell people what to run. */
function docFiles(): string[] {
  const docs = readdirSync(path.join(repoRoot, "docs"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`);
  return ["README.md", ...docs].sort();
}

/**
 * The shell a doc shows: each fenced block's lines (a trailing `\` joins the next), then each
 * inline code span outside them (a span may wrap lines), comments (`# …`) cut off.
 */
function codeSnippets(markdown: string): string[] {
  const snippets: string[] = [];
  const prose = markdown.replace(/^ *```[^\n]*\n([\s\S]*?)^ *```/gm, (_, block: string) => {
    snippets.push(...block.replace(/\\\n/g, " ").split("\n"));
    return "";
  });
  for (const m of prose.matchAll(/`([^`]+)`/g))
    snippets.push((m[1] as string).replace(/\s+/g, " "));
  return snippets.map((s) => s.replace(/\s#\s.*$/, ""));
}

/** One `custody-node` invocation a doc shows: its words and the options given to it. */
type Invocation = {
  file: string;
  text: string;
  words: string[][];
  options: string[];
  /** Nothing follows the words (not even `…`): the doc says to run exactly this. */
  bare: boolean;
  /** Options given and no `…`: the doc shows a whole command line, to be run as it stands. */
  whole: boolean;
};

function invocations(file: string, markdown: string): Invocation[] {
  const out: Invocation[] = [];
  for (const snippet of codeSnippets(markdown)) {
    // `custody-node …`, `ops/bin/custody-node.js …`, and an ECS override's `"command":["…",…]`.
    const shown = [
      ...[...snippet.matchAll(/(?:^|[\s"'=(/])custody-node(?:\.js)?((?: +[^\s;&]+)*)/g)].map(
        (m) => m[1] as string,
      ),
      ...[...snippet.matchAll(/"command":\s*\[([^\]]*)\]/g)].map(
        (m) => ` ${(JSON.parse(`[${m[1]}]`) as string[]).join(" ")}`,
      ),
    ];
    for (const given of shown) {
      const tokens = given.trim().split(/ +/).filter(Boolean);
      const words: string[][] = [];
      let i = 0;
      // Command words; `fund|defund` and `fail/retry` name alternatives.
      for (; i < tokens.length; i++) {
        const t = tokens[i] as string;
        if (!/^[a-z][a-z0-9-]*(?:[|/][a-z][a-z0-9-]*)*$/.test(t)) break;
        words.push(t.split(/[|/]/));
      }
      const options = tokens
        .slice(i)
        .map((t) => /^\[?(--[a-z0-9-]+)/.exec(t)?.[1])
        .filter((o): o is string => o !== undefined);
      out.push({
        file,
        text: `custody-node${given}`.trim(),
        words,
        options,
        bare: i === tokens.length,
        whole: options.length > 0 && !tokens.includes("…"),
      });
    }
  }
  return out;
}

/**
 * What is wrong with an invocation against the CLI: a word that is no subcommand where the command
 * takes no argument, an option the command does not have, a group run as it is (it prints help),
 * or a whole command line without an option the command requires. The words expand to every path
 * their alternatives name, and each must hold.
 */
function problems(inv: Invocation, commands: Map<string, CliCommand>): string[] {
  const out: string[] = [];
  let paths: string[][] = [[]];
  for (const alternatives of inv.words)
    paths = paths.flatMap((p) => alternatives.map((w) => [...p, w]));
  for (const words of paths) {
    let at = commands.get("custody-node") as CliCommand;
    for (const w of words) {
      const next = commands.get(`${at.path} ${w}`);
      if (next) {
        at = next;
        continue;
      }
      // A word after a command that takes arguments is its argument (`chains resume local-a`).
      if (!at.takesArguments) out.push(`\`${at.path} ${w}\`: no such command`);
      break;
    }
    if (inv.bare && words.length > 0 && at.group && at.path.endsWith(` ${words.at(-1)}`))
      out.push(`\`${at.path}\` is a group: name one of its commands`);
    for (const o of inv.options)
      if (!at.options.has(o)) out.push(`\`${at.path}\` has no option ${o}`);
    if (inv.whole)
      for (const o of at.required)
        if (!inv.options.includes(o))
          out.push(`\`${at.path}\` needs ${o}, which the doc leaves out`);
  }
  return [...new Set(out)].map((p) => `${inv.file}: ${inv.text}\n    ${p}`);
}

describe("what the README and docs tell operators to run and read", () => {
  let commands: Map<string, CliCommand>;
  let found: Invocation[];
  // One CLI start's worth of imports: seconds, more on a loaded CI machine.
  beforeAll(async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      tsNodeArgs("ops/testing/cliTree.ts"),
      { cwd: repoRoot, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
    );
    commands = cliCommands(JSON.parse(stdout) as CliTree);
    found = docFiles().flatMap((f) => invocations(f, readFileSync(path.join(repoRoot, f), "utf8")));
  }, 120_000);

  it("reads the CLI and the docs", () => {
    // A parser that finds nothing would check nothing.
    expect(commands.get("custody-node chains resume")?.options.has("--accept-reorg")).toBe(true);
    expect(commands.get("custody-node chains resume")?.takesArguments).toBe(true);
    expect(commands.get("custody-node tx-requests review")?.takesArguments).toBe(false);
    const runbooks = found.filter((i) => i.file.startsWith("docs/runbooks/"));
    expect(runbooks.length).toBeGreaterThan(40);
    expect(found.some((i) => i.text.startsWith("custody-node treasury fund --chain"))).toBe(true);
  });

  it("each custody-node command exists, with the options the doc gives it", () => {
    expect(found.flatMap((i) => problems(i, commands))).toEqual([]);
  });

  it("each `npm run <script>` they name is a script of its package", () => {
    const scripts = (dir: string): Set<string> =>
      new Set(
        Object.keys(
          (
            JSON.parse(readFileSync(path.join(repoRoot, dir, "package.json"), "utf8")) as {
              scripts: Record<string, string>;
            }
          ).scripts,
        ),
      );
    const packages = new Map([
      [".", scripts(".")],
      ["subgraphs", scripts("subgraphs")],
    ]);
    const named: string[] = [];
    const unknown: string[] = [];
    for (const file of docFiles())
      for (const snippet of codeSnippets(readFileSync(path.join(repoRoot, file), "utf8")))
        for (const m of snippet.matchAll(/\bnpm (?:--prefix (\S+) )?run ([a-z][a-z0-9:-]*)/g)) {
          const dir = m[1] ?? ".";
          named.push(`${dir}:${m[2]}`);
          if (!packages.get(dir)?.has(m[2] as string)) unknown.push(`${file}: ${m[0]}`);
        }
    expect(named.length).toBeGreaterThan(10);
    expect(unknown).toEqual([]);
  });

  it("each `custody_*` metric they name is one the production code registers", () => {
    const sources = readSources(repoRoot).map((f) => f.text);
    // A histogram's series are its name plus _count, _sum or _bucket.
    const metricOf = (word: string) => word.replace(/_(count|sum|bucket)$/, "");
    const named = new Set<string>();
    // docs/scale.md is a benchmark's notes: its custody_bench_* are scratch databases.
    for (const file of docFiles().filter((f) => f !== "docs/scale.md"))
      for (const m of readFileSync(path.join(repoRoot, file), "utf8").matchAll(
        /(?<![./])\bcustody_[a-z0-9_]*[a-z0-9]\b/g,
      ))
        named.add(metricOf(m[0]));
    expect(named.size).toBeGreaterThan(30);
    // Metric names are spelled out where they are registered; the demo's database, at the end of
    // its URL. (Tables, `schema.custody_…`, are left out above.)
    const unknown = [...named].filter(
      (n) => !sources.some((t) => t.includes(`"${n}"`) || t.includes(`/${n}"`)),
    );
    expect(unknown).toEqual([]);
  });

  it("the command check catches what does not exist, a bare group and a missing option", () => {
    const doc = (markdown: string): string[] =>
      invocations("(example)", markdown).flatMap((i) => problems(i, commands));
    expect(doc("`custody-node chains halted --json`")).toEqual([]);
    expect(
      doc("`custody-node treasury …` and `custody-node ledger withdrawal-blocks list`"),
    ).toEqual([]);
    for (const bad of [
      "`custody-node chain halted`",
      "`custody-node chains unhalt <chain>`",
      "`custody-node chains resume <chain> --force`",
      "```sh\nnpx custody-node recon breaks list \\\n  --chains a\n```",
      "`custody-node treasury fund|refund --chain <c>`",
      "`custody-node ledger withdrawal-blocks`",
      '`custody-node recon breaks resolve <break> --by <you> --reason "<what was done>"`',
      "```sh\nnode ops/bin/custody-node.js start --role api\n```",
      '`--overrides \'{"containerOverrides":[{"name":"app","command":["chains","unhalt"]}]}\'`',
    ])
      expect(doc(bad), bad).not.toEqual([]);
  });
});
