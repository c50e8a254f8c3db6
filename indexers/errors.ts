import { BaseError } from "../foundation/errors.js";
import type { Tip } from "./tip.js";

/** The stored checkpoint is not the one this batch was built on (a second writer, or a lost race). */
export class TipMovedError extends BaseError {
  override name = "TipMovedError";
  constructor(expected: Tip | null, actual: Tip | null) {
    super("indexer checkpoint moved under the ingestor", {
      code: "INDEXER_TIP_MOVED",
      retryable: true,
      meta: {
        expected: expected && `${expected.number}:${expected.hash}`,
        actual: actual && `${actual.number}:${actual.hash}`,
      },
    });
  }
}

/**
 * `chains resume` without who (--by) or why (--reason): an operator decision is always audited. Or
 * an --accept-reorg that names no common ancestor the way the refusal prints one.
 */
export class ResumeInputError extends BaseError {
  override name = "ResumeInputError";
  constructor(
    chainId: number,
    field: "by" | "reason" | "accept-reorg",
    problem = "must not be empty",
  ) {
    super(`chain ${chainId} cannot be resumed: --${field} ${problem}`, {
      code: "INDEXER_RESUME_INPUT",
      meta: { chain_id: chainId, field },
    });
  }
}

/**
 * `chains resume`: the node disagrees with every stored block, down to the oldest one kept, and
 * facts lie below it (their blocks were pruned). The common ancestor is somewhere below, where
 * nothing can be compared: rolling back to the oldest stored block would keep those facts as if
 * the node agreed with them (missing data is never evidence). Nothing is changed.
 */
export class ResumeAncestorPrunedError extends BaseError {
  override name = "ResumeAncestorPrunedError";
  constructor(chainId: number, lowest: bigint) {
    super(
      `chain ${chainId} cannot be resumed: the node disagrees with every stored block down to ${lowest}, and facts lie below it in pruned blocks, so the common ancestor cannot be found`,
      {
        code: "INDEXER_RESUME_ANCESTOR_PRUNED",
        meta: { chain_id: chainId, lowest: lowest.toString() },
      },
    );
  }
}

/**
 * `chains resume --accept-reorg <height>:<hash>`: the common ancestor found now is not the one the
 * operator accepted (the refusal they read showed another: the node changed endpoint or backend
 * since, most likely). A rollback nobody was shown is none accepted: nothing is changed.
 */
export class ResumeAncestorChangedError extends BaseError {
  override name = "ResumeAncestorChangedError";
  constructor(chainId: number, accepted: string, found: string, depth: number) {
    super(
      `chain ${chainId} not resumed: the common ancestor is now ${found} (depth ${depth}), not ${accepted} as accepted; nothing changed. Check the node, then re-run with --accept-reorg ${found} to roll back to it`,
      {
        code: "INDEXER_RESUME_ANCESTOR_CHANGED",
        meta: { chain_id: chainId, accepted, found, depth },
      },
    );
  }
}
