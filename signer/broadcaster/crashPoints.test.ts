import { describe, expect, it } from "vitest";
import { CRASH_POINTS, parseCrashAt } from "./crashPoints.js";

describe("parseCrashAt", () => {
  it("reads point:count for every crash point", () => {
    for (const point of CRASH_POINTS)
      expect(parseCrashAt(`${point}:3`)).toEqual({ point, count: 3 });
    expect(parseCrashAt(undefined)).toBeUndefined();
    expect(parseCrashAt("")).toBeUndefined();
  });

  it("refuses unknown points and malformed values, naming the points", () => {
    expect(() => parseCrashAt("before_lunch:1")).toThrow(/after_reject/);
    expect(() => parseCrashAt("after_sign")).toThrow(/after_sign:17/);
  });
});
