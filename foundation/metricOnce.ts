/**
 * Get-or-register of a metric per registry: modules built more than once per process (per chain,
 * per test) share one series set instead of failing on a second registration. Re-exported by
 * foundation/metrics.ts.
 */
import { Counter, Gauge, type GaugeConfiguration, type Registry } from "prom-client";

/**
 * The metric `name` of `registry`, made by `make` (which registers it) on first use: modules built
 * more than once per process (per chain, per test) share one series set instead of failing on a
 * second registration.
 */
export function metricOnce<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The counter `config.name` of `registry`, registered on first use (metricOnce). */
export function counterOnce<L extends string>(
  registry: Registry,
  config: { name: string; help: string; labelNames: readonly L[] },
): Counter<L> {
  return metricOnce(registry, config.name, () => new Counter({ ...config, registers: [registry] }));
}

/**
 * The gauge `config.name` of `registry`, registered on first use (metricOnce); `collect` (read at
 * each scrape) as prom-client takes it.
 */
export function gaugeOnce<L extends string>(
  registry: Registry,
  config: Omit<GaugeConfiguration<L>, "registers">,
): Gauge<L> {
  return metricOnce(registry, config.name, () => new Gauge({ ...config, registers: [registry] }));
}
