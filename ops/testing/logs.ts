/**
 * A logger whose output a test reads back: the service's own JSON logger (foundation/logger.ts)
 * writing into memory instead of stdout. `lines` holds each line parsed; `text()` is exactly what
 * the logger wrote (for a test that no secret reached the log, redaction included); `clear()`
 * empties both, between tests that share one logger.
 */
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../foundation/logger.js";

/** A pino line: level (30 info, 40 warn, 50 error), msg and the fields logged. */
export type LogLine = { level: number; msg: string } & Record<string, unknown>;

/** pino's level numbers. */
export const LOG_LEVELS = { info: 30, warn: 40, error: 50, fatal: 60 } as const;

export type CapturedLogger = {
  logger: Logger;
  /** Every line written so far, parsed; the same array throughout (cleared in place). */
  lines: LogLine[];
  /** Everything written so far, as written. */
  text: () => string;
  /** Forgets what was written so far: `lines` and `text()` both start again empty. */
  clear: () => void;
};

export function capturedLogger(level = "info"): CapturedLogger {
  const lines: LogLine[] = [];
  let written = "";
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = chunk.toString();
      written += text;
      // pino writes whole lines, one or more to a chunk.
      for (const line of text.split("\n").filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return {
    logger: createLogger(level, sink),
    lines,
    text: () => written,
    clear: () => {
      lines.length = 0;
      written = "";
    },
  };
}
