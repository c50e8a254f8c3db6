/**
 * Follows the signer for withdrawals in flight. The signer's request rows are the truth, so this
 * polls them (every `intervalMs`) rather than consuming the shared `tx-outcomes` queue, whose jobs
 * other consumers (sweeps) also need; a missed doorbell can therefore never strand a withdrawal.
 */
import type { Logger } from "../../ops/logger.js";
import type { Withdrawals } from "./service.js";

export type WithdrawalTracker = { stop: () => Promise<void> };

export function startWithdrawalTracker({
  withdrawals,
  logger,
  intervalMs = 1000,
}: {
  withdrawals: Withdrawals;
  logger: Logger;
  intervalMs?: number;
}): WithdrawalTracker {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = withdrawals
      .syncOutcomes()
      .then(() => undefined)
      .catch((err) => logger.warn({ msg: "withdrawal tracker pass failed", err }))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  timer = setTimeout(tick, 0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
