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

export class BreakNotFoundError extends BaseError {
  override name = "BreakNotFoundError";
  constructor(breakId: string) {
    super(
      `reconciliation break ${breakId} does not exist (expected <run id>:<n> or a break identity)`,
      {
        code: "RECON_BREAK_NOT_FOUND",
        meta: { break_id: breakId },
      },
    );
  }
}

/** `recon credit-inflow` refused: not an inflow break, stale, or nothing to credit. */
export class InflowNotCreditableError extends BaseError {
  override name = "InflowNotCreditableError";
  constructor(breakId: string, why: string) {
    super(`break ${breakId} cannot be credited as an inflow: ${why}`, {
      code: "RECON_INFLOW_NOT_CREDITABLE",
      meta: { break_id: breakId },
    });
  }
}

/** `recon breaks ack|resolve` refused: the break's state or the operator's input does not allow it. */
export class BreakStateError extends BaseError {
  override name = "BreakStateError";
  constructor(breakRef: string, why: string) {
    super(`break ${breakRef} cannot change state: ${why}`, {
      code: "RECON_BREAK_STATE",
      meta: { break: breakRef },
    });
  }
}
