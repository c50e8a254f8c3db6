import { describe, expect, it } from "vitest";
import { canMove, TRANSITIONS, WITHDRAWAL_STATUSES } from "./store.js";

describe("withdrawal status machine", () => {
  it("follows requested → pending_approval → approved → signing → broadcast → confirmed → finalized", () => {
    const path = [
      "requested",
      "pending_approval",
      "approved",
      "signing",
      "broadcast",
      "confirmed",
      "finalized",
    ] as const;
    for (let i = 1; i < path.length; i++) expect(canMove(path[i - 1]!, path[i]!)).toBe(true);
  });
  it("has final states with no way out, and no way back", () => {
    for (const s of ["rejected", "cancelled"] as const) expect(TRANSITIONS[s]).toEqual([]);
    // finalized is final but for one way back: a deep reorg an operator accepted undid the block in
    // which its request was finalized (the follower reverts the posting to a hold, outcome.ts)
    expect(TRANSITIONS.finalized).toEqual(["broadcast"]);
    // failed is final but for one way back: a deep reorg an operator accepted undid the final
    // block at which its request failed (the follower holds it again, outcome.ts)
    expect(TRANSITIONS.failed).toEqual(["broadcast"]);
    // confirmed is not final: it goes on to finalized, or back to broadcast only by a reorg
    expect(TRANSITIONS.confirmed).toEqual(["finalized", "broadcast"]);
    expect(canMove("confirmed", "failed")).toBe(false);
    expect(canMove("signing", "approved")).toBe(false);
    expect(canMove("broadcast", "signing")).toBe(false);
    // once handed to the signer it cannot be cancelled or rejected (the tx may already be out)
    expect(canMove("signing", "cancelled")).toBe(false);
    expect(canMove("signing", "rejected")).toBe(false);
  });
  it("keeps missing data off the money: receipt_unknown/needs_review never pass through cancel or reject", () => {
    for (const s of ["receipt_unknown", "needs_review"] as const) {
      expect(canMove(s, "cancelled")).toBe(false);
      expect(canMove(s, "rejected")).toBe(false);
    }
    expect(canMove("receipt_unknown", "needs_review")).toBe(true);
    expect(canMove("needs_review", "confirmed")).toBe(true);
  });
  it("names only known statuses", () => {
    for (const [from, tos] of Object.entries(TRANSITIONS)) {
      expect(WITHDRAWAL_STATUSES).toContain(from);
      for (const to of tos) expect(WITHDRAWAL_STATUSES).toContain(to);
    }
  });
});
