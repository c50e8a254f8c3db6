/**
 * What a signer outcome does to a withdrawal: the moves (status changes, in order) and the ledger
 * step of each. Pure; `service.ts` applies a plan in one transaction under the withdrawal's lock.
 *
 * The ledger follows DESIGN "Money flows": the hold is posted while the tx is mined and confirmed
 * (or final); a reorg reverts the posting to a fresh hold; only a final failure (or an operator)
 * voids it. Missing data (`receipt_unknown`, `needs_review`) changes no money.
 */
import type { TxOutcomeStatus } from "../../signer/outcomes.js";
import type { WithdrawalStatus } from "./store.js";

/** The status a signer request reports (signer `getTxOutcomes`, TEAM contract 4). */
export type SignerOutcomeStatus = TxOutcomeStatus;

export type LedgerStep =
  /** post the current hold (chain ref of the mined transfer) and book the gas paid */
  | "post"
  /** reverse the posting and its gas, and hold the amount again (next epoch) */
  | "revert"
  /** book any gas paid and void the current hold */
  | "void"
  /**
   * reverse the gas booked with the failure and hold the amount again (next epoch), what the
   * customer's balance no longer covers owed on receivable:reorg (their withdrawals blocked)
   */
  | "hold_again"
  /**
   * a failure undone and failed again before a pass saw it in between: reverse the gas booked
   * with the first failure (next epoch, nothing held: nothing was paid)
   */
  | "unbook_fee"
  /** book the gas of the tx that failed it again (nothing held to void) */
  | "book_fee"
  | "none";

export type Move = { to: WithdrawalStatus; ledger: LedgerStep; reorged: boolean };

const POSTED: ReadonlySet<WithdrawalStatus> = new Set(["confirmed", "finalized"]);

/**
 * Whether a confirmed (or finalized) withdrawal's transaction, as the signer reports it confirmed
 * (or final) now, is not the one posted: reorged out and mined again (another attempt, or the same
 * bytes in another block with another fee) between two passes of the follower, which then never
 * saw the `broadcast` in between. The posting (its chain reference, its gas) is then the old
 * block's. A finalized one's only by a deep reorg an operator accepted (`finalUndone`).
 */
export function minedAgainElsewhere(
  posted: { status: WithdrawalStatus; txHash: string | null; fee: bigint | null },
  outcome: { status: SignerOutcomeStatus; txHash: string | null; fee: bigint | null },
): boolean {
  if (!POSTED.has(posted.status)) return false;
  if (outcome.status !== "confirmed" && outcome.status !== "finalized") return false;
  const otherTx =
    posted.txHash !== null &&
    outcome.txHash !== null &&
    posted.txHash.toLowerCase() !== outcome.txHash.toLowerCase();
  const otherFee = posted.fee !== null && outcome.fee !== null && posted.fee !== outcome.fee;
  return otherTx || otherFee;
}

/**
 * Whether a `failed` withdrawal whose failure a deep reorg undid (`failureUndone`) failed again by
 * another transaction (another cancel, or its send reverted) or in another block with another fee,
 * between two passes of the follower, which then never saw the `broadcast` in between. The gas
 * booked with its failure is then the old block's.
 */
export function failedAgainElsewhere(
  failed: { status: WithdrawalStatus; txHash: string | null; fee: bigint | null },
  outcome: { status: SignerOutcomeStatus; txHash: string | null; fee: bigint | null },
  failureUndone: boolean,
): boolean {
  if (!failureUndone || failed.status !== "failed" || outcome.status !== "failed") return false;
  const otherTx =
    outcome.txHash !== null &&
    (failed.txHash === null || failed.txHash.toLowerCase() !== outcome.txHash.toLowerCase());
  const otherFee = (failed.fee ?? 0n) !== (outcome.fee ?? 0n);
  return otherTx || otherFee;
}

/**
 * The moves from `current` to the signer's `outcome`. `minedAgain` (minedAgainElsewhere): the
 * posting is reverted and the new transaction posted, as if the follower had seen the reorg.
 * `failureUndone`: a `failed` withdrawal whose request the signer follows again goes back to
 * `broadcast` (held again) and on from there; the only way out of `failed`, and only on the
 * signer's word that the failure's final block is gone (missing data is never evidence).
 * `failedAgain` (failedAgainElsewhere): undone and failed again between two passes; told as both
 * (`failure_undone`, then `failed`) and its gas booked anew, nothing held in between.
 * `finalUndone`: the signer says a deep reorg an operator accepted undid the block in which the
 * request was finalized (`finalUndoneAt`, signer broadcaster/undone.ts). A `finalized` withdrawal
 * whose request it then reports anything but final (or final with another transaction or fee:
 * `minedAgain`) has its posting is reverted to a hold as a reorg's is (`reorged`), and it ends as its request
 * ends: posted again when it mines again, the hold voided (the customer refunded) if it fails.
 */
export function planOutcome(
  current: WithdrawalStatus,
  outcome: SignerOutcomeStatus,
  hasTx: boolean,
  minedAgain = false,
  failureUndone = false,
  failedAgain = false,
  finalUndone = false,
): Move[] {
  const followed: readonly WithdrawalStatus[] = [
    "signing",
    "broadcast",
    "confirmed",
    "receipt_unknown",
    "needs_review",
  ];
  if (current === "failed" && failureUndone && outcome === "failed")
    return failedAgain
      ? [
          { to: "broadcast", ledger: "unbook_fee", reorged: false },
          { to: "failed", ledger: "book_fee", reorged: false },
        ]
      : [];
  const undone = current === "failed" && failureUndone && outcome !== "failed";
  const reopened =
    current === "finalized" && finalUndone && (outcome !== "finalized" || minedAgain);
  if ((!followed.includes(current) && !undone && !reopened) || outcome === "signing") return [];
  const target: WithdrawalStatus = outcome;
  if (target === current && !minedAgain) return [];
  const moves: Move[] = [];
  let at = current;
  if (undone) {
    moves.push({ to: "broadcast", ledger: "hold_again", reorged: false });
    at = "broadcast";
  }
  // Sent: say so first, so every follower sees `broadcast` before what comes after it.
  if (at === "signing" && (target !== "failed" || hasTx)) {
    moves.push({ to: "broadcast", ledger: "none", reorged: false });
    at = "broadcast";
  }
  // Out of confirmed to anything but final: a reorg removed the tx (or the signer lost sight of it
  // after one); the posting goes back to a hold before anything else happens.
  if ((at === "confirmed" || reopened) && (target !== "finalized" || minedAgain)) {
    moves.push({ to: "broadcast", ledger: "revert", reorged: true });
    at = "broadcast";
  }
  if (target !== at) {
    const ledger: LedgerStep =
      target === "failed" ? "void" : POSTED.has(target) && !POSTED.has(at) ? "post" : "none";
    moves.push({ to: target, ledger, reorged: false });
  }
  return moves;
}
