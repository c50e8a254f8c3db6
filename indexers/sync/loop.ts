/**
 * The ingest loop: one writer per chain (a session advisory lock), then passes until stopped. A
 * halted chain makes no pass (it waits for `custody-node chains resume`); a pass that finds no
 * endpoint at the blocks it needs waits without concluding anything.
 *
 * Polling is paced by the block time, counted from when a pass started (its poll), not from when
 * its commit ended: after a pass that stored the next block, the next poll comes when the following
 * block is due (one poll interval after the poll that saw this one), then every idle interval (a
 * quarter of the poll interval) until it appears. The poll that sees a block comes at most an idle
 * interval after it was mined, so the next one, a block time later, is mined by then: about one
 * poll a block, each block seen within an idle interval however long the commit took, and a late
 * block re-aligns the schedule to itself. A pass that stored several blocks (we were behind) polls
 * again at once. With new heads over WS the interval is only a backstop: a head wakes the loop.
 */
import { ChainDataInconsistentError, NoHealthyEndpointError } from "../../chains/index.js";
import { backoffMs } from "../../foundation/backoff.js";
import type { PoolClient } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import { lockSessionSql, unlockWithin, watchLock } from "../../foundation/sessionLock.js";
import { openHalt } from "../halts.js";
import type { SyncContext } from "./context.js";
import { type PassResult, syncPass, watchHeads } from "./realtime.js";

/** First key of the per-chain advisory lock (the second is the chain id). */
export const INDEXER_LEASE_NAMESPACE = 0x636e6478; // "cndx" (1668179064)

export type IngestLoop = {
  start: () => void;
  stop: () => Promise<void>;
  /** One pass now (tests and tools); a halted chain makes none. */
  syncOnce: () => Promise<void>;
};

export function createIngestLoop(
  ctx: SyncContext,
  pollIntervalMs: number,
  stop: () => void,
): IngestLoop {
  const { pool, chainId, logger, metrics, labels, state } = ctx;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let wakeRequested = false;
  let waitingLogged = false;
  const idlePollMs = Math.max(50, Math.floor(pollIntervalMs / 4));

  /**
   * Is the chain halted? Only this chain's lease holder opens a halt (sync/reorg.ts, which sets
   * `state.halted` itself), and the resume command runs in another process: so while halted it is
   * read each pass, and while running at most every `haltRecheckMs` (and on taking the lease), not
   * one more round trip per block.
   */
  let haltCheckedAt = 0;
  async function checkHalt(): Promise<boolean> {
    const halt = await openHalt(pool, chainId);
    haltCheckedAt = Date.now();
    state.halted = halt ? halt.reason : null;
    if (halt) ctx.knownTip = null; // the operator's resume may move the checkpoint
    return halt !== null;
  }
  async function halted(): Promise<boolean> {
    if (state.halted === null && Date.now() - haltCheckedAt < ctx.haltRecheckMs) return false;
    return checkHalt();
  }

  async function syncOnce(): Promise<void> {
    if (await checkHalt()) return;
    await syncPassCounted();
  }

  /**
   * One writer per chain: a session advisory lock on a dedicated connection. It dies with the
   * process (kill -9 included), so a standby takes over without any cleanup.
   */
  let lease: PoolClient | undefined;
  let releaseLease: (() => Promise<void>) | undefined;
  async function holdLease(): Promise<boolean> {
    if (lease) return true;
    const client = await pool.connect();
    const { rows } = await client.query<{ ok: boolean }>(
      "SELECT pg_try_advisory_lock($1, $2) AS ok",
      [INDEXER_LEASE_NAMESPACE, chainId],
    );
    if (!rows[0]?.ok) {
      client.release();
      return false;
    }
    // A connection gone silent is noticed (the lease lost) and its session ended by Postgres
    // (foundation/sessionLock.ts): a cut-off writer must not keep the chain's lock for hours.
    // Watched from the moment it holds the lock: a session that ends while the lease is set up
    // (an operator's pg_terminate_backend, a failover) freed the lock for another writer at once.
    // This connection is closed, never pooled again, once the lease ends.
    let lostWhileSettingUp = false;
    const stopWatch = watchLock(client, ctx.leaseLostAfterMs, () => {
      if (lease !== client) {
        lostWhileSettingUp = true;
        return;
      }
      lease = undefined;
      state.leaseHeld = false;
      stopWatch();
      logger.warn({ msg: "indexer lease lost" });
      client.release(true);
    });
    try {
      await client.query(lockSessionSql(ctx.leaseLostAfterMs));
      // Another process may have halted or resumed the chain while we stood by: read the halt
      // before this task is the writer, whose gauges export `state.halted` (a stale 1 is a
      // ChainHalted page for a chain resumed meanwhile).
      await checkHalt();
    } catch (error) {
      stopWatch();
      client.release(true);
      throw error;
    }
    if (lostWhileSettingUp) {
      stopWatch();
      client.release(true);
      logger.warn({ msg: "indexer lease lost" });
      return false;
    }
    releaseLease = async () => {
      if (lease !== client) return;
      lease = undefined;
      state.leaseHeld = false;
      stopWatch();
      // Bounded: a stop on a silent lease connection must end within the ECS stop timeout.
      await unlockWithin(
        client,
        "SELECT pg_advisory_unlock($1, $2)",
        [INDEXER_LEASE_NAMESPACE, chainId],
        ctx.leaseLostAfterMs,
      );
      client.release(true);
    };
    lease = client;
    state.leaseHeld = true;
    // Another process may have written while we stood by; the endpoints' heads are old news.
    ctx.knownTip = null;
    ctx.headsAsked = false;
    logger.info({ msg: "indexer lease acquired" });
    return true;
  }

  async function run(): Promise<void> {
    let failures = 0;
    let standbyLogged = false;
    while (!ctx.stopping()) {
      let pause = pollIntervalMs;
      const passStart = Date.now();
      try {
        if (!(await holdLease())) {
          if (!standbyLogged) logger.info({ msg: "another indexer holds this chain, standing by" });
          standbyLogged = true;
          state.standby = true;
          state.syncedAt = Date.now();
          await sleep(Math.max(1000, pollIntervalMs));
          continue;
        }
        state.standby = false;
        if (await halted()) {
          // Halted: alive and waiting for an operator; readiness says why.
          state.syncedAt = Date.now();
          await sleep(Math.max(1000, pollIntervalMs));
          continue;
        }
        const result = await syncPassCounted();
        state.syncedAt = Date.now();
        state.lastError = null;
        failures = 0;
        // Pacing (see the top of this file).
        if (result === "behind") pause = 0;
        else if (ctx.chain.wsUrl) pause = pollIntervalMs;
        else if (result === "idle") pause = idlePollMs;
        else pause = Math.max(0, passStart + pollIntervalMs - Date.now());
      } catch (err) {
        if (ctx.stopping()) break;
        failures++;
        const code = err instanceof BaseError ? err.code : "UNEXPECTED";
        state.lastError = err instanceof Error ? err.message : String(err);
        metrics.errors.inc({ ...labels, code });
        // Inconsistent data is what a reorg in progress looks like: retry soon, quietly.
        if (err instanceof ChainDataInconsistentError || err instanceof NoHealthyEndpointError)
          logger.info({ msg: "waiting", reason: state.lastError });
        else logger.warn({ msg: "ingest failed, retrying", err, failures });
        await sleep(backoffMs(failures, { baseMs: pollIntervalMs, maxMs: 5000, maxDoublings: 5 }));
        continue;
      }
      await sleep(pause);
    }
    await releaseLease?.();
  }

  async function syncPassCounted(): Promise<PassResult> {
    try {
      const result = await syncPass(ctx);
      if (state.noHealthyEndpoint === null) waitingLogged = false;
      return result;
    } catch (error) {
      if (error instanceof NoHealthyEndpointError) {
        state.noHealthyEndpoint = `${error.shortMessage} (${error.details})`;
        if (!waitingLogged)
          logger.warn({
            msg: "no healthy RPC endpoint: ingestion waits",
            reason: state.noHealthyEndpoint,
          });
        waitingLogged = true;
      }
      throw error;
    }
  }

  // A wake-up that arrives during a pass (not during a sleep) must not be lost: the pass may have
  // read the head just before the new block, so the next sleep is skipped instead.
  function requestWake(): void {
    if (wake) wake();
    else wakeRequested = true;
  }

  function sleep(ms: number): Promise<void> {
    if (wakeRequested || ctx.stopping()) {
      wakeRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wake = done;
    });
  }

  let unwatchHeads: (() => Promise<void>) | undefined;
  return {
    syncOnce,
    start() {
      if (loop) return;
      unwatchHeads = watchHeads(ctx, requestWake);
      loop = run();
    },
    async stop() {
      stop();
      await unwatchHeads?.();
      requestWake();
      await loop?.catch(() => {});
    },
  };
}
