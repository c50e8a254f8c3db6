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
