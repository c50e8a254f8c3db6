/**
 * Readiness of one chain's ingestor. Fails, with the reason in the detail and in the
 * `custody_indexer_unhealthy{reason}` gauge, when the node's head has not advanced for 3 block
 * times (a stuck or lying provider), or when the ingest loop has not completed a pass for 3 block times plus 30 s (stuck on errors);
 * and at once when the chain is halted (a reorg reached a final block: `custody-node chains
 * resume`) or no RPC endpoint has reached the blocks the indexer needs (lagging or syncing nodes).
 * More than `maxLagBlocks` behind the head alone is `degraded`: ready (a backfilling indexer is
 * live and must not be killed), listed in /readyz, and counted by the gauge for alerts.
 */

import type { ChainConfig } from "../chains/index.js";
import type { HealthCheck, HealthCheckResult } from "../foundation/health.js";
import type { UNHEALTHY_REASONS } from "./metrics.js";
import type { IngestorStatus } from "./sync/context.js";

export type IndexerHealthReason = (typeof UNHEALTHY_REASONS)[number];

/** Pure: why this status is unhealthy (empty when healthy). */
export function unhealthyReasons(
  chain: Pick<ChainConfig, "blockTimeMs" | "maxLagBlocks">,
  status: IngestorStatus,
  now: number,
): { reason: IndexerHealthReason; detail: string }[] {
  const out: { reason: IndexerHealthReason; detail: string }[] = [];
  // A standby is ready to take over; the active instance answers for the chain.
  if (status.standby) return out;
  if (status.halted)
    out.push({
      reason: "halted",
      detail: `chain halted: ${status.halted}; inspect with \`custody-node chains halted\`, then \`custody-node chains resume\``,
    });
  if (status.noHealthyEndpoint)
    out.push({ reason: "no_healthy_endpoint", detail: status.noHealthyEndpoint });
  const stallMs = 3 * chain.blockTimeMs;
  if (now - status.headChangedAt > stallMs)
    out.push({
      reason: "head_stalled",
      detail: `chain head ${status.head ?? "?"} has not advanced for ${Math.round((now - status.headChangedAt) / 1000)} s (3 block times = ${stallMs / 1000} s)`,
    });
  if (status.head !== null) {
    const lag = status.indexed === null ? status.head + 1n : status.head - status.indexed;
    if (lag > BigInt(chain.maxLagBlocks))
      out.push({
        reason: "lagging",
        detail: `indexed ${status.indexed ?? "nothing"}, head ${status.head}: ${lag} blocks behind (max ${chain.maxLagBlocks})`,
      });
  }
  if (now - status.syncedAt > stallMs + 30_000)
    out.push({
      reason: "loop_stalled",
      detail: `no successful pass for ${Math.round((now - status.syncedAt) / 1000)} s${status.lastError ? ` (last error: ${status.lastError})` : ""}`,
    });
  return out;
}

/**
 * The readiness check. The gauge is not set here: every scrape computes it from each running
 * ingestor (createIngestor registers it; indexers/metrics.ts), since the alerts read it and nothing
 * may ever ask an indexer task's /readyz.
 */
export function indexerHealthCheck({
  chain,
  ingestor,
}: {
  chain: ChainConfig;
  ingestor: { status: () => IngestorStatus; writes: () => boolean };
}): HealthCheck {
  return {
    name: `indexer:${chain.key}`,
    async check(): Promise<HealthCheckResult> {
      const found = unhealthyReasons(chain, ingestor.status(), Date.now());
      const detail = found.map((f) => f.detail).join("; ");
      // Ready (it takes over the moment the lock is free), but not indexing: say so, since with
      // every task standing by (a dead task's session still holding the lock) nothing indexes.
      if (ingestor.status().standby)
        return {
          ok: true,
          detail:
            "stands by: another Postgres session holds this chain's indexer lease (custody_indexer_lease_held)",
        };
      // Between losing its lease and its next try for it, what it last saw (a halt since resumed,
      // a head since moved) is not the chain's state: the gauges leave it out too (createIngestor).
      if (!ingestor.writes())
        return {
          ok: true,
          detail:
            "does not hold this chain's indexer lease (lost, or not taken yet): it takes it or stands by (custody_indexer_lease_held)",
        };
      if (found.length === 0) return { ok: true };
      // Catching up is not failing: the process is live and serving (an ECS/ALB readiness check
      // must not kill it mid-backfill); /readyz lists it as degraded and the gauge alerts.
      if (found.every((f) => f.reason === "lagging")) return { ok: true, degraded: true, detail };
      return { ok: false, detail };
    },
  };
}
