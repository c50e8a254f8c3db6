import type { Config } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createShutdown, type Shutdown } from "./shutdown.js";

/** Built once per process and passed down to every factory. */
export type Common = {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  shutdown: Shutdown;
};

export function createCommon(
  config: Config,
  overrides: { logger?: Logger; metrics?: Metrics } = {},
): Common {
  const logger =
    overrides.logger ?? createLogger(config.env.LOG_LEVEL, undefined, config.env.LOG_FORMAT);
  const metrics = overrides.metrics ?? createMetrics();
  const shutdown = createShutdown((name, error) =>
    logger.error({ msg: "shutdown step failed", step: name, err: error }),
  );
  return { config, logger, metrics, shutdown };
}
