import { describe, expect, it } from "vitest";
import { splitGaps } from "./seqGaps.js";

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

  it("keeps gaps untouched when nothing filled them", () => {
    expect(splitGaps([[5, 7, 1]], [])).toEqual([[5, 7, 1]]);
  });
});
