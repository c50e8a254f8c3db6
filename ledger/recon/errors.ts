import { BaseError } from "../../foundation/errors.js";

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

/**
 * A run stopped because its chain's lock was lost mid-run (the lock's session ended or went
 * silent): another reconciler may be running the chain, so nothing of this run is stored as
 * completed (it is marked failed; the chain's next run starts from the last completed one).
 */
export class RunLockLostError extends BaseError {
  override name = "RunLockLostError";
  constructor(chainId: number, runId: number | undefined) {
    super(
      `reconciliation ${runId === undefined ? "run" : `run ${runId}`} of chain ${chainId} stopped: the chain's lock was lost`,
      {
        code: "RECON_LOCK_LOST",
        retryable: true,
        meta: { chain_id: chainId, ...(runId === undefined ? {} : { run_id: runId }) },
      },
    );
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

/** `recon breaks ack|resolve` refused: the break's current state does not allow it (HTTP 409). */
export class BreakStateError extends BaseError {
  override name = "BreakStateError";
  constructor(breakRef: string, why: string) {
    super(`break ${breakRef} cannot change state: ${why}`, {
      code: "RECON_BREAK_STATE",
      meta: { break: breakRef },
    });
  }
}

/** `recon breaks ack|resolve` refused: who/why empty (HTTP 400, the field named). */
export class BreakInputError extends BaseError {
  override name = "BreakInputError";
  constructor(breakRef: string, field: string, why: string) {
    super(`break ${breakRef} cannot change state: ${field} ${why}`, {
      code: "RECON_BREAK_INPUT",
      meta: { break: breakRef, field, errors: [{ field, message: why }] },
    });
  }
}

/** `recon breaks resolve --fixed-by` names no ledger transfer or chain fact of the break's chain (HTTP 422). */
export class BreakFixUnknownError extends BaseError {
  override name = "BreakFixUnknownError";
  constructor(breakRef: string, fixedBy: string, chainId: number) {
    super(
      `break ${breakRef} cannot be resolved: ${fixedBy} is neither a ledger transfer nor a chain fact of chain ${chainId}`,
      {
        code: "RECON_BREAK_FIX_UNKNOWN",
        meta: { break: breakRef, field: "fixedBy", fixed_by: fixedBy },
      },
    );
  }
}

/**
 * `recon breaks resolve --fixed-by <tx>:<position>` names a fact of the break's chain whose every
 * row a reorg orphaned: it is no longer on our chain, so it fixed nothing (HTTP 422).
 */
export class BreakFixOrphanedError extends BaseError {
  override name = "BreakFixOrphanedError";
  constructor(breakRef: string, fixedBy: string, chainId: number) {
    super(
      `break ${breakRef} cannot be resolved: fixedBy ${fixedBy} is a chain fact of chain ${chainId} that a reorg orphaned (not on the canonical chain)`,
      {
        code: "RECON_BREAK_FIX_ORPHANED",
        meta: { break: breakRef, field: "fixedBy", fixed_by: fixedBy },
      },
    );
  }
}

/**
 * A balance read returned no uint256 (empty return data: no contract at the token address, or a
 * node that lost the state). Missing data is never evidence: the run fails instead of booking 0.
 */
export class BalanceUnreadableError extends BaseError {
  override name = "BalanceUnreadableError";
  constructor(chainId: number, address: string, token: string, returned: string) {
    super(`chain ${chainId}: the balance of ${address} in ${token} could not be read`, {
      code: "RECON_BALANCE_UNREADABLE",
      details: `the call returned ${returned}, not a uint256 (is there a contract at ${token}?)`,
      meta: { chain_id: chainId, address, token },
    });
  }
}
