import { describe, expect, it } from "vitest";
import { backoffMs } from "./backoff.js";

describe("backoffMs", () => {
  it("doubles from baseMs and stops at maxMs", () => {
    const waits = [0, 1, 2, 3, 7, 8, 50].map((a) => backoffMs(a, { baseMs: 250, maxMs: 30_000 }));
    expect(waits).toEqual([250, 500, 1000, 2000, 30_000, 30_000, 30_000]);
  });

  it("caps the exponent at maxDoublings (below maxMs) and never goes below baseMs", () => {
    const opts = { baseMs: 100, maxMs: 5000, maxDoublings: 5 };
    expect([-1, 0, 5, 6, 40].map((a) => backoffMs(a, opts))).toEqual([100, 100, 3200, 3200, 3200]);
    // Without caps a huge attempt stays finite (setTimeout(Infinity) would fire at once).
    expect(Number.isFinite(backoffMs(5000, { baseMs: 10 }))).toBe(true);
  });

  it("full jitter is uniform below the wait, equal jitter in its upper half", () => {
    const opts = { baseMs: 10, maxDoublings: 6 };
    expect(backoffMs(3, { ...opts, jitter: "full" }, () => 0)).toBe(0);
    expect(backoffMs(3, { ...opts, jitter: "full" }, () => 0.5)).toBe(40);
    expect(backoffMs(9, { ...opts, jitter: "full" }, () => 0.999)).toBeCloseTo(639.36);
    expect(backoffMs(2, { baseMs: 200, maxMs: 5000, jitter: "equal" }, () => 0)).toBe(400);
    expect(backoffMs(2, { baseMs: 200, maxMs: 5000, jitter: "equal" }, () => 1)).toBe(800);
    for (let i = 0; i < 100; i++) {
      const w = backoffMs(i % 8, { baseMs: 200, maxMs: 5000, jitter: "equal" });
      expect(w).toBeGreaterThanOrEqual(Math.min(5000, 200 * 2 ** (i % 8)) / 2);
      expect(w).toBeLessThan(Math.min(5000, 200 * 2 ** (i % 8)));
    }
  });

  it("gives the same numbers as the formulas it replaced", () => {
    const r = () => 0.37;
    for (let n = 0; n < 40; n++) {
      // chains/rpc.ts endpoint cooldown (failures = n + 1)
      expect(backoffMs(n, { baseMs: 250, maxMs: 30_000, maxDoublings: 7 })).toBe(
        Math.min(30_000, 250 * 2 ** Math.min(n, 7)),
      );
      // chains/rpc.ts round delay
      expect(backoffMs(n, { baseMs: 200, maxMs: 5_000, jitter: "equal" }, r)).toBe(
        Math.min(5_000, 200 * 2 ** n) * (0.5 + r() / 2),
      );
      // indexers/sync/loop.ts after a failed pass (poll 100 ms: the exponent cap bites first)
      expect(backoffMs(n, { baseMs: 100, maxMs: 5000, maxDoublings: 5 })).toBe(
        Math.min(5000, 100 * 2 ** Math.min(n, 5)),
      );
      // foundation/db.ts serialization retry
      expect(backoffMs(n, { baseMs: 10, maxDoublings: 6, jitter: "full" }, r)).toBe(
        r() * 10 * 2 ** Math.min(n, 6),
      );
      // signer/broadcaster/cancel.ts
      expect(backoffMs(n, { baseMs: 1000, maxMs: 60_000, maxDoublings: 20 })).toBe(
        Math.min(60_000, 1000 * 2 ** Math.min(n, 20)),
      );
    }
  });
});
