/**
 * The broadcaster for one (chain, hot wallet), run only while holding the wallet's lease. One tick
 * runs the stages in order, each a file here:
 *
 * - intake.ts: pending requests get gas, nonces and KMS signatures; bytes and nonces commit
 *   together before anything is sent (gasPlan.ts is the one place gas is decided).
 * - send.ts: only stored bytes are sent; node errors are classified, one response each.
 * - track.ts: receipts, confirmation, finality; reorgs send requests back to `broadcast` and resend
 *   their stored bytes; missing receipts are `receipt_unknown`, never a failure.
 * - nonces.ts + cancel.ts: the chain's mined count is the nonce truth; every unused nonce of ours
 *   has a live attempt, or its stored bytes go out again, or a bounded cancel job uses it.
 * - stall.ts: the lowest open nonce unmined while the node holds nothing executable at it (a send
 *   lost or wedged in a pool) gets its stored bytes again, then an early bump.
 * - halt.ts: on a halted chain nothing new is signed or sent (what is out is still followed).
 * - bump.ts: replacements at the same nonce with higher fees, never above the cap.
 *   The nonce, stall and bump stages decide nothing on a count from a node behind the best head
 *   seen (chainView.ts `atBestHead`).
 * - undone.ts: a request failed at a final block a deep reorg accepted at the chain's resume took
 *   away is followed again (its payment may have mined instead: `failed_request_paid`); so is one
 *   finalized there, its stored bytes sent again.
 * - gaps.ts: the lowest unused nonce held by no request: a CLI deploy's stored bytes go out again,
 *   or, held by nothing of ours, a `nonce_gap` alert.
 * - fills.ts: an operator's nonce fill (`tx-requests fill-nonce`) signed at the nonce it fills;
 *   then followed like any request.
 * - feeOnTransferRecovery.ts: token payments mined before the tracker read a token's fee on
 *   transfer get their receipt read again, so their callers can book them.
 * - doorbells.ts: tx-outcomes rung for what callers must act on, never waiting on Redis.
 * - attempts.ts: the stored rows; chainView.ts: the chain read through chains/.
 * Crash points for kill -9 tests are in ./crashPoints.ts (inert unless SIGNER_CRASH_AT is set).
 */
import type { Hex, PublicClient } from "viem";
import { createEvmAdapter } from "../../chains/evm/createEvmAdapter.js";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { Pool } from "../../foundation/db.js";
import type { QueueFactory } from "../../foundation/queues.js";
import { indexedHeights, readFinalized } from "../../indexers/index.js";
import type { Lease } from "../lease.js";
import { OPEN_TRANSACTION_STATUSES, signerMetrics } from "../metrics.js";
import { storedNextNonce } from "../requests.js";
import type { WatchedRequest } from "./attempts.js";
import { bump } from "./bump.js";
import { createCanceller } from "./cancel.js";
import { type ChainView, createChainView } from "./chainView.js";
import {
  type BroadcasterContext,
  type BroadcasterSettings,
  createAlert,
  type SignerAccount,
} from "./context.js";
import { type CrashAt, createCrashPoints } from "./crashPoints.js";
import { createDoorbells } from "./doorbells.js";
import { createFeeOnTransferRecovery } from "./feeOnTransferRecovery.js";
import { fillNonces } from "./fills.js";
import { createGapWatch, deployNextNonce } from "./gaps.js";
import { readHalt } from "./halt.js";
import { intake } from "./intake.js";
import { checkNonces } from "./nonces.js";
import { resendLive } from "./send.js";
import { createStallWatch } from "./stall.js";
import { createTracker } from "./track.js";
import { createUndoneFailures } from "./undone.js";
import { createWatchedSet } from "./watchedSet.js";

export type { BroadcasterSettings, SignerAccount } from "./context.js";
export type { CrashAt, CrashPoint } from "./crashPoints.js";
export { parseCrashAt } from "./crashPoints.js";

export type BroadcasterOptions = {
  common: Common;
  pool: Pool;
  queues: QueueFactory;
  chain: ChainConfig;
  account: SignerAccount;
  /** Overrides the viem client built on chains/' fallback transport (fees, estimates, sends). */
  publicClient?: PublicClient;
  /** Requests taken per intake round. */
  batchSize?: number;
  /** Concurrent KMS Sign calls. */
  signConcurrency?: number;
  crashAt?: CrashAt | undefined;
  /** Aborts in-flight RPC waits (the wallet signer's stop). */
  signal?: AbortSignal;
  settings?: Partial<BroadcasterSettings>;
};

export type Broadcaster = {
  /** After taking the lease: nonce from Postgres raised to the chain's pending count; resend stored bytes. */
  resync: (lease: Lease) => Promise<void>;
  /** One round of intake, sending, tracking, nonce checks, cancels and bumps. */
  tick: (lease: Lease) => Promise<{ signed: number }>;
  /** Ring doorbells owed (also started by every tick) and wait for that ring. */
  ringOwedDoorbells: () => Promise<void>;
  /** Resolves when no doorbell ring is in flight. */
  idle: () => Promise<void>;
  nextNonce: () => bigint | undefined;
};

export function defaultSettings(chain: ChainConfig): BroadcasterSettings {
  return {
    batchSize: 100,
    signConcurrency: 16,
    maxCancelAttempts: 5,
    cancelBackoffMs: 1_000,
    maxCancelBackoffMs: 60_000,
    receiptGraceMs: Math.max(5_000, 2 * chain.blockTimeMs),
    fullSearchIntervalMs: Math.max(5_000, chain.blockTimeMs),
    stallResendMs: Math.min(
      Math.max(1_000, 2 * chain.blockTimeMs),
      Math.floor(chain.bumpIntervalMs / 3),
    ),
    unpaidRetryMs: Math.max(5_000, 2 * chain.blockTimeMs),
  };
}

/**
 * The context every stage of one (chain, hot wallet) broadcaster shares (context.ts), as
 * `createBroadcaster` builds it; tests build a stage's context with it too.
 */
export function createBroadcasterContext(options: BroadcasterOptions): BroadcasterContext {
  const { common, pool, queues, chain, account } = options;
  const from = account.address.toLowerCase() as Hex;
  const log = common.logger.child({ component: "signer", chain_id: chain.chainId, wallet: from });
  const metrics = signerMetrics(common.metrics.registry);
  const labels = { chain_id: String(chain.chainId), wallet: from };
  const signal = options.signal
    ? AbortSignal.any([common.shutdown.signal, options.signal])
    : common.shutdown.signal;
  const adapter = createEvmAdapter(chain, {
    common: { ...common, shutdown: { ...common.shutdown, signal } },
  });
  const chainView: ChainView = createChainView({
    chain,
    from,
    rpc: adapter.rpc,
    getFinalizedBlock: adapter.getFinalizedBlock,
    // The snapshot's count and head come only from a node that shows our final block.
    ourFinalBlock: () => readFinalized(pool, chain.chainId),
    logger: log,
    registry: common.metrics.registry,
  });
  return {
    common,
    pool,
    queues,
    chain,
    account,
    from,
    client: options.publicClient ?? adapter.client,
    chainView,
    log,
    metrics,
    labels,
    settings: {
      ...defaultSettings(chain),
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.signConcurrency !== undefined
        ? { signConcurrency: options.signConcurrency }
        : {}),
      ...options.settings,
    },
    alert: createAlert(log, metrics, labels),
    crash: createCrashPoints(options.crashAt, log),
    state: { nextNonce: undefined, unpaidUntil: new Map(), bumpsOwed: new Map(), halt: null },
  };
}

export function createBroadcaster(options: BroadcasterOptions): Broadcaster {
  const ctx = createBroadcasterContext(options);
  const { chain, chainView, log, metrics, labels, from } = ctx;
  const tracker = createTracker(ctx);
  const canceller = createCanceller(ctx);
  const doorbells = createDoorbells(ctx);
  const watchedSet = createWatchedSet(ctx);
  const stallWatch = createStallWatch(ctx);
  const gapWatch = createGapWatch(ctx);
  const feeOnTransferRecovery = createFeeOnTransferRecovery(ctx);
  const undoneFailures = createUndoneFailures(ctx);
  let lastBalanceAt = 0;

  async function observe(watched: readonly WatchedRequest[]) {
    for (const status of OPEN_TRANSACTION_STATUSES) {
      metrics.open.set({ ...labels, status }, watched.filter((r) => r.status === status).length);
    }
    if (Date.now() - lastBalanceAt > 10_000) {
      lastBalanceAt = Date.now();
      // From a node at the best head seen first (the first endpoint may lag): the balance the
      // budget reads.
      metrics.balance.set(labels, Number((await ctx.chainView.walletNow()).balance));
    }
  }

  return {
    nextNonce: () => ctx.state.nextNonce,
    async resync(lease) {
      lastBalanceAt = 0; // a new session exports the balance at its first tick (walletSigner.ts)
      const stored = await storedNextNonce(lease, chain.chainId, from);
      // A CLI deploy killed after storing its bytes holds its nonce whether or not a node has them
      // (gaps.ts sends them when it is the lowest unused one): no request is given it.
      const deployed = await deployNextNonce(lease, chain.chainId, from);
      // Only nodes at or past the indexed tip are asked: one behind it (syncing, lagging) may lack
      // the wallet's newest transaction, one no request of ours holds (a factory deploy sent
      // outside the signer), and its lower count would sign a request at a used nonce (nonce too
      // low, then needs_review). No node there: the resync fails and the session starts again.
      const tip = (await indexedHeights(ctx.pool)).get(chain.chainId);
      const pending = await chainView.highestPendingCount(tip);
      let next = stored;
      for (const n of [deployed, pending]) if (n > next) next = n;
      ctx.state.nextNonce = next;
      log.info({
        msg: "nonce resynced",
        next_nonce: String(ctx.state.nextNonce),
        stored_next: String(stored),
        deploy_next: String(deployed),
        chain_pending: String(pending),
      });
      const snap = await chainView.snapshot();
      await readHalt(ctx);
      await resendLive(ctx, lease, { onlyUnsent: false, latestCount: snap.latestCount });
    },
    async tick(lease) {
      // At the tick's start: on a halted chain intake signs nothing; every send of bytes no node
      // has taken reads it again (halt.ts), so a halt opened during the tick holds them too.
      await readHalt(ctx);
      const signed = await intake(ctx, lease);
      const snap = await chainView.snapshot();
      await fillNonces(ctx, lease, snap);
      await resendLive(ctx, lease, { onlyUnsent: true, latestCount: snap.latestCount });
      // Before the watched set is read: a failure a deep reorg undid is followed again (undone.ts).
      await undoneFailures.check(lease, snap);
      // Only rows that changed since the last tick are read (watchedSet.ts).
      let watched = await watchedSet.read();
      if (watched.length > 0) {
        await tracker.track(lease, watched, snap);
        watched = await watchedSet.read();
      }
      // Also with nothing watched: a `failed` request outside the set whose nonce the chain has not
      // used gets its cancels here (nonces.ts), or that nonce stays open while the wallet is idle.
      const { jobs, legacyFailed } = await checkNonces(ctx, lease, watched, snap);
      await canceller.run(lease, jobs, snap.head);
      // A count from a node behind the best head seen is as of an older block (nonces.ts): a
      // nonce used since reads as open, and a replacement would be signed for it (a fee-cap
      // alert raised for it). Both wait for a node at the head, as the nonce stage does.
      if (snap.atBestHead && (watched.length > 0 || legacyFailed.size > 0)) {
        const bumpNow = await stallWatch.check(lease, watched, snap);
        await bump(ctx, lease, watched, snap.latestCount, bumpNow, legacyFailed);
      }
      await gapWatch.check(lease, watched, snap);
      await observe(watched);
      doorbells.ringOwed();
      // Not in the watched set: the rows it reads are mostly final (mined before migration 0111).
      await feeOnTransferRecovery.run(lease);
      return { signed };
    },
    ringOwedDoorbells: () => doorbells.ringOwedNow(),
    idle: () => doorbells.idle(),
  };
}
