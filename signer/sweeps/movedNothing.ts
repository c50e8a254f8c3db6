/**
 * A deposit address whose booked sweep moved none of an asset it was planned for: the transaction
 * mined, but the forwarder's transfer was refused (a token that blacklisted or paused the address)
 * or the value was gone before it mined. Blacklisted, it never moves: the customer's credit is
 * liability the custody cannot pay from that address, a loss to take up with the issuer. The pair
 * backs off longer after each such sweep (candidates.ts), and each one is counted and logged by
 * address, so the custody team sees it (the SweepMovedNothing alert), not a warn line only.
 */
import type { Counter } from "prom-client";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { counterOnce } from "../../foundation/metrics.js";
import { sweepThresholds } from "./planSweeps.js";

/** custody_sweep_moved_nothing_total, registered once per registry. */
export function sweepMovedNothingCounter(
  common: Pick<Common, "metrics">,
): Counter<"chain_id" | "asset"> {
  return counterOnce(common.metrics.registry, {
    name: "custody_sweep_moved_nothing_total",
    help: "Deposit addresses whose booked sweep moved none of an asset it was planned for (a token that blacklisted or paused the address), by chain and asset; the pair backs off, longer after each such sweep in a row",
    labelNames: ["chain_id", "asset"],
  });
}

/**
 * Names every (chain, asset) a sweep is planned for at 0: a series first seen at 1 is no increase
 * to Prometheus, so the first nothing-moved sweep after a start would not fire SweepMovedNothing.
 */
export function nameSweepsMovedNothing(
  common: Pick<Common, "metrics">,
  chains: readonly ChainConfig[],
): void {
  const counter = sweepMovedNothingCounter(common);
  for (const chain of chains) {
    for (const asset of sweepThresholds(chain).keys())
      counter.inc({ chain_id: String(chain.chainId), asset }, 0);
  }
}
