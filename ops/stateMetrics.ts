/**
 * Metrics of the custody state itself, for dashboards and alerts (ops/observability): withdrawals
 * by status, the age of the oldest one in each status and how long the longest-waiting one has
 * been in it, per chain how long the oldest one out has not been mined, and attestations in flight
 * by their transaction's signer status, and each attested chain's attestation age, read from
 * Postgres at scrape time, with the age past which it is overdue from the config; and
 * each chain's hot wallet floor and ceiling from the config, so a rule can compare them with
 * `custody_signer_hot_wallet_balance_wei` (`on(chain_id)`); and how many hot wallets each chain
 * has configured, so a rule can find the ones no signer task reports (HotWalletNotServed); and
 * per chain and asset how many customers owe a reorg receivable and for how long
 * (ReorgReceivableOutstanding).
 *
 * Registered by the api role's process only: the rows are deployment-wide, and one exporter keeps
 * `sum()` over tasks meaningful.
 */
import type { Registry } from "prom-client";
import {
  oldestUnminedByChain,
  type WithdrawalStatusCount,
  withdrawalsByStatus,
} from "../api/withdrawals/statusCounts.js";
import type { ChainConfig } from "../chains/index.js";
import type { HotWalletConfig } from "../foundation/config.js";
import type { Pool } from "../foundation/db.js";
import { gaugeOnce, withinTimeout } from "../foundation/metrics.js";
import {
  attestationOverdueAfterSeconds,
  attestationsInFlight,
  newestConfirmedAttestationAges,
} from "../ledger/attest/status.js";
import { outstandingReorgReceivables } from "../ledger/index.js";
import { getTxOutcomes } from "../signer/index.js";

/** Statuses a withdrawal can still leave: the ones an operator watches for age. */
export const OPEN_WITHDRAWAL_STATUSES = [
  "requested",
  "pending_approval",
  "approved",
  "signing",
  "broadcast",
  "confirmed",
  "receipt_unknown",
  "needs_review",
] as const;

export function registerStateMetrics(
  registry: Registry,
  deps: {
    pool: Pool;
    chains: readonly ChainConfig[];
    hotWallets?: readonly HotWalletConfig[];
    timeoutMs?: number;
  },
): void {
  const timeoutMs = deps.timeoutMs ?? 2000;
  const rows = cachedPerScrape(() => openWithdrawals(deps.pool, timeoutMs));

  // One gauge per figure of the open withdrawals by status, all from one read per scrape; Postgres
  // out: no figure rather than a false zero.
  const byWithdrawalStatus = (
    name: string,
    help: string,
    figure: (s: WithdrawalStatusCount) => number,
  ) =>
    gaugeOnce(registry, {
      name,
      help,
      labelNames: ["status"],
      async collect() {
        this.reset();
        const byStatus = await rows();
        if (!byStatus) return;
        for (const status of OPEN_WITHDRAWAL_STATUSES) {
          const found = byStatus.get(status);
          this.set({ status }, found ? figure(found) : 0);
        }
      },
    });
  byWithdrawalStatus(
    "custody_withdrawals",
    "Withdrawals not yet final (or failed/rejected), by status; read from Postgres at scrape",
    (s) => s.count,
  );
  byWithdrawalStatus(
    "custody_withdrawal_oldest_age_seconds",
    "Seconds since the oldest withdrawal now in this status was requested (0 when none)",
    (s) => s.oldestAgeSeconds,
  );
  // Since the status was entered, not since the request: how long `broadcast` waits to be mined
  // (WithdrawalStuck) or `confirmed` for finality (WithdrawalNotFinalized) does not include how
  // long the withdrawal waited for its approvals.
  byWithdrawalStatus(
    "custody_withdrawal_oldest_in_status_seconds",
    "Seconds the withdrawal longest in this status has been in it (0 when none)",
    (s) => s.longestInStatusSeconds,
  );

  // Per chain, not per status: a withdrawal flipping between broadcast and receipt_unknown would
  // otherwise move its age from one series to the other, and an alert's `for` would restart with
  // each flip (WithdrawalStuck).
  gaugeOnce(registry, {
    name: "custody_withdrawal_oldest_unmined_seconds",
    help: "Seconds since the send (or a reorg's re-send) of the chain's oldest withdrawal out and not mined (in broadcast or receipt_unknown, however often it moved between them; 0 when none); read from Postgres at scrape",
    labelNames: ["chain_id"],
    async collect() {
      this.reset();
      const byChain = await withinTimeout(oldestUnminedByChain(deps.pool), timeoutMs);
      if (!byChain) return; // Postgres out: no figure rather than a false zero
      for (const c of deps.chains) this.set({ chain_id: String(c.chainId) }, 0);
      for (const [chainId, seconds] of byChain) this.set({ chain_id: String(chainId) }, seconds);
    },
  });

  // One in flight holds back every later attestation of its chain (attest.ts `in_flight`): one
  // stuck in receipt_unknown or needs_review is the AttestationStuck alert.
  gaugeOnce(registry, {
    name: "custody_attestations_in_flight",
    help: "Attestations handed to the signer and not yet settled, by chain and the signer's status of their transaction; read from Postgres at scrape",
    labelNames: ["chain_id", "status"],
    async collect() {
      this.reset();
      const rows = await withinTimeout(attestationsInFlight(deps.pool, getTxOutcomes), timeoutMs);
      if (!rows) return; // Postgres out: no figure rather than a false zero
      for (const r of rows) this.set({ chain_id: String(r.chainId), status: r.status }, r.count);
    },
  });

  // Whatever stops a chain's attestation (breaks, liabilities that differ, no final run, no
  // contract, a stuck request: the attestor only logs most of them), its age grows past the bound
  // from its schedule: the AttestationOverdue alert.
  const attested = deps.chains.filter((c) => c.attestation !== undefined);
  gaugeOnce(registry, {
    name: "custody_attestation_age_seconds",
    help: "Seconds since the chain's newest attestation was confirmed on chain (+Inf: none yet), for chains with an attestation schedule; read from Postgres at scrape",
    labelNames: ["chain_id"],
    async collect() {
      this.reset();
      if (attested.length === 0) return;
      const ages = await withinTimeout(
        newestConfirmedAttestationAges(
          deps.pool,
          attested.map((c) => c.chainId),
        ),
        timeoutMs,
      );
      if (!ages) return; // Postgres out: no figure rather than a false one
      for (const c of attested)
        this.set({ chain_id: String(c.chainId) }, ages.get(c.chainId) ?? Number.POSITIVE_INFINITY);
    },
  });
  const overdueAfter = gaugeOnce(registry, {
    name: "custody_attestation_overdue_after_seconds",
    help: "Attestation age past which the chain is overdue: 3 x max(everyBlocks x blockTimeMs, intervalMs) + 1 h (chain attestation schedule)",
    labelNames: ["chain_id"],
  });
  for (const c of attested)
    overdueAfter.set({ chain_id: String(c.chainId) }, attestationOverdueAfterSeconds(c)!);

  // What customers owe for good after a reorg removed a deposit they had spent: repaid by money
  // that comes back to them, or written off by the treasury (`custody-node ledger receivables`).
  // One owed for a week is the ReorgReceivableOutstanding alert. Both from one read per scrape.
  const receivables = cachedPerScrape(() =>
    withinTimeout(outstandingReorgReceivables(deps.pool), timeoutMs),
  );
  const byReceivableAsset = (
    name: string,
    help: string,
    figure: (r: { customers: number; oldestSeconds: number }) => number,
  ) =>
    gaugeOnce(registry, {
      name,
      help,
      labelNames: ["chain_id", "asset_id"],
      async collect() {
        this.reset();
        const rows = await receivables();
        if (!rows) return; // Postgres out: no figure rather than a false zero
        for (const r of rows)
          this.set({ chain_id: String(r.chainId), asset_id: r.assetId }, figure(r));
      },
    });
  byReceivableAsset(
    "custody_ledger_reorg_receivables_outstanding",
    "Customers owing something posted on receivable:reorg:<id>, by chain and asset (repaid or written off brings it down); read from Postgres at scrape",
    (r) => r.customers,
  );
  byReceivableAsset(
    "custody_ledger_reorg_receivable_oldest_seconds",
    "Seconds the longest-owed reorg receivable of the chain and asset has been owed (since its first posting after it was last settled to zero); read from Postgres at scrape",
    (r) => r.oldestSeconds,
  );

  const floor = gaugeOnce(registry, {
    name: "custody_hot_wallet_floor_wei",
    help: "Configured minimum native balance of the chain's hot wallets (wei; chain nativeHotFloor)",
    labelNames: ["chain_id"],
  });
  const ceiling = gaugeOnce(registry, {
    name: "custody_hot_wallet_ceiling_wei",
    help: "Configured native balance above which the hot wallet is moved to cold (wei; chain nativeHotCeiling)",
    labelNames: ["chain_id"],
  });
  // A signer task exports a wallet only once its KMS key is loaded: a key it cannot load (a key
  // policy changed) or a chain whose signer tasks are all gone leaves nothing NoActiveBroadcaster
  // could sum. What the config says each chain has is the count to compare with.
  const hotWallets = gaugeOnce(registry, {
    name: "custody_hot_wallets_configured",
    help: "Hot wallets the config gives the chain (hotWallets[]); signer tasks should report as many in custody_signer_lease_held",
    labelNames: ["chain_id"],
  });
  // Wei as a float, like the balance gauge they are compared with (Number(bigint) on both sides,
  // correctly rounded, so the order of two values is kept): a wallet below its floor by at most
  // half a float step (~1e-16 of the value: 512 wei at 5 ETH) reads as at the floor. Prometheus
  // holds float64 whatever the unit; alerting needs no more.
  for (const chain of deps.chains) {
    const labels = { chain_id: String(chain.chainId) };
    hotWallets.set(labels, (deps.hotWallets ?? []).filter((w) => w.chain === chain.key).length);
    if (chain.nativeHotFloor !== undefined) floor.set(labels, Number(chain.nativeHotFloor));
    if (chain.nativeHotCeiling !== undefined) ceiling.set(labels, Number(chain.nativeHotCeiling));
  }
}

/** `withdrawalsByStatus` (the api's read), or undefined when Postgres fails or is slower than `timeoutMs`. */
function openWithdrawals(
  pool: Pool,
  timeoutMs: number,
): Promise<Map<string, WithdrawalStatusCount> | undefined> {
  return withinTimeout(withdrawalsByStatus(pool, OPEN_WITHDRAWAL_STATUSES), timeoutMs);
}

/** The withdrawal gauges collect in the same scrape: one query serves them. */
function cachedPerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (!pending || now - pending.at > 500) pending = { at: now, value: read() };
    return pending.value;
  };
}
