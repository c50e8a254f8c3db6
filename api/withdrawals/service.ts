/**
 * Withdrawals: create (validate, policy, hold, hand to the signer or wait for approvals), approve /
 * reject (M-of-N distinct approvers, never the requester), cancel, and following the signer's
 * outcome (`getTxOutcomes`, never receipts or the custody tables) to finality: confirmed posts the
 * hold and books the gas; a reorg reverts the posting to a hold; finalized is terminal;
 * receipt_unknown and needs_review keep the hold; failed (before broadcast, reverted in a final
 * block, or by an operator) voids it. Every change is one Postgres transaction holding the
 * withdrawal row lock, with its audit entry, ledger transfers, signer request and webhook event, so
 * a crash leaves either all of it or none.
 */
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import type { Ledger } from "../../ledger/index.js";
import type { ApiKey } from "../apiKeys.js";
import { apiMetrics } from "../metrics.js";
import type { WithdrawalsContext } from "./context.js";
import { createDecisions } from "./decisions.js";
import { createOutcomeFollower } from "./follow.js";
import { createWithdrawalHolds } from "./holds.js";
import { type CreateWithdrawalInput, createIntake } from "./intake.js";
import { createOperatorFail } from "./operatorFail.js";
import type { Withdrawal } from "./store.js";
import { createTransitions } from "./transitions.js";

export type { CreateWithdrawalInput } from "./intake.js";
export { holdId, signerRequestId } from "./transitions.js";

type Decide = (
  caller: ApiKey,
  id: string,
  reason: string | undefined,
  idempotencyKey: string,
) => Promise<Withdrawal>;

export type Withdrawals = {
  create: (
    caller: ApiKey,
    input: CreateWithdrawalInput,
    idempotencyKey: string,
  ) => Promise<Withdrawal>;
  /**
   * Decisions before the signer has it, each under the caller's Idempotency-Key: a retry with the
   * same key and request gets the withdrawal (decisions.ts), as a create's does.
   */
  approve: Decide;
  reject: Decide;
  cancel: Decide;
  /** Apply the signer's progress to withdrawals in flight; returns how many changed. */
  syncOutcomes: () => Promise<number>;
  /**
   * An operator fails a withdrawal in `needs_review` and releases its hold (audited, with a
   * reason): the signer's request is failed first (its own audited record, refused if the chain
   * moved it meanwhile), then the withdrawal, in one transaction. Repeating it finishes the job.
   */
  failByOperator: (id: string, decision: { by: string; reason: string }) => Promise<Withdrawal>;
};

export function createWithdrawals({
  common,
  pool,
  ledger,
  ringWebhooks = async () => {},
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  ringWebhooks?: () => Promise<unknown>;
}): Withdrawals {
  const log = common.logger.child({ component: "withdrawals" });
  const context: WithdrawalsContext = {
    common,
    config: common.config,
    pool,
    ledger,
    log,
    metrics: apiMetrics(common.metrics.registry),
    holds: createWithdrawalHolds(ledger, log),
    ring: async () => {
      await ringWebhooks().catch(() => {});
    },
  };
  const stages = { ...context, ...createTransitions(context) };
  return {
    ...createIntake(stages),
    ...createDecisions(stages),
    ...createOutcomeFollower(stages),
    ...createOperatorFail(stages),
  };
}
