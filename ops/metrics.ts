import { collectDefaultMetrics, Registry } from "prom-client";

export type Metrics = { registry: Registry };

/** One registry per process, shared by every module (each registers its own metrics on it). */
export function createMetrics({ defaults = true }: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: "custody-node" });
  if (defaults) collectDefaultMetrics({ register: registry });
  return { registry };
}
