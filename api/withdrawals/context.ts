/**
 * What a withdrawal's stages share, built once by `createWithdrawals` (service.ts): the pool and
 * ledger, the holds of ./holds.ts, and the one way a withdrawal changes status (./transitions.ts).
 */
import type { Common } from "../../foundation/common.js";
import type { Config } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import type { Logger } from "../../foundation/logger.js";
import type { Ledger } from "../../ledger/index.js";
import type { apiMetrics } from "../metrics.js";
import type { createWithdrawalHolds } from "./holds.js";
import type { Transitions } from "./transitions.js";

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

export type WithdrawalStages = WithdrawalsContext & Transitions;
