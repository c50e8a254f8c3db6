/**
 * What a withdrawal's stages share, built once by `createWithdrawals` (service.ts): the pool and
 * ledger, the holds of ./holds.ts, and the one way a withdrawal changes status (./transitions.ts).
 */
import type { Common } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import type { Pool, PoolClient } from "../../foundation/db.js";
import type { Logger } from "../../foundation/logger.js";
import type { Ledger } from "../../ledger/index.js";
import type { apiMetrics } from "../metrics.js";
import type { createWithdrawalHolds } from "./holds.js";
import type { Withdrawal, WithdrawalStatus } from "./store.js";

export type WithdrawalsContext = {
  common: Common;
  config: Config;
  pool: Pool;
  ledger: Ledger;
  log: Logger;
  metrics: ReturnType<typeof apiMetrics>;
  holds: ReturnType<typeof createWithdrawalHolds>;
  /** Rings the webhook dispatcher after a commit; a failed ring is the dispatcher's sweep's job. */
  ring: () => Promise<void>;
};

export type MoveFields = {
  txHash?: string;
  fee?: bigint;
  failureReason?: string;
  reorged?: boolean;
  /**
   * A `failed` withdrawal back to `broadcast`: a deep reorg undid its failure (the next hold
   * epoch; its failure reason and fee cleared).
   */
  failureUndone?: boolean;
  /** An operator's failure that the signer carries out by cancelling the nonce (set once). */
  failRequested?: { by: string; reason: string };
};

/** The status change and the hand-over to the signer (./transitions.ts). */
export type Transitions = {
  move: (
    client: PoolClient,
    w: Withdrawal,
    to: WithdrawalStatus,
    actor: string,
    details?: Record<string, unknown>,
    fields?: MoveFields,
  ) => Promise<Withdrawal>;
  /** An operator's failure by cancel on a withdrawal already moved on: no status change. */
  recordFailRequest: (
    client: PoolClient,
    w: Withdrawal,
    decision: { by: string; reason: string },
  ) => Promise<Withdrawal>;
  handToSigner: (client: PoolClient, w: Withdrawal) => Promise<Withdrawal>;
};

export type WithdrawalStages = WithdrawalsContext & Transitions;
