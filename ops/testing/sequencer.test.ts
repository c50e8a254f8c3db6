import { describe, expect, it } from "vitest";
import type { TestSpecification, Vitest } from "vitest/node";
import SlowFirstSequencer, { SLOW_FILES } from "./sequencer.js";

const root = "/repo";
const project = (name: string, groupOrder: number) => ({
  name,
  config: { sequence: { groupOrder }, isolate: true },
});
const unit = project("unit", 0);
const integration = project("integration", 1);
const spec = (p: typeof unit, file: string) =>
  ({ project: p, moduleId: `${root}/${file}` }) as unknown as TestSpecification;

/** A sequencer over a fake vitest: `sizes` are file sizes, `durations` recorded run times. */
function sequencer(sizes: Record<string, number>, durations: Record<string, number> = {}) {
  const ctx = {
    config: { root },
    cache: {
      getFileTestResults: (key: string) => {
        const file = key.slice(key.indexOf(":") + 1);
        return file in durations ? { duration: durations[file], failed: false } : undefined;
      },
      getFileStats: (key: string) => ({ size: sizes[key.slice(key.indexOf(":") + 1)] ?? 0 }),
    },
  } as unknown as Vitest;
  return new SlowFirstSequencer(ctx);
}

const files = (specs: TestSpecification[]) =>
  specs.map((s) => `${s.project.name}:${s.moduleId.slice(root.length + 1)}`);

describe("SlowFirstSequencer", () => {
  const slow = SLOW_FILES.at(-1)!;
  const specs = [
    spec(integration, "a.integration.test.ts"),
    spec(integration, slow),
    spec(unit, "u.test.ts"),
    spec(integration, "b.integration.test.ts"),
  ];
  const sizes = { "a.integration.test.ts": 500, [slow]: 10, "b.integration.test.ts": 900 };

  it("without recorded durations, starts the known slow files first, the rest by size", async () => {
    expect(files(await sequencer(sizes).sort(specs))).toEqual([
      "unit:u.test.ts",
      `integration:${slow}`,
      "integration:b.integration.test.ts",
      "integration:a.integration.test.ts",
    ]);
  });

  it("with every file's duration recorded, keeps vitest's order (longest first)", async () => {
    const durations = {
      "u.test.ts": 1,
      "a.integration.test.ts": 90_000,
      [slow]: 5_000,
      "b.integration.test.ts": 20_000,
    };
    expect(files(await sequencer(sizes, durations).sort(specs))).toEqual([
      "unit:u.test.ts",
      "integration:a.integration.test.ts",
      "integration:b.integration.test.ts",
      `integration:${slow}`,
    ]);
  });
});
