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

/** `chains resume` without who (--by) or why (--reason): an operator decision is always audited. */
export class ResumeInputError extends BaseError {
  override name = "ResumeInputError";
  constructor(chainId: number, field: "by" | "reason") {
    super(`chain ${chainId} cannot be resumed: --${field} must not be empty`, {
      code: "INDEXER_RESUME_INPUT",
      meta: { chain_id: chainId, field },
    });
  }
}
