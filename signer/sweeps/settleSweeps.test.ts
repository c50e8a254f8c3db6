import { describe, expect, it } from "vitest";
import type { TxOutcome, TxOutcomeStatus } from "../outcomes.js";
import { settlementOf } from "./settleSweeps.js";

function outcome(status: TxOutcomeStatus, receiptSuccess: boolean | null): TxOutcome {
  return {
    requestId: "sweep:1:x",
    kind: "sweep",
    refId: "sweep:1:x",
    chainId: 1,
    from: "0x0000000000000000000000000000000000000001",
    to: "0x0000000000000000000000000000000000000002",
    value: 0n,
    status,
    nonce: 0n,
    txHash: null,
    blockNumber: null,
    blockHash: null,
    receiptSuccess,
    gasUsed: null,
    effectiveGasPrice: null,
    fee: null,
    transferPosition: null,
    transferLogIndex: null,
    cancelled: false,
    errorCode: null,
    errorMessage: null,
    reviewReason: null,
    cancelRequestedAt: null,
    reorgs: 0,
    changedAt: new Date(0),
    finalizedAt: null,
  };
}

describe("settlementOf", () => {
  it("books a successful confirmed or finalized sweep and fails a failed one", () => {
    expect(settlementOf(outcome("confirmed", true))).toBe("booked");
    expect(settlementOf(outcome("finalized", true))).toBe("booked");
    expect(settlementOf(outcome("failed", false))).toBe("failed");
    expect(settlementOf(outcome("failed", null))).toBe("failed");
  });

  it("keeps every other outcome open: nothing is concluded from missing or changing data", () => {
    for (const status of ["signing", "broadcast", "receipt_unknown", "needs_review"] as const) {
      expect(settlementOf(outcome(status, null))).toBeUndefined();
    }
    // A reverted tx stays `broadcast` until its block is final, then becomes `failed`.
    expect(settlementOf(outcome("broadcast", false))).toBeUndefined();
    expect(settlementOf(outcome("confirmed", null))).toBeUndefined();
  });
});
