/**
 * The simulator's command line: `npm run sim -- <scenario> [--seeds N] [--seed S] [--from S]
 * [--trace] [--keep] [--log-level L]`. Runs seeds one after another (each in its own database,
 * Redis prefix and anvil), prints one line per seed, seeds/s, a summary of broken invariants, and
 * for every failing seed the exact command that replays it. Exits 1 when any seed failed.
 */
import { depositsScenario } from "./deposits.js";
import { createSimRun, type SimLogLevel } from "./harness.js";
import type { Scenario, SimResult } from "./scenario.js";
import { sweepsScenario } from "./sweeps.js";
import { withdrawalsScenario } from "./withdrawals.js";

export const scenarios: Record<string, Scenario> = {
  deposits: depositsScenario,
  withdrawals: withdrawalsScenario,
  sweeps: sweepsScenario,
};

export type SimArgs = {
  scenario: string;
  seeds: number[];
  trace: boolean;
  keep: boolean;
  logLevel: SimLogLevel;
};

const USAGE = `usage: npm run sim -- <scenario> [--seeds N] [--seed S] [--from S] [--trace] [--keep] [--log-level L]
  scenarios: deposits, withdrawals, sweeps
  --seeds N   run N seeds (default 1), starting at --from (default 1)
  --seed S    run only seed S (replay)
  --trace     print every step of the schedule
  --keep      keep a failing seed's database (its name is printed)`;

export function parseSimArgs(argv: readonly string[]): SimArgs {
  const [scenario, ...rest] = argv;
  if (!scenario || scenario.startsWith("-")) throw new Error(USAGE);
  let count = 1;
  let from = 1;
  let only: number | null = null;
  let trace = false;
  let keep = false;
  let logLevel: SimLogLevel = "silent";
  const int = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`${flag} needs a non-negative integer\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (flag === "--seeds") count = int(flag, rest[++i]);
    else if (flag === "--from") from = int(flag, rest[++i]);
    else if (flag === "--seed") only = int(flag, rest[++i]);
    else if (flag === "--trace") trace = true;
    else if (flag === "--keep") keep = true;
    else if (flag === "--log-level") logLevel = rest[++i] as SimLogLevel;
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  const seeds = only !== null ? [only] : Array.from({ length: count }, (_, i) => from + i);
  return { scenario, seeds, trace, keep, logLevel };
}

export function replayCommand(scenario: string, seed: number): string {
  return `npm run sim -- ${scenario} --seed ${seed} --trace`;
}

function formatStats(stats: SimResult["stats"]): string {
  return Object.entries(stats)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

/** Run the seeds of one scenario; returns the results (also printed through `print`). */
export async function runSeeds(
  args: SimArgs,
  print: (line: string) => void = (l) => console.log(l),
): Promise<SimResult[]> {
  const scenario = scenarios[args.scenario];
  if (!scenario)
    throw new Error(
      `unknown scenario ${args.scenario} (known: ${Object.keys(scenarios).join(", ")})`,
    );
  print(`sim ${scenario.name}: ${scenario.description}; ${args.seeds.length} seed(s)`);
  const run = await createSimRun({ logLevel: args.logLevel });
  // Ctrl-C: drop the template database; exiting kills this process's anvils (ops/devstack/anvil.ts).
  const interrupted = () => {
    print("interrupted: cleaning up");
    void run.close().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  const results: SimResult[] = [];
  const t0 = performance.now();
  try {
    for (const seed of args.seeds) {
      const result = await scenario.run(seed, run, {
        keepOnFailure: args.keep,
        ...(args.trace ? { trace: (l: string) => print(`  [${seed}] ${l}`) } : {}),
      });
      results.push(result);
      const status = result.violations.length === 0 ? "ok  " : "FAIL";
      print(
        `seed ${seed} ${status} ${(result.ms / 1000).toFixed(1)}s ${formatStats(result.stats)}`,
      );
      for (const v of result.violations) print(`  ✗ ${v.invariant}: ${v.detail}`);
      for (const n of result.notes) print(`  · ${n}`);
      if (result.violations.length > 0) print(`  replay: ${replayCommand(scenario.name, seed)}`);
    }
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    await run.close().catch(() => {});
  }
  const seconds = (performance.now() - t0) / 1000;
  const failed = results.filter((r) => r.violations.length > 0);
  print("");
  print(
    `${scenario.name}: ${results.length - failed.length}/${results.length} seeds passed in ${seconds.toFixed(1)} s (${(results.length / seconds).toFixed(2)} seeds/s)`,
  );
  const byInvariant = new Map<string, number[]>();
  for (const r of failed)
    for (const inv of new Set(r.violations.map((v) => v.invariant)))
      byInvariant.set(inv, [...(byInvariant.get(inv) ?? []), r.seed]);
  for (const [inv, seeds] of byInvariant)
    print(`  ${inv}: broken in ${seeds.length} seed(s): ${seeds.join(", ")}`);
  for (const r of failed) print(`  replay: ${replayCommand(scenario.name, r.seed)}`);
  return results;
}

const isMain = process.argv[1]?.endsWith("ops/sim/run.ts");
if (isMain) {
  let args: SimArgs;
  try {
    args = parseSimArgs(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  const results = await runSeeds(args);
  process.exit(results.some((r) => r.violations.length > 0) ? 1 : 0);
}
