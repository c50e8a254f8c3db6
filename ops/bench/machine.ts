import os from "node:os";

/** One line describing the machine, printed above every benchmark's figures. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown cpu";
  return `machine: ${os.cpus().length} cores (${cpu.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.platform()}`;
}

/** Print a figure as `label: value unit`. */
export function figure(label: string, value: number, unit: string, digits = 0): void {
  console.log(`${label}: ${value.toFixed(digits)} ${unit}`);
}
