/**
 * A logger whose lines a test reads back: the service's own JSON logger (foundation/logger.ts)
 * writing into memory instead of stdout.
 */
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../foundation/logger.js";

/** A pino line: level (30 info, 40 warn, 50 error), msg and the fields logged. */
export type LogLine = { level: number; msg: string } & Record<string, unknown>;

/** pino's level numbers. */
export const LOG_LEVELS = { info: 30, warn: 40, error: 50, fatal: 60 } as const;

export function capturedLogger(level = "info"): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}
