/**
 * A periodic pass (withdrawal outcomes, deposit events, the deposit-crediting sweep): runs `fn`, waits `intervalMs`, repeats;
 * never overlaps itself; `stop` waits for the pass in progress. Passes re-read Postgres, so a
 * skipped or failed pass only delays work.
 */
import type { Logger } from "./logger.js";

export type Loop = { stop: () => Promise<void> };

export function startLoop({
  name,
  intervalMs,
  logger,
  fn,
  stopping = () => false,
}: {
  name: string;
  intervalMs: number;
  logger: Logger;
  fn: () => Promise<unknown>;
  /**
   * The process is stopping (its `common.shutdown.isShuttingDown`). The service's stop aborts the
   * RPC client's signal before it stops the roles (ops/start.ts): a pass whose read failed then
   * failed for the stop, and is logged as that (info), not as a failed pass (warn).
   */
  stopping?: () => boolean;
}): Loop {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    running = fn()
      .then(() => undefined)
      .catch((err) => {
        if (stopped || stopping())
          logger.info({ msg: "periodic pass interrupted by stop", pass: name, err });
        else logger.warn({ msg: "periodic pass failed", pass: name, err });
      })
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
