/** The signer's Prometheus metrics, registered once per registry. */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export type SignerMetrics = ReturnType<typeof create>;

/** The `status` values of custody_signer_open_transactions (the broadcaster's watched requests). */
export const OPEN_TRANSACTION_STATUSES = [
  "signed",
  "broadcast",
  "mined",
  "receipt_unknown",
  "needs_review",
  "confirmed",
] as const;

function create(registry: Registry) {
  const registers = [registry];
  const labelNames = ["chain_id", "wallet"] as const;
  return {
    open: new Gauge({
      name: "custody_signer_open_transactions",
      help: "Requests per wallet not yet final, by status (needs_review > 0 needs a human)",
      labelNames: [...labelNames, "status"],
      registers,
    }),
    attempts: new Counter({
      name: "custody_signer_attempts_total",
      help: "Signed attempts stored, by kind (first, bump, regas: a re-estimated gas limit, cancel)",
      labelNames: [...labelNames, "kind"],
      registers,
    }),
    feeCapHits: new Counter({
      name: "custody_signer_fee_cap_hits_total",
      help: "Bumps limited or refused by the chain's fee cap (alert)",
      labelNames,
      registers,
    }),
    sendErrors: new Counter({
      name: "custody_signer_send_errors_total",
      help: "Node errors on eth_sendRawTransaction, by class",
      labelNames: [...labelNames, "class"],
      registers,
    }),
    timeToMine: new Histogram({
      name: "custody_signer_time_to_mine_seconds",
      help: "From request to its transaction seen in a block",
      labelNames,
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    outcomes: new Counter({
      name: "custody_signer_outcomes_total",
      help: "Requests reaching confirmed, finalized or failed",
      labelNames: [...labelNames, "status"],
      registers,
    }),
    balance: new Gauge({
      name: "custody_signer_hot_wallet_balance_wei",
      help: "Native balance of the hot wallet (wei, as a float: for alerting only)",
      labelNames,
      registers,
    }),
    leaseHeld: new Gauge({
      name: "custody_signer_lease_held",
      help: "1 while this process is the active broadcaster for the wallet",
      labelNames,
      registers,
    }),
    stallHeals: new Counter({
      name: "custody_signer_stall_heals_total",
      help:
        "The lowest open nonce unmined while the node held nothing executable at it: its stored " +
        "bytes resent (resend), or replaced before the bump interval (bump)",
      labelNames: [...labelNames, "action"],
      registers,
    }),
    held: new Gauge({
      name: "custody_signer_held_requests",
      help:
        "Requests the broadcaster holds back, by reason: chain_halted (the chain is halted: " +
        "pending or signed requests wait, nothing new is sent until an operator resumes it)",
      labelNames: [...labelNames, "reason"],
      registers,
    }),
    alerts: new Counter({
      name: "custody_signer_alerts_total",
      help: "Conditions needing a human, by alert: needs_review, cancel_unsendable, confirmed_tx_reorged_out, fee_cap, insufficient_funds, nonce_cancelled, nonce_gap, node_fee_cap, operator_fail_overridden, failed_request_paid",
      labelNames: [...labelNames, "alert"],
      registers,
    }),
  };
}

/** The `alert` values of custody_signer_alerts_total (broadcaster/context.ts `alert`). */
export const SIGNER_ALERTS = [
  "needs_review",
  "cancel_unsendable",
  "confirmed_tx_reorged_out",
  "fee_cap",
  "insufficient_funds",
  "nonce_cancelled",
  "nonce_gap",
  "node_fee_cap",
  "operator_fail_overridden",
  "failed_request_paid",
] as const;

/** The `reason` values of custody_signer_held_requests (broadcaster/halt.ts). */
export const HELD_REASONS = ["chain_halted"] as const;

/** The `action` values of custody_signer_stall_heals_total (broadcaster/stall.ts). */
export const STALL_HEAL_ACTIONS = ["resend", "bump"] as const;

const byRegistry = new WeakMap<Registry, SignerMetrics>();

export function signerMetrics(registry: Registry): SignerMetrics {
  let m = byRegistry.get(registry);
  if (!m) {
    m = create(registry);
    byRegistry.set(registry, m);
  }
  return m;
}
