/** The api module's Prometheus metrics, registered once per registry (several factories share it). */
import { Counter, Histogram, type Registry } from "prom-client";
import { counterOnce, metricOnce } from "../foundation/metrics.js";

export type ApiMetrics = {
  requests: Histogram<"method" | "route" | "status">;
  withdrawals: Counter<"status">;
  deliveries: Counter<"result">;
  blockedWithdrawals: Counter<"outcome">;
  failureUndoneUnheld: Counter<never>;
};

export function apiMetrics(registry: Registry): ApiMetrics {
  return {
    requests: metricOnce(
      registry,
      "custody_api_request_duration_seconds",
      () =>
        new Histogram({
          name: "custody_api_request_duration_seconds",
          help: "Duration of /v1 requests in seconds, by method, route template and status",
          labelNames: ["method", "route", "status"],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          registers: [registry],
        }),
    ),
    withdrawals: metricOnce(
      registry,
      "custody_api_withdrawal_transitions_total",
      () =>
        new Counter({
          name: "custody_api_withdrawal_transitions_total",
          help: "Withdrawals entering each status (count of transitions)",
          labelNames: ["status"],
          registers: [registry],
        }),
    ),
    deliveries: metricOnce(
      registry,
      "custody_api_webhook_deliveries_total",
      () =>
        new Counter({
          name: "custody_api_webhook_deliveries_total",
          help: "Webhook delivery attempts by result (delivered, failed, dead; not_configured: a job for an endpoint this worker does not have, not attempted)",
          labelNames: ["result"],
          registers: [registry],
        }),
    ),
    // A blocked customer's withdrawal in flight (api/withdrawals/blocked.ts), by what became of it.
    blockedWithdrawals: counterOnce(registry, {
      name: "custody_api_blocked_withdrawals_total",
      help: "Withdrawals of a customer whose withdrawals a reorg shortfall blocked, found in flight by the api worker: pulled_back (unsigned: failed CUSTOMER_WITHDRAWALS_BLOCKED, hold released) or in_flight (already signed: cannot be stopped and may pay out; counted once per withdrawal, by the first worker to find it)",
      labelNames: ["outcome"],
    }),
    // A failed withdrawal whose failure a deep reorg undid that cannot be held again
    // (api/withdrawals/follow.ts: the customer's balance is frozen), once by the first worker to
    // find it (api.withdrawal_failure_undone_unheld, api migration 0025).
    failureUndoneUnheld: counterOnce(registry, {
      name: "custody_api_withdrawal_failure_undone_unheld_total",
      help: "Failed withdrawals whose failure a deep reorg undid (the chain may pay them) that the api worker cannot hold again because the customer's balance is frozen: they stay failed, unfollowed, until it is unfrozen (counted once per undone failure, by the first worker to find it)",
      labelNames: [],
    }),
  };
}
