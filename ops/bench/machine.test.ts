import { describe, expect, it } from "vitest";
import { parseIoPressure } from "./machine.js";

describe("the bench's I/O pressure line", () => {
  it("reads the 60 s averages of /proc/pressure/io", () => {
    const text = [
      "some avg10=8.72 avg60=3.62 avg300=1.67 total=58033281",
      "full avg10=6.81 avg60=2.96 avg300=0.94 total=21626124",
      "",
    ].join("\n");
    expect(parseIoPressure(text)).toBe("some 3.62 %, full 2.96 %");
  });

  it("is absent when the file does not say both", () => {
    expect(parseIoPressure("")).toBeNull();
    expect(parseIoPressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")).toBeNull();
  });
});
