/**
 * `npm run test:stress`: runs the integration suite (or the files given) N times on an idle machine
 * and N times with K CPU hogs beside it, and prints how many runs each file passed in each mode.
 * A flaky test shows up as a count below N; the exit code is 1 if any run of any file failed.
 *
 *   npm run test:stress                                    # whole integration suite, 3 + 3 runs, 2 hogs
 *   npm run test:stress -- --runs 10 indexers/crash.integration.test.ts
 *   npm run test:stress -- --runs 5 --hogs 4 --modes load signer/
 *
 * Options: --runs N (per mode, default 3), --hogs K (busy-loop processes in "load" mode, default 2),
 * --modes idle,load (default both), --project NAME (vitest project, default integration; "all" for
 * every project). Other arguments are vitest file filters.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { repoRoot } from "../../foundation/config.js";

type Mode = "idle" | "load";
type Options = { runs: number; hogs: number; modes: Mode[]; project: string; filters: string[] };

/** The slice of vitest's JSON report (jest-compatible) this script reads. */
type JsonReport = {
  testResults: { name: string; status: string; message?: string }[];
};

function parseArgs(argv: string[]): Options {
  const options: Options = {
    runs: 3,
    hogs: 2,
    modes: ["idle", "load"],
    project: "integration",
    filters: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--runs") options.runs = positiveInt(arg, value());
    else if (arg === "--hogs") options.hogs = positiveInt(arg, value(), true);
    else if (arg === "--project") options.project = value();
    else if (arg === "--modes") {
      const modes = value().split(",");
      if (modes.length === 0 || modes.some((m) => m !== "idle" && m !== "load"))
        throw new Error("--modes takes idle, load or idle,load");
      options.modes = modes as Mode[];
    } else if (arg.startsWith("--")) throw new Error(`unknown option ${arg}`);
    else options.filters.push(arg);
  }
  return options;
}

function positiveInt(name: string, raw: string, zeroOk = false): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < (zeroOk ? 0 : 1)) throw new Error(`${name} must be an integer`);
  return n;
}

/** K processes spinning a core each, until stopped. */
function startHogs(k: number): { stop: () => void } {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < k; i++)
    hogs.push(spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
  return {
    stop() {
      for (const h of hogs) h.kill("SIGKILL");
    },
  };
}

/** One vitest run; resolves with each file's status (relative path → passed). */
async function runOnce(
  options: Options,
  reportFile: string,
): Promise<{ files: Map<string, boolean>; code: number | null; seconds: number }> {
  const args = [
    path.join(repoRoot, "node_modules", "vitest", "vitest.mjs"),
    "run",
    ...(options.project === "all" ? [] : ["--project", options.project]),
    "--reporter=dot",
    "--reporter=json",
    `--outputFile.json=${reportFile}`,
    ...options.filters,
  ];
  const started = Date.now();
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    stdio: ["ignore", "inherit", "inherit"],
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  const files = new Map<string, boolean>();
  try {
    const report = JSON.parse(readFileSync(reportFile, "utf8")) as JsonReport;
    for (const r of report.testResults)
      files.set(path.relative(repoRoot, r.name), r.status === "passed");
  } catch {
    // No report: vitest itself failed (e.g. a config error); the run counts as failed below.
  }
  return { files, code, seconds: Math.round((Date.now() - started) / 1000) };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const dir = mkdtempSync(path.join(tmpdir(), "custody-stress-"));
  // file → mode → passes
  const passes = new Map<string, Record<Mode, number>>();
  const runsDone: Record<Mode, number> = { idle: 0, load: 0 };
  const broken: string[] = [];
  let hogs: { stop: () => void } | undefined;
  const stopHogs = () => {
    hogs?.stop();
    hogs = undefined;
  };
  process.once("SIGINT", () => {
    stopHogs();
    process.exit(130);
  });
  try {
    for (const mode of options.modes) {
      for (let run = 1; run <= options.runs; run++) {
        process.stdout.write(
          `\n== stress: ${mode} run ${run}/${options.runs}${mode === "load" ? ` (${options.hogs} CPU hogs)` : ""} ==\n`,
        );
        if (mode === "load") hogs = startHogs(options.hogs);
        let result: Awaited<ReturnType<typeof runOnce>>;
        try {
          result = await runOnce(options, path.join(dir, `${mode}-${run}.json`));
        } finally {
          stopHogs();
        }
        runsDone[mode]++;
        if (result.files.size === 0)
          broken.push(`${mode} run ${run}: vitest exited ${result.code} with no report`);
        for (const [file, ok] of result.files) {
          const counts = passes.get(file) ?? { idle: 0, load: 0 };
          if (ok) counts[mode]++;
          passes.set(file, counts);
        }
        process.stdout.write(
          `== ${mode} run ${run}: ${[...result.files.values()].filter(Boolean).length}/${result.files.size} files passed in ${result.seconds} s ==\n`,
        );
      }
    }
  } finally {
    stopHogs();
    rmSync(dir, { recursive: true, force: true });
  }

  const modes = options.modes;
  const width = Math.max(4, ...[...passes.keys()].map((f) => f.length));
  const header = `${"file".padEnd(width)}  ${modes.map((m) => `${m} (of ${runsDone[m]})`.padStart(14)).join("  ")}`;
  const lines = [...passes.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([file, counts]) => {
      const flaky = modes.some((m) => counts[m] < runsDone[m]);
      return `${file.padEnd(width)}  ${modes.map((m) => String(counts[m]).padStart(14)).join("  ")}${flaky ? "  <- failed in some run" : ""}`;
    });
  process.stdout.write(`\n${header}\n${lines.join("\n")}\n`);
  for (const b of broken) process.stdout.write(`${b}\n`);
  const failed =
    broken.length > 0 ||
    [...passes.values()].some((counts) => modes.some((m) => counts[m] < runsDone[m]));
  process.stdout.write(
    `\nstress: ${passes.size} files, ${failed ? "SOME RUNS FAILED" : "every run of every file passed"}\n`,
  );
  process.exitCode = failed ? 1 : 0;
}

await main();
