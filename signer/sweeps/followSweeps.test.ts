import { describe, expect, it } from "vitest";
import type { TxOutcome } from "../outcomes.js";
import { followAction } from "./followSweeps.js";

/** Evidence of a failure: none by default (a nonce taken, no final block, no operator). */
const unproven: Pick<TxOutcome, "nonce" | "finalizedAt" | "errorCode"> = {
  nonce: 3n,
  finalizedAt: null,
  errorCode: "REVERTED",
};

describe("followAction", () => {
  it("ends the watch when the booked inclusion is final", () => {
    expect(followAction(0, { ...unproven, status: "finalized", reorgs: 0 })).toBe("final");
    expect(followAction(2, { ...unproven, status: "finalized", reorgs: 2 })).toBe("final");
  });
  it("unbooks when the transaction left the block it was booked in, or failed after all", () => {
    expect(followAction(0, { ...unproven, status: "broadcast", reorgs: 1 })).toBe("unbook");
    expect(followAction(0, { ...unproven, status: "receipt_unknown", reorgs: 1 })).toBe("unbook");
    expect(followAction(0, { ...unproven, status: "confirmed", reorgs: 1 })).toBe("unbook");
    expect(followAction(0, { ...unproven, status: "finalized", reorgs: 1 })).toBe("unbook");
    const final = { ...unproven, finalizedAt: new Date() };
    expect(followAction(1, { ...final, status: "failed", reorgs: 1 })).toBe("unbook");
    expect(
      followAction(1, { ...unproven, errorCode: "OPERATOR_FAILED", status: "failed", reorgs: 1 }),
    ).toBe("unbook");
  });
  it("unbooks when the outcome is back to unmined, even before the reorg is counted", () => {
    expect(followAction(1, { ...unproven, status: "broadcast", reorgs: 1 })).toBe("unbook");
    expect(followAction(1, { ...unproven, status: "receipt_unknown", reorgs: 1 })).toBe("unbook");
  });
  it("keeps a booking reported failed without a final block or an operator (a signer bug)", () => {
    expect(followAction(1, { ...unproven, status: "failed", reorgs: 1 })).toBeUndefined();
  });
  it("keeps watching a confirmed sweep in the same inclusion", () => {
    expect(followAction(0, { ...unproven, status: "confirmed", reorgs: 0 })).toBeUndefined();
    expect(followAction(1, { ...unproven, status: "confirmed", reorgs: 1 })).toBeUndefined();
  });
});
