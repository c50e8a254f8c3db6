import { readFileSync } from "node:fs";
import os from "node:os";

/** The load averages (1, 5, 15 min) as one string: benchmarks on a shared machine say how busy it was. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(", ");
}

/**
 * `/proc/pressure/io` (Linux PSI) as "some X %, full Y %" over the last 60 s: the share of time
 * some (or every) task waited for I/O. Database figures on this shared server swing with its
 * write-back (docs/scale.md, session 17: the same crediting pass 513 and 167 ms a quarter of an
 * hour apart), which the load average does not show. Null where the kernel has no PSI.
 */
export function parseIoPressure(text: string): string | null {
  const avg60 = (kind: string) => new RegExp(`^${kind} .*\\bavg60=([0-9.]+)`, "m").exec(text)?.[1];
  const some = avg60("some");
  const full = avg60("full");
  return some === undefined || full === undefined ? null : `some ${some} %, full ${full} %`;
}

export function ioPressure(): string | null {
  try {
    return parseIoPressure(readFileSync("/proc/pressure/io", "utf8"));
  } catch {
    return null;
  }
}

/** The load averages, and the I/O pressure where the kernel reports it. */
export function busyness(): string {
  const io = ioPressure();
  return `load average ${loadAverage()} (1, 5, 15 min)${io ? `, io pressure avg60 ${io}` : ""}`;
}

/** One line describing the machine, printed above every benchmark's figures. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown cpu";
  return `machine: ${os.cpus().length} cores (${cpu.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()}, ${busyness()}`;
}

/** Print a figure as `label: value unit`. */
export function figure(label: string, value: number, unit: string, digits = 0): void {
  console.log(`${label}: ${value.toFixed(digits)} ${unit}`);
}
