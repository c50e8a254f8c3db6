import { describe, expect, it } from "vitest";
import { type Progress, progressLine } from "./backfill.js";

describe("backfill progress line", () => {
  const t0 = 1_000_000;
  const progress = (): Progress => ({ at: t0, startedAt: t0, startBlock: 101n });

  it("while behind, after the interval: rate since the start and ETA", () => {
    // 100 blocks (101..200) in 10 s = 10 blocks/s; 800 blocks left = 80 s.
    const line = progressLine(progress(), 200n, 1000n, t0 + 10_000, 5000);
    expect(line).toEqual({
      msg: "backfill progress",
      indexed: "200",
      head: "1000",
      blocks_per_s: 10,
      remaining_blocks: 800,
      eta_s: 80,
    });
  });

  it("nothing before the interval has passed", () => {
    expect(progressLine(progress(), 200n, 1000n, t0 + 4999, 5000)).toBeNull();
  });

  it("nothing at the head, however long since the last line", () => {
    expect(progressLine(progress(), 1000n, 1000n, t0 + 60_000, 5000)).toBeNull();
    expect(progressLine(progress(), 1001n, 1000n, t0 + 60_000, 5000)).toBeNull();
  });

  it("one block behind still reports", () => {
    const line = progressLine(progress(), 999n, 1000n, t0 + 100_000, 5000);
    expect(line).toMatchObject({ remaining_blocks: 1, indexed: "999" });
    expect(line?.eta_s).toBe(0);
  });
});
