import { describe, expect, it } from "vitest";
import { mapLimit } from "./mapLimit.js";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("mapLimit", () => {
  it("keeps at most `limit` in flight and answers in item order", async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (n) => {
      inFlight++;
      most = Math.max(most, inFlight);
      for (let i = 0; i < n; i++) await tick();
      inFlight--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0]);
    expect(most).toBe(2);
  });

  it("starts nothing after a failure and throws the first one", async () => {
    const started: number[] = [];
    await expect(
      mapLimit([0, 1, 2, 3, 4, 5], 2, async (n) => {
        started.push(n);
        await tick();
        if (n === 1) throw new Error("item 1 failed");
      }),
    ).rejects.toThrow("item 1 failed");
    await new Promise((resolve) => setTimeout(resolve, 20));
    // 0 and 1 start together; 0 ends first and starts 2; 1 fails while 2 runs; nothing after.
    expect(started).toEqual([0, 1, 2]);
  });

  it("starts no worker for no items", async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });
});
