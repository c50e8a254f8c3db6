import { describe, expect, it } from "vitest";
import { seenAtSnapshot, seqRangeBatches, splitGaps } from "./seqGaps.js";

describe("splitGaps", () => {
  it("removes values that became visible and keeps the rest with their first-seen time", () => {
    expect(
      splitGaps(
        [
          [10, 14, 1],
          [20, 20, 2],
          [30, 31, 3],
        ],
        [10, 12, 20, 99],
      ),
    ).toEqual([
      [11, 11, 1],
      [13, 14, 1],
      [30, 31, 3],
    ]);
  });

  it("keeps each remainder's transaction id bound", () => {
    expect(splitGaps([[10, 12, 1, 900]], [11])).toEqual([
      [10, 10, 1, 900],
      [12, 12, 1, 900],
    ]);
  });

  it("keeps gaps untouched when nothing filled them", () => {
    expect(splitGaps([[5, 7, 1]], [])).toEqual([[5, 7, 1]]);
  });
});

describe("seqRangeBatches", () => {
  it("names each range by its own scalar parameters, numbered from the first free one", () => {
    expect(
      seqRangeBatches(
        "e.seq",
        [
          [10, 14, 1],
          [20, 20, 2],
        ],
        2,
      ),
    ).toEqual([
      {
        where:
          "(e.seq BETWEEN $2::bigint AND $3::bigint OR e.seq BETWEEN $4::bigint AND $5::bigint)",
        params: [10, 14, 20, 20],
      },
    ]);
  });

  it("splits many ranges over statements of at most 500, and none for no range", () => {
    const ranges = Array.from({ length: 1_001 }, (_, i) => [i * 10, i * 10 + 1, 0] as const);
    const batches = seqRangeBatches("t.seq", ranges, 1);
    expect(batches.map((b) => b.params.length)).toEqual([1_000, 1_000, 2]);
    expect(batches[2]).toEqual({
      where: "(t.seq BETWEEN $1::bigint AND $2::bigint)",
      params: [10_000, 10_001],
    });
    expect(seqRangeBatches("t.seq", [], 1)).toEqual([]);
  });
});

describe("seenAtSnapshot", () => {
  it("sees a seq at or below the watermark and outside every gap", () => {
    const run = {
      entryWatermark: 50,
      entryGaps: [
        [10, 12, 1],
        [40, 40, 2],
      ] as [number, number, number][],
    };
    expect([1, 9, 10, 12, 13, 39, 40, 41, 50, 51].map((seq) => seenAtSnapshot(seq, run))).toEqual([
      true,
      true,
      false,
      false,
      true,
      true,
      false,
      true,
      true,
      false,
    ]);
  });
});
