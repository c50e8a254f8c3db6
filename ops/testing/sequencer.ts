import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Integration files that took half a minute or more on CI's 2 cores (the summary reporter's
 * "slowest files"), longest first: 138 s down to 31 s, a full run of 7 December 2026. Keep it
 * short: only files that would otherwise start late and finish alone.
 */
export const SLOW_FILES = [
  "ops/sim/withdrawals.integration.test.ts",
  "ops/sim/sweeps.integration.test.ts",
  "signer/deposit-addresses/deployFactory.integration.test.ts",
  "signer/killNine.integration.test.ts",
  "ops/sim/deposits.integration.test.ts",
  "ledger/recon/treasury.integration.test.ts",
  "signer/missingReceipts.integration.test.ts",
  "api/cli.integration.test.ts",
  "indexers/crash.integration.test.ts",
  "ledger/depositCrediting.integration.test.ts",
  "signer/operator.integration.test.ts",
  "ops/dev.integration.test.ts",
  "indexers/fallback.integration.test.ts",
  "api/console/console.integration.test.ts",
  "ops/e2e/redisOutage.test.ts",
  "api/console/approverEmails.integration.test.ts",
  "ops/start.outage.integration.test.ts",
  "ops/infra/boot.integration.test.ts",
];

/**
 * Vitest orders files by their last recorded duration, and without one (a fresh clone: CI) by
 * size, largest first. Size says little about time: a short file that spawns processes for a
 * minute would start near the end and run alone while the other worker idles. So, in a project
 * where some file has no recorded duration, the files of SLOW_FILES run first (in that order),
 * then the rest in vitest's order; with durations recorded for all, vitest's order stands.
 */
export default class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const rel = (spec: TestSpecification) =>
      spec.moduleId.startsWith(`${root}/`) ? spec.moduleId.slice(root.length + 1) : spec.moduleId;
    const groups = new Map<string, TestSpecification[]>();
    for (const spec of sorted) {
      const group = groups.get(spec.project.name) ?? [];
      group.push(spec);
      groups.set(spec.project.name, group);
    }
    const out: TestSpecification[] = [];
    for (const [project, group] of groups) {
      const unknown = group.some(
        (spec) => !this.ctx.cache.getFileTestResults(`${project}:${rel(spec)}`),
      );
      const rank = (spec: TestSpecification) => {
        const i = SLOW_FILES.indexOf(rel(spec));
        return unknown && i >= 0 ? i : SLOW_FILES.length;
      };
      // Array.prototype.sort is stable: the rest keep vitest's order.
      out.push(...group.sort((a, b) => rank(a) - rank(b)));
    }
    return out;
  }
}
