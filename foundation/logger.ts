import pino, { type DestinationStream, type Logger } from "pino";

export type { Logger };

/** `json` (one JSON object per line, the default: what log shippers read) or `pretty` (for humans). */
export type LogFormat = "json" | "pretty";

/** One pino logger per process; modules take children: logger.child({ component, chain_id }). */
export function createLogger(
  level: string = "info",
  destination?: DestinationStream,
  format: LogFormat = "json",
): Logger {
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
  const out =
    format === "pretty" ? prettyStream(destination ?? process.stdout) : (destination ?? undefined);
  // A destination (tests capture lines through it) or stdout.
  return out ? pino(options, out) : pino(options);
}

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};
const COLOURS: Record<number, string> = { 40: "\u001b[33m", 50: "\u001b[31m", 60: "\u001b[31m" };

/** A value as it reads best on one line: strings bare unless they need quotes, the rest as JSON. */
function show(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

/**
 * One pino JSON line → `12:00:01.234 INFO  [component] message key=value …`, an error's stack on
 * the lines below. Redaction has already happened (pino redacts before it serialises).
 */
export function prettyLine(json: string, colour = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const { level, time, msg, component, err } = o;
  const rest = Object.entries(o).filter(
    ([k]) =>
      !["level", "time", "msg", "component", "err", "service", "pid", "hostname"].includes(k),
  );
  const n = typeof level === "number" ? level : 30;
  const name = (LEVELS[n] ?? String(level)).padEnd(5);
  const when = typeof time === "number" ? new Date(time).toISOString().slice(11, 23) : "";
  const lvl = colour && COLOURS[n] ? `${COLOURS[n]}${name}\u001b[0m` : name;
  const parts = [when, lvl];
  if (component !== undefined) parts.push(`[${String(component)}]`);
  if (msg !== undefined) parts.push(String(msg));
  for (const [k, v] of rest) parts.push(`${k}=${show(v)}`);
  let line = parts.filter((p) => p !== "").join(" ");
  if (err && typeof err === "object") {
    const e = err as { message?: string; stack?: string; type?: string };
    line += `\n    ${(e.stack ?? `${e.type ?? "Error"}: ${e.message ?? ""}`).replaceAll("\n", "\n    ")}`;
  }
  return `${line}\n`;
}

/** A pino destination that writes each JSON line as a pretty line to `out` (colour on a TTY). */
export function prettyStream(out: DestinationStream & { isTTY?: boolean }): DestinationStream {
  const colour = out.isTTY === true;
  return {
    write(chunk: string) {
      for (const line of chunk.split("\n")) if (line !== "") out.write(prettyLine(line, colour));
    },
  };
}
