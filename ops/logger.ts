import pino, { type Logger } from "pino";

export type { Logger };

/** One pino logger per process; modules take children: logger.child({ component, chain_id }). */
export function createLogger(level: string = "info"): Logger {
  return pino({
    level,
    base: { service: "custody-node" },
    redact: {
      paths: [
        "req.headers.authorization",
        "req.headers['x-api-key']",
        "headers.authorization",
        "*.secret",
        "*.apiKey",
        "*.privateKey",
      ],
      censor: "[redacted]",
    },
  });
}
