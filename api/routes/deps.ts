/**
 * What every /v1 route plugin receives: built once by `createV1Plugin` (api/v1.ts). In its own file
 * so the routes import it without importing v1.ts, which imports them.
 */
import type { Redis } from "ioredis";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import type { Ledger } from "../../ledger/index.js";
import type { ChainHeads } from "../chainStatus.js";
import type { Withdrawals } from "../withdrawals/service.js";

export type V1Deps = {
  common: Common;
  pool: Pool;
  redis: Redis;
  heads: ChainHeads;
  ringWebhooks: () => Promise<unknown>;
  ledger: Ledger;
  withdrawals: Withdrawals;
};
