import { BaseError } from "../../ops/errors.js";

/** The chain has no block final enough to reconcile yet (nothing indexed, or too few confirmations). */
export class NoFinalBlockError extends BaseError {
  override name = "NoFinalBlockError";
  constructor(chainId: number, details: string) {
    super(`chain ${chainId} has no final block to reconcile`, {
      code: "RECON_NO_FINAL_BLOCK",
      details,
      retryable: true,
      meta: { chain_id: chainId },
    });
  }
}

/** A run was asked for a block the confirmation rule has not made final. */
export class BlockNotFinalError extends BaseError {
  override name = "BlockNotFinalError";
  constructor(chainId: number, block: number, finalBlock: number) {
    super(`block ${block} of chain ${chainId} is not final (newest final block: ${finalBlock})`, {
      code: "RECON_BLOCK_NOT_FINAL",
      meta: { chain_id: chainId, block, final_block: finalBlock },
    });
  }
}

export class RunNotFoundError extends BaseError {
  override name = "RunNotFoundError";
  constructor(runId: number) {
    super(`reconciliation run ${runId} does not exist`, {
      code: "RECON_RUN_NOT_FOUND",
      meta: { run_id: runId },
    });
  }
}
