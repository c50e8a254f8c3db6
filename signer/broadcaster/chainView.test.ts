import { describe, expect, it } from "vitest";
import { heightMeeting } from "./chainView.js";

describe("heightMeeting", () => {
  it("counts the block itself as one of N blocks (the indexer's rule)", () => {
    expect(heightMeeting({ kind: "blocks", blocks: 3 }, 100n, null)).toBe(98n);
    expect(heightMeeting({ kind: "blocks", blocks: 1 }, 100n, null)).toBe(100n);
    // 0 confirmations still needs the block to exist.
    expect(heightMeeting({ kind: "blocks", blocks: 0 }, 100n, null)).toBe(100n);
  });

  it("is unknown before the chain is deep enough, or without a finalized tag", () => {
    expect(heightMeeting({ kind: "blocks", blocks: 8 }, 3n, null)).toBeNull();
    expect(heightMeeting({ kind: "finalized" }, 100n, null)).toBeNull();
    expect(heightMeeting({ kind: "finalized" }, 100n, 64n)).toBe(64n);
  });
});
