/**
 * Runs the broadcaster for one (chain, hot wallet): stand by until the wallet's lease is ours,
 * resync, then tick until stopped or the lease is lost. Any unexpected error ends the leased
 * session and starts over from the same recovery path a kill -9 takes (crash-only design).
 * `stop()` returns within the shutdown timeout: past it, the lease connection is closed, so a tick
 * still waiting on a node or KMS can write nothing more (the lease is the fencing token).
 */
import type { PublicClient } from "viem";
import type { ChainConfig } from "../chains/index.js";
import type { Common } from "../foundation/common.js";
import type { Pool } from "../foundation/db.js";
import type { QueueFactory } from "../foundation/queues.js";
import {
  type BroadcasterSettings,
  type CrashAt,
  createBroadcaster,
  type SignerAccount,
} from "./broadcaster/index.js";
import { KmsKeyMovedError, LeaseLostError } from "./errors.js";
import { checkHotWalletKey } from "./hotWalletKeys.js";
import { kmsMetrics } from "./kmsAccount.js";
import { acquireLease, type Lease, leaseKey } from "./lease.js";
import {
  HELD_REASONS,
  OPEN_TRANSACTION_STATUSES,
  SIGNER_ALERTS,
  STALL_HEAL_ACTIONS,
  signerMetrics,
} from "./metrics.js";
import { TX_REQUESTS_CHANNEL } from "./requests.js";

export type WalletSignerOptions = {
  common: Common;
  pool: Pool;
  queues: QueueFactory;
  chain: ChainConfig;
  /** Built lazily and retried: KMS being down at start must not stop the process. */
  account: () => Promise<SignerAccount>;
  databaseUrl: string;
  publicClient?: PublicClient;
  /** Idle wait between ticks (a NOTIFY from requestTransaction wakes it early). */
  pollMs?: number;
  batchSize?: number;
  signConcurrency?: number;
  crashAt?: CrashAt | undefined;
  applicationName?: string;
  /** stop() returns within this (default 10 s). */
  shutdownTimeoutMs?: number;
  /** A lease connection silent this long is counted lost (lease.ts, default 10 s). */
  leaseLostAfterMs?: number;
  settings?: Partial<BroadcasterSettings>;
};

export type WalletSigner = {
  stop: () => Promise<void>;
  /** True while this instance holds the lease. */
  isActive: () => boolean;
  /** True once the hot wallet's KMS key is loaded. */
  isLoaded: () => boolean;
};

export function startWalletSigner(options: WalletSignerOptions): WalletSigner {
  const { common, chain } = options;
  const controller = new AbortController();
  const log = common.logger.child({ component: "signer", chain_id: chain.chainId });
  const metrics = signerMetrics(common.metrics.registry);
  let wake: () => void = () => {};
  let active = false;
  let loaded = false;
  let currentLease: Lease | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  // Stopping: this signer's stop(), or the process's shutdown, which aborts the shared signal (the
  // RPC client's) before it stops the roles (ops/start.ts): a tick's read that fails in between
  // failed for the stop, not for the broadcaster, and no lease is taken again.
  const stopping = () => controller.signal.aborted || common.shutdown.isShuttingDown();
  const done = (async () => {
    let account: SignerAccount | undefined;
    while (!stopping() && !account) {
      try {
        const loaded = await options.account();
        // A KMS key must still be the hot wallet it was (its alias not moved to another key):
        // another address has none of the wallet's requests, and serving it looked like serving
        // the wallet. Refused, it is not loaded: readiness fails, HotWalletNotServed fires.
        if (loaded.keyId !== undefined)
          await checkHotWalletKey(options.pool, chain.chainId, loaded.keyId, loaded.address);
        account = loaded;
      } catch (error) {
        // Refused here or by `account` itself (the signer role checks before it registers the
        // address as a hot wallet).
        if (error instanceof KmsKeyMovedError)
          kmsMetrics(common.metrics.registry).keyRefusals.inc({
            key: String(error.meta.key_id),
            reason: "other_key",
          });
        log.error({ msg: "cannot load the hot wallet's KMS key; retrying", err: error });
        await sleep(5000);
      }
    }
    if (!account) return;
    loaded = true;
    const wallet = account.address.toLowerCase();
    const labels = { chain_id: String(chain.chainId), wallet };
    // A standby exports 0 while it waits: NoActiveBroadcaster sums this per wallet, and a wallet
    // no live task has ever held would otherwise have no series (an alert that cannot fire).
    metrics.leaseHeld.set(labels, 0);
    // The alerts on these are increase() > 0: a series first exported at 1 shows no increase, so
    // the first insufficient_funds or nonce_gap of a process would never fire. They start at 0.
    for (const alert of SIGNER_ALERTS) metrics.alerts.inc({ ...labels, alert }, 0);
    metrics.feeCapHits.inc(labels, 0);
    // SignerSendsLost counts heals with increase(): each action's first heal counts only from 0.
    for (const action of STALL_HEAL_ACTIONS) metrics.stallHeals.inc({ ...labels, action }, 0);
    const broadcaster = createBroadcaster({ ...options, account, signal: controller.signal });
    while (!stopping()) {
      const lease = await acquireLease({
        databaseUrl: options.databaseUrl,
        key: leaseKey(chain.chainId, wallet),
        signal: controller.signal,
        listen: [TX_REQUESTS_CHANNEL],
        applicationName: options.applicationName ?? "custody-node signer",
        ...(options.leaseLostAfterMs !== undefined
          ? { lostAfterMs: options.leaseLostAfterMs }
          : {}),
      });
      if (!lease) break;
      currentLease = lease;
      active = true;
      metrics.leaseHeld.set(labels, 1);
      log.info({ msg: "broadcaster lease taken", wallet });
      lease.onNotify((payload) => {
        if (payload === `${chain.chainId}:${wallet}`) wake();
      });
      void lease.lost.then(() => wake());
      try {
        await broadcaster.resync(lease);
        while (!stopping() && lease.isHeld()) {
          const { signed } = await broadcaster.tick(lease);
          if (signed === 0) await sleep(options.pollMs ?? 500);
        }
      } catch (error) {
        if (error instanceof LeaseLostError) log.warn({ msg: "broadcaster lease lost", wallet });
        else if (stopping()) log.info({ msg: "broadcaster tick interrupted by stop", wallet });
        else log.error({ msg: "broadcaster failed; restarting its session", wallet, err: error });
      } finally {
        active = false;
        currentLease = undefined;
        metrics.leaseHeld.set(labels, 0);
        // The active broadcaster speaks for the wallet's balance and open requests; a standby
        // keeping its last session's figures would skew max()/sum() over tasks in the alerts
        // (a stale balance hides a drained wallet from HotWalletBelowFloor).
        metrics.balance.remove(labels);
        for (const status of OPEN_TRANSACTION_STATUSES) metrics.open.remove({ ...labels, status });
        for (const reason of HELD_REASONS) metrics.held.remove({ ...labels, reason });
        await broadcaster.idle();
        await lease.release();
      }
      if (!stopping()) await sleep(1000);
    }
  })();

  return {
    isActive: () => active,
    isLoaded: () => loaded,
    async stop() {
      controller.abort();
      wake();
      const timeoutMs = options.shutdownTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      });
      const late = await Promise.race([done.then(() => false), timedOut]);
      clearTimeout(timer);
      if (late) {
        log.warn({ msg: "signer did not stop in time; closing its lease", timeout_ms: timeoutMs });
        await currentLease?.release();
      }
    },
  };
}
