import { describe, expect, it } from "vitest";
import { followAction } from "./followSweeps.js";

describe("followAction", () => {
  it("ends the watch when the booked inclusion is final", () => {
    expect(followAction(0, { status: "finalized", reorgs: 0 })).toBe("final");
    expect(followAction(2, { status: "finalized", reorgs: 2 })).toBe("final");
  });
  it("unbooks when the transaction left the block it was booked in, or failed after all", () => {
    expect(followAction(0, { status: "broadcast", reorgs: 1 })).toBe("unbook");
    expect(followAction(0, { status: "receipt_unknown", reorgs: 1 })).toBe("unbook");
    expect(followAction(0, { status: "confirmed", reorgs: 1 })).toBe("unbook");
    expect(followAction(0, { status: "finalized", reorgs: 1 })).toBe("unbook");
    expect(followAction(1, { status: "failed", reorgs: 1 })).toBe("unbook");
  });
  it("unbooks when the outcome is back to unmined, even before the reorg is counted", () => {
    expect(followAction(1, { status: "broadcast", reorgs: 1 })).toBe("unbook");
    expect(followAction(1, { status: "receipt_unknown", reorgs: 1 })).toBe("unbook");
  });
  it("keeps watching a confirmed sweep in the same inclusion", () => {
    expect(followAction(0, { status: "confirmed", reorgs: 0 })).toBeUndefined();
    expect(followAction(1, { status: "confirmed", reorgs: 1 })).toBeUndefined();
  });
});
