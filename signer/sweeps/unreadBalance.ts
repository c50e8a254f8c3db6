/**
 * A listed asset whose balance the node would not give at the head: the token has no code there
 * (not deployed on this chain yet, a wrong address in config, a node without its state) and
 * answers "0x" (CHAIN_BALANCE_UNKNOWN), or the node refused the read (a contract without
 * balanceOf reverts it). Only that asset is left out of the pass: it is not swept, nor moved to
 * cold, and nothing is booked or recorded against it (missing data is never evidence, so not 0 and
 * not "nothing to sweep"); the next pass reads it again. A chain-wide failure (no endpoint
 * answers) still fails the pass. Each skip is logged and counted, so a token that never reads
 * is seen, not a chain whose sweeps silently stopped.
 */
import type { Counter } from "prom-client";
import { BalanceUnknownError, RpcResponseError } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { counterOnce } from "../../foundation/metrics.js";

/** The node's answer says nothing of this asset's balance (never of the chain's other assets). */
export function isUnreadBalance(error: unknown): error is BalanceUnknownError | RpcResponseError {
  return error instanceof BalanceUnknownError || error instanceof RpcResponseError;
}

/**
 * custody_sweep_balance_unread_total, registered once per registry (the role registers it at
 * start, so /metrics names it before any skip: the SweepBalanceUnread alert reads it).
 */
export function unreadBalanceCounter(
  common: Pick<Common, "metrics">,
): Counter<"chain_id" | "asset" | "pass"> {
  return counterOnce(common.metrics.registry, {
    name: "custody_sweep_balance_unread_total",
    help: "Balance reads of a listed asset a sweep pass could not use (no code at the token, a refused read), by chain, asset and pass (sweep, cold_move); that asset waits for the next pass",
    labelNames: ["chain_id", "asset", "pass"],
  });
}

export function reportUnreadBalance(
  common: Pick<Common, "metrics" | "logger">,
  args: { chainId: number; asset: string; pass: "sweep" | "cold_move"; error: unknown },
): void {
  const asset = args.asset.toLowerCase();
  unreadBalanceCounter(common).inc({ chain_id: String(args.chainId), asset, pass: args.pass });
  common.logger.error({
    msg: "a listed asset's balance could not be read at the head; it is skipped this pass",
    component: "sweeps",
    chain_id: args.chainId,
    asset,
    pass: args.pass,
    err: args.error,
  });
}
