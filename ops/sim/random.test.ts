import { describe, expect, it } from "vitest";
import { createRandom } from "./random.js";

describe("createRandom", () => {
  it("replays the same sequence for the same seed and differs for another", () => {
    const draw = (seed: number) => {
      const r = createRandom(seed);
      return [r.int(0, 1000), r.next(), r.bigint(1n, 10n ** 20n), r.pick(["a", "b", "c"])];
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it("keeps draws inside their ranges and hits both ends", () => {
    const r = createRandom(1);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = r.int(3, 6);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(6);
      seen.add(v);
      const b = r.bigint(5n, 9n);
      expect(b >= 5n && b <= 9n).toBe(true);
    }
    expect([...seen].sort()).toEqual([3, 4, 5, 6]);
  });

  it("forks streams that do not shift the parent's schedule", () => {
    const a = createRandom(42);
    const b = createRandom(42);
    const fork = a.fork("proxy");
    for (let i = 0; i < 10; i++) fork.next();
    expect(a.next()).toBe(b.next());
    expect(createRandom(42).fork("proxy").next()).toBe(createRandom(42).fork("proxy").next());
    expect(createRandom(42).fork("proxy").next()).not.toBe(createRandom(42).fork("other").next());
  });

  it("weighted never picks a zero-weight key", () => {
    const r = createRandom(3);
    for (let i = 0; i < 500; i++) expect(r.weighted({ a: 1, b: 0, c: 2 })).not.toBe("b");
  });
});
