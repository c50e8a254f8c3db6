/** The ledger's part of the `worker` role (deposit crediting, hold expiry); listed in ops/roles.ts. */
import type { RoleDefinition } from "../foundation/roles.js";
import { createLedger } from "./createLedger.js";
import { startCreditingWorker } from "./creditingWorker.js";

export const creditingRole: RoleDefinition = {
  name: "worker",
  description:
    "ledger: deposit crediting (chain-facts doorbell + sweep), compensations, hold expiry",
  async start(ctx) {
    const ledger = createLedger({ common: ctx.common, pool: ctx.pool });
    return startCreditingWorker({
      common: ctx.common,
      pool: ctx.pool,
      queues: ctx.queues,
      ledger,
      chains: ctx.chains,
    });
  },
};
