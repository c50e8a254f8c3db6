/** Registers the ledger's part of the `worker` role (deposit crediting, hold expiry). */
import { registerRole } from "../foundation/roles.js";
import { createLedger } from "./createLedger.js";
import { startCreditingWorker } from "./creditingWorker.js";

registerRole({
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
});
