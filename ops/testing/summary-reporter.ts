import type { Reporter, TestModule } from "vitest/node";

/** How many of the slowest files the summary names (where the suite's time goes). */
const SLOWEST = 10;

/**
 * Prints the slowest test files (import plus tests and hooks, seconds) and one plain closing line,
 * `tests: N passed, N failed, N skipped`, that any CI can read.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
  ): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    for (const mod of testModules) {
      if (mod.state() === "failed" && [...mod.children.allTests()].length === 0) failed++;
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
    }
    const slowest = testModules
      .map((mod) => {
        const d = mod.diagnostic();
        return { file: mod.relativeModuleId, s: (d.collectDuration + d.duration) / 1000 };
      })
      .sort((a, b) => b.s - a.s)
      .slice(0, SLOWEST);
    if (slowest.length > 1) {
      process.stdout.write(`\nslowest files (import + tests and hooks):\n`);
      for (const { file, s } of slowest)
        process.stdout.write(`  ${s.toFixed(1).padStart(6)} s  ${file}\n`);
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
