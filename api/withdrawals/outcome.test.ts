import { describe, expect, it } from "vitest";
import { failedAgainElsewhere, minedAgainElsewhere, planOutcome } from "./outcome.js";
import { canMove } from "./store.js";

describe("failedAgainElsewhere", () => {
  const failed = { status: "failed" as const, txHash: "0xAA", fee: 21n };
  it("only for a failed withdrawal whose failure was undone and that failed again otherwise", () => {
    const again = { status: "failed" as const, txHash: "0xbb", fee: 25n };
    expect(failedAgainElsewhere(failed, again, true)).toBe(true);
    expect(failedAgainElsewhere(failed, again, false)).toBe(false);
    expect(failedAgainElsewhere(failed, { ...again, txHash: "0xaa" }, true)).toBe(true);
    expect(failedAgainElsewhere(failed, { ...again, txHash: "0xaa", fee: 21n }, true)).toBe(false);
    expect(failedAgainElsewhere(failed, { ...again, status: "broadcast" }, true)).toBe(false);
  });
});

describe("planOutcome", () => {
  it("signing → confirmed passes through broadcast and posts once", () => {
    expect(planOutcome("signing", "confirmed", true)).toEqual([
      { to: "broadcast", ledger: "none", reorged: false },
      { to: "confirmed", ledger: "post", reorged: false },
    ]);
  });

  it("confirmed → finalized changes no money; broadcast → finalized posts", () => {
    expect(planOutcome("confirmed", "finalized", true)).toEqual([
      { to: "finalized", ledger: "none", reorged: false },
    ]);
    expect(planOutcome("broadcast", "finalized", true)).toEqual([
      { to: "finalized", ledger: "post", reorged: false },
    ]);
  });

  it("confirmed, then confirmed or final in another transaction or at another fee: revert, then post", () => {
    const posted = { status: "confirmed", txHash: "0xAA", fee: 21n } as const;
    const mined = (txHash: string, fee: bigint, status: "confirmed" | "finalized" = "confirmed") =>
      minedAgainElsewhere(posted, { status, txHash, fee });
    expect(mined("0xaa", 21n)).toBe(false); // the same transaction (hashes compared in any case)
    expect(mined("0xbb", 21n)).toBe(true);
    expect(mined("0xaa", 30n)).toBe(true);
    expect(mined("0xaa", 30n, "finalized")).toBe(true);
    expect(minedAgainElsewhere(posted, { status: "broadcast", txHash: "0xbb", fee: 1n })).toBe(
      false,
    );
    expect(
      minedAgainElsewhere(
        { ...posted, status: "broadcast" },
        { status: "confirmed", txHash: "0xbb", fee: 1n },
      ),
    ).toBe(false);
    // Nothing known is no evidence of another transaction.
    expect(
      minedAgainElsewhere(
        { ...posted, fee: null },
        { status: "confirmed", txHash: "0xaa", fee: 1n },
      ),
    ).toBe(false);
    expect(planOutcome("confirmed", "confirmed", true, true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
      { to: "confirmed", ledger: "post", reorged: false },
    ]);
    expect(planOutcome("confirmed", "finalized", true, true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
      { to: "finalized", ledger: "post", reorged: false },
    ]);
  });

  it("a reorg reverts the posting: confirmed → broadcast", () => {
    expect(planOutcome("confirmed", "broadcast", true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
    ]);
  });

  it("confirmed → receipt_unknown / failed reverts first, then moves on", () => {
    expect(planOutcome("confirmed", "receipt_unknown", true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
      { to: "receipt_unknown", ledger: "none", reorged: false },
    ]);
    expect(planOutcome("confirmed", "failed", true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
      { to: "failed", ledger: "void", reorged: false },
    ]);
  });

  it("missing data moves no money", () => {
    for (const side of ["receipt_unknown", "needs_review"] as const) {
      expect(planOutcome("broadcast", side, true)).toEqual([
        { to: side, ledger: "none", reorged: false },
      ]);
    }
    expect(planOutcome("receipt_unknown", "needs_review", true)).toEqual([
      { to: "needs_review", ledger: "none", reorged: false },
    ]);
    expect(planOutcome("needs_review", "confirmed", true)).toEqual([
      { to: "confirmed", ledger: "post", reorged: false },
    ]);
  });

  it("failed before anything was sent voids without passing broadcast", () => {
    expect(planOutcome("signing", "failed", false)).toEqual([
      { to: "failed", ledger: "void", reorged: false },
    ]);
  });

  it("no change, signing, or a status it does not follow: nothing", () => {
    expect(planOutcome("broadcast", "broadcast", true)).toEqual([]);
    expect(planOutcome("signing", "signing", false)).toEqual([]);
    expect(planOutcome("finalized", "broadcast", true)).toEqual([]);
    expect(planOutcome("failed", "confirmed", true)).toEqual([]);
    expect(planOutcome("pending_approval", "confirmed", true)).toEqual([]);
  });

  it("a failed withdrawal follows its request again only on the signer's word that the failure was undone", () => {
    expect(planOutcome("failed", "broadcast", true)).toEqual([]);
    expect(planOutcome("failed", "broadcast", true, false, true)).toEqual([
      { to: "broadcast", ledger: "hold_again", reorged: false },
    ]);
    // Its payment mined instead: held again, then posted.
    expect(planOutcome("failed", "finalized", true, false, true)).toEqual([
      { to: "broadcast", ledger: "hold_again", reorged: false },
      { to: "finalized", ledger: "post", reorged: false },
    ]);
    // Undone and failed again by the same tx at the same fee before the follower looked:
    // nothing to tell, nothing to book.
    expect(planOutcome("failed", "failed", true, false, true)).toEqual([]);
    // By another tx (or fee): told both, the gas booked anew, nothing held in between.
    expect(planOutcome("failed", "failed", true, false, true, true)).toEqual([
      { to: "broadcast", ledger: "unbook_fee", reorged: false },
      { to: "failed", ledger: "book_fee", reorged: false },
    ]);
    // A follower that already moved it back follows it as any other.
    expect(planOutcome("broadcast", "failed", true, false, true)).toEqual([
      { to: "failed", ledger: "void", reorged: false },
    ]);
  });

  it("a finalized withdrawal is reopened only on the signer's word that its final block was undone", () => {
    expect(planOutcome("finalized", "broadcast", true)).toEqual([]);
    expect(planOutcome("finalized", "broadcast", true, false, false, false, true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
    ]);
    // Reverted on the new branch: the posting goes back to a hold, then the hold is voided.
    expect(planOutcome("finalized", "failed", true, false, false, false, true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
      { to: "failed", ledger: "void", reorged: false },
    ]);
    // Mined and final again before a pass looked: the same tx at the same fee changes nothing;
    // another tx or fee is reverted and posted again.
    expect(planOutcome("finalized", "finalized", true, false, false, false, true)).toEqual([]);
    expect(planOutcome("finalized", "finalized", true, true, false, false, true)).toEqual([
      { to: "broadcast", ledger: "revert", reorged: true },
      { to: "finalized", ledger: "post", reorged: false },
    ]);
  });

  it("every planned move is an allowed transition", () => {
    const followed = [
      "signing",
      "broadcast",
      "confirmed",
      "receipt_unknown",
      "needs_review",
    ] as const;
    const outcomes = [
      "signing",
      "broadcast",
      "confirmed",
      "finalized",
      "receipt_unknown",
      "needs_review",
      "failed",
    ] as const;
    for (const from of [...followed, "failed", "finalized"] as const)
      for (const o of outcomes)
        for (const [hasTx, minedAgain] of [
          [true, false],
          [false, false],
          [true, true],
        ] as const) {
          let at: (typeof followed)[number] | string = from;
          const plan = planOutcome(
            from,
            o,
            hasTx,
            minedAgain,
            from === "failed",
            minedAgain,
            from === "finalized",
          );
          for (const m of plan) {
            expect(canMove(at as never, m.to), `${from} -(${o})-> ${at} → ${m.to}`).toBe(true);
            at = m.to;
          }
          if (o !== "signing") expect(at, `${from} -(${o})`).toBe(o);
        }
  });
});
