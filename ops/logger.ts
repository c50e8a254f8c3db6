import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

/** One pino logger per process; modules take children: logger.child({ component, chain_id }). */
export function createLogger(level: string = "info", destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
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
  };
  // A destination (tests capture lines through it) or stdout.
  return destination ? pino(options, destination) : pino(options);
}
