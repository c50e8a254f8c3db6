import os from "node:os";

/** The load averages (1, 5, 15 min) as one string: benchmarks on a shared machine say how busy it was. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(", ");
}

/** One line describing the machine, printed above every benchmark's figures. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown cpu";
  return `machine: ${os.cpus().length} cores (${cpu.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()}, load average ${loadAverage()} (1, 5, 15 min)`;
}

/** Print a figure as `label: value unit`. */
export function figure(label: string, value: number, unit: string, digits = 0): void {
  console.log(`${label}: ${value.toFixed(digits)} ${unit}`);
}
