import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { metricOnce } from "../foundation/metrics.js";

/**
 * RPC metrics, shared by every adapter on a registry (the signer and the indexer may both build an
 * adapter for the same chain in one process, so metrics are looked up before they are created).
 */
export type RpcMetrics = {
  requests: Counter<"chain_id" | "endpoint" | "method">;
  errors: Counter<"chain_id" | "endpoint" | "kind">;
  latency: Histogram<"chain_id" | "endpoint">;
  endpointHead: Gauge<"chain_id" | "endpoint">;
  behind: Counter<"chain_id" | "endpoint">;
  /**
   * Receipts not taken because their status, a field their fee is read from, or (signer) their logs
   * were missing (receiptFieldMissing, feeFieldMissing; the signer's logsMissing): the
   * signer's chain view and the indexer take such a receipt as one the node does not have yet, so
   * a node that always leaves the field out stalls confirmations or ingestion with no other signal.
   */
  receiptFeeFieldMissing: Counter<"chain_id" | "component" | "field">;
  /**
   * Answers an endpoint gave without a field the caller needs (ReadOptions.incomplete: a receipt
   * without its fee fields), on which the read asked the next endpoint: the endpoint that drops it.
   */
  incomplete: Counter<"chain_id" | "endpoint" | "field">;
  /**
   * Best heads dropped as never reached (rpc.ts BEST_HEAD_UNREACHED_BLOCKS), by the endpoint that
   * showed them: a head far above the chain (a lying proxy, a node of another network with the same
   * chain id) that held the signer's nonce, stall and bump stages meanwhile.
   */
  bestHeadDropped: Counter<"chain_id" | "endpoint">;
  /**
   * Answers an endpoint gave for another chain than ours (its `eth_chainId`, or rpc.ts
   * ReadOptions.otherChain: its block at our final height is another block), by that endpoint: it was set aside a while
   * (OTHER_CHAIN_ASIDE_MS), its head not counted, and the read asked another.
   */
  otherChain: Counter<"chain_id" | "endpoint">;
};

export function rpcMetrics(registry: Registry): RpcMetrics {
  return {
    requests: metricOnce(
      registry,
      "custody_rpc_requests_total",
      () =>
        new Counter({
          name: "custody_rpc_requests_total",
          help: "JSON-RPC calls sent (a batch counts each call)",
          labelNames: ["chain_id", "endpoint", "method"],
          registers: [registry],
        }),
    ),
    errors: metricOnce(
      registry,
      "custody_rpc_errors_total",
      () =>
        new Counter({
          name: "custody_rpc_errors_total",
          help: "RPC failures by kind (timeout, rate_limited, http_5xx, network, rpc_error)",
          labelNames: ["chain_id", "endpoint", "kind"],
          registers: [registry],
        }),
    ),
    latency: metricOnce(
      registry,
      "custody_rpc_request_duration_seconds",
      () =>
        new Histogram({
          name: "custody_rpc_request_duration_seconds",
          help: "HTTP round trip per RPC request (single or batch)",
          labelNames: ["chain_id", "endpoint"],
          buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers: [registry],
        }),
    ),
    endpointHead: metricOnce(
      registry,
      "custody_rpc_endpoint_head",
      () =>
        new Gauge({
          name: "custody_rpc_endpoint_head",
          help: "latest block each endpoint has shown (eth_blockNumber, latest block, or a missing block)",
          labelNames: ["chain_id", "endpoint"],
          registers: [registry],
        }),
    ),
    behind: metricOnce(
      registry,
      "custody_rpc_endpoint_behind_total",
      () =>
        new Counter({
          name: "custody_rpc_endpoint_behind_total",
          help: "reads an endpoint could not serve because it lacked the block (lagging or syncing node); the read moved on",
          labelNames: ["chain_id", "endpoint"],
          registers: [registry],
        }),
    ),
    receiptFeeFieldMissing: metricOnce(
      registry,
      "custody_rpc_receipt_fee_field_missing_total",
      () =>
        new Counter({
          name: "custody_rpc_receipt_fee_field_missing_total",
          help: "receipts not taken because a field their fee is read from, or their status, or (signer) their logs, was missing (field: effectiveGasPrice, l1Fee, status or logs; component: signer or indexer); read again later",
          labelNames: ["chain_id", "component", "field"],
          registers: [registry],
        }),
    ),
    incomplete: metricOnce(
      registry,
      "custody_rpc_incomplete_answers_total",
      () =>
        new Counter({
          name: "custody_rpc_incomplete_answers_total",
          help: "answers without a field the read needs (field: effectiveGasPrice or l1Fee of a receipt); the read asked the next endpoint, and took such an answer only when none had it whole",
          labelNames: ["chain_id", "endpoint", "field"],
          registers: [registry],
        }),
    ),
    bestHeadDropped: metricOnce(
      registry,
      "custody_rpc_best_head_dropped_total",
      () =>
        new Counter({
          name: "custody_rpc_best_head_dropped_total",
          help: "best heads seen dropped because the endpoints advanced past the bound without reaching them (endpoint: the one that showed the head); the signer's nonce, stall and bump stages waited for that head until then",
          labelNames: ["chain_id", "endpoint"],
          registers: [registry],
        }),
    ),
    otherChain: metricOnce(
      registry,
      "custody_rpc_endpoint_other_chain_total",
      () =>
        new Counter({
          name: "custody_rpc_endpoint_other_chain_total",
          help: "answers of an endpoint of another network (its eth_chainId not ours, or another block than ours at our final height): the endpoint was set aside a while, its head not counted, and another asked",
          labelNames: ["chain_id", "endpoint"],
          registers: [registry],
        }),
    ),
  };
}
