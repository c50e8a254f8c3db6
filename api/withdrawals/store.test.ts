import { describe, expect, it } from "vitest";
import { canMove, TRANSITIONS, WITHDRAWAL_STATUSES } from "./store.js";

describe("withdrawal status machine", () => {
  it("follows requested → pending_approval → approved → signing → broadcast → confirmed", () => {
    const path = [
      "requested",
      "pending_approval",
      "approved",
      "signing",
      "broadcast",
      "confirmed",
    ] as const;
    for (let i = 1; i < path.length; i++) expect(canMove(path[i - 1]!, path[i]!)).toBe(true);
  });
  it("has final states with no way out, and no way back", () => {
    for (const s of ["confirmed", "rejected", "cancelled", "failed"] as const)
      expect(TRANSITIONS[s]).toEqual([]);
    expect(canMove("signing", "approved")).toBe(false);
    expect(canMove("broadcast", "signing")).toBe(false);
    // once handed to the signer it cannot be cancelled or rejected (the tx may already be out)
    expect(canMove("signing", "cancelled")).toBe(false);
    expect(canMove("signing", "rejected")).toBe(false);
  });
  it("names only known statuses", () => {
    for (const [from, tos] of Object.entries(TRANSITIONS)) {
      expect(WITHDRAWAL_STATUSES).toContain(from);
      for (const to of tos) expect(WITHDRAWAL_STATUSES).toContain(to);
    }
  });
});
