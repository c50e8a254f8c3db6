/**
 * One sweep tick for a chain: open again the failed sweeps and cold moves whose failure a deep
 * reorg undid (failureUndone.ts), follow what was booked until final and settle what the signer
 * finished (sweeps, cold moves), then move hot-wallet value above its ceiling to cold, then
 * request new sweeps. Settling first frees the addresses of failed sweeps and makes booked amounts
 * count before the next plan. Every step re-reads Postgres, so a tick after a crash (or a lost
 * doorbell) finishes whatever was owed. On a halted chain (docs/chain-halts.md) nothing new is
 * planned: the ledger's balances there may count deposits the chain no longer has, so no sweep and
 * no cold move is requested until an operator resumes it; what was requested before is followed
 * and settled as usual (the signer holds back any of it not sent yet: broadcaster/halt.ts).
 */
import type { EvmAdapter } from "../../chains/evm/createEvmAdapter.js";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import type { HotWalletConfig } from "../../foundation/config.js";
import type { Pool } from "../../foundation/db.js";
import { openHalt } from "../../indexers/index.js";
import type { Ledger } from "../../ledger/index.js";
import {
  nameColdMoveFailures,
  type StartedColdMove,
  settleColdMoves,
  startColdMoves,
} from "./coldMoves.js";
import { reopenUndoneColdMoves, reopenUndoneSweeps } from "./failureUndone.js";
import { type ColdMoveWaits, followColdMoves } from "./followColdMoves.js";
import { followSweeps } from "./followSweeps.js";
import { nameSweepsMovedNothing } from "./movedNothing.js";
import { type NoSignerSeen, noSignerGauge } from "./noSigner.js";
import { type SettledSweep, settleSweeps } from "./settleSweeps.js";
import { type StartedSweep, startSweeps } from "./startSweeps.js";

export type SweepTickResult = {
  settled: SettledSweep[];
  coldSettled: { id: string; status: "booked" | "failed" }[];
  coldStarted: StartedColdMove[];
  started: StartedSweep[];
};

export type Sweeper = {
  /** Settle, move above-ceiling value to cold, then plan new sweeps. */
  tick: (chainId: number) => Promise<SweepTickResult>;
  /** Only settle what the signer finished (sweeps, cold moves): cheap, run often. */
  settle: (chainId: number) => Promise<Pick<SweepTickResult, "settled" | "coldSettled">>;
};

export function createSweeper({
  common,
  pool,
  ledger,
  chains,
  hotWallets,
  adapterFor,
  failedRetryAfterMs,
  emptyRetryAfterMs,
  emptyRetryMaxMs,
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  chains: readonly ChainConfig[];
  /**
   * The config's `hotWallets[]`: a registered hot wallet none of them signs for (removed from the
   * config) gets no move to cold (noSigner.ts).
   */
  hotWallets: readonly HotWalletConfig[];
  adapterFor: (chain: ChainConfig) => EvmAdapter;
  /**
   * Back-off for addresses of a failed sweep, and for a (hot wallet, asset) whose cold move failed
   * (default ten of the chain's sweep intervals).
   */
  failedRetryAfterMs?: number;
  /**
   * Back-off for an (address, asset) whose last sweep moved nothing (default ten sweep intervals),
   * doubled for each further sweep in a row that moved nothing of it, up to emptyRetryMaxMs
   * (default a day).
   */
  emptyRetryAfterMs?: number;
  emptyRetryMaxMs?: number;
}): Sweeper {
  const depsFor = (chainId: number) => {
    const chain = chains.find((c) => c.chainId === chainId);
    if (!chain) throw new Error(`chain ${chainId} is not served by this sweeper`);
    return { common, pool, ledger, chain, adapter: adapterFor(chain) };
  };
  nameColdMoveFailures(common, chains);
  nameSweepsMovedNothing(common, chains);
  // Registered from the start: the ColdMoveNoSigner alert's metric is exported before any pass.
  noSignerGauge(common);
  /** Per chain, the open halt the last tick saw: each halt is logged once, and its end once. */
  const haltSeen = new Map<number, string>();
  /** Per chain, what was logged at the last pass of states that last (each logged once). */
  const seen = new Map<
    number,
    { followWaits: ColdMoveWaits; reopenWaits: ColdMoveWaits; noSigner: NoSignerSeen }
  >();
  const seenFor = (chainId: number) => {
    let s = seen.get(chainId);
    if (!s) {
      s = { followWaits: new Map(), reopenWaits: new Map(), noSigner: new Map() };
      seen.set(chainId, s);
    }
    return s;
  };
  return {
    async settle(chainId) {
      const deps = depsFor(chainId);
      const logged = seenFor(chainId);
      await reopenUndoneSweeps(deps);
      await reopenUndoneColdMoves({ ...deps, waits: logged.reopenWaits });
      await followSweeps(deps);
      const settled = await settleSweeps(deps);
      await followColdMoves({ ...deps, waits: logged.followWaits });
      const coldSettled = await settleColdMoves(deps);
      return { settled, coldSettled };
    },
    async tick(chainId) {
      const deps = depsFor(chainId);
      const logged = seenFor(chainId);
      await reopenUndoneSweeps(deps);
      await reopenUndoneColdMoves({ ...deps, waits: logged.reopenWaits });
      await followSweeps(deps);
      const settled = await settleSweeps(deps);
      await followColdMoves({ ...deps, waits: logged.followWaits });
      const coldSettled = await settleColdMoves(deps);
      const halt = await openHalt(pool, chainId);
      const seen = haltSeen.get(chainId);
      if (halt) {
        // Once per halt, not per tick (the gauge custody_chain_halted says it all along).
        if (seen !== halt.id) {
          haltSeen.set(chainId, halt.id);
          common.logger.warn({
            msg: "chain halted: no sweep or cold move planned until an operator resumes it",
            component: "sweeps",
            chain_id: chainId,
            halted_since: halt.haltedAt.toISOString(),
            reason: halt.reason,
          });
        }
        return { settled, coldSettled, coldStarted: [], started: [] };
      }
      if (seen !== undefined) {
        haltSeen.delete(chainId);
        common.logger.info({
          msg: "chain resumed: sweeps and cold moves planned again",
          component: "sweeps",
          chain_id: chainId,
        });
      }
      const coldStarted = await startColdMoves({
        ...deps,
        hotWallets,
        noSignerSeen: logged.noSigner,
        ...(failedRetryAfterMs !== undefined ? { failedRetryAfterMs } : {}),
      });
      const started = await startSweeps({
        ...deps,
        ...(failedRetryAfterMs !== undefined ? { failedRetryAfterMs } : {}),
        ...(emptyRetryAfterMs !== undefined ? { emptyRetryAfterMs } : {}),
        ...(emptyRetryMaxMs !== undefined ? { emptyRetryMaxMs } : {}),
      });
      return { settled, coldSettled, coldStarted, started };
    },
  };
}
