/**
 * Plan and request sweeps for one chain. First, with no transaction open, read the balances the
 * ledger says are sweepable and what those addresses hold on chain (at the head): a slow node
 * holds no lock and no transaction (which the pool's idle-in-transaction timeout would end).
 * Then, in one Postgres transaction under a per-chain advisory lock (so concurrent workers never
 * plan the same address twice), read the candidates again (an address another pass put in an
 * open sweep meanwhile is left out), keep those unchanged since the on-chain read
 * (unchangedSince), cap them by it, batch them, and for each batch write the sweep, its items and
 * the signer request (same id). A stale on-chain reading can only misstate `planned`: the
 * forwarder moves whole balances and settlement books what its Swept events say moved.
 * A crash before COMMIT leaves nothing; after it, the signer owns the request and settlement
 * finds the open sweep.
 */
import { randomUUID } from "node:crypto";
import { type Address, encodeFunctionData, getAddress, type Hex, zeroAddress } from "viem";
import { forwarderFactory } from "../../chains/contracts/index.js";
import type { EvmAdapter } from "../../chains/evm/createEvmAdapter.js";
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { contractHotWallet, indexedHeights } from "../../indexers/index.js";
import { requestTransaction } from "../requests.js";
import { readSweepCandidates } from "./candidates.js";
import {
  balanceKey,
  capByOnChain,
  planSweeps,
  type SweepCandidate,
  sweepThresholds,
  unchangedSince,
} from "./planSweeps.js";
import { isUnreadBalance, reportUnreadBalance } from "./unreadBalance.js";

/** pg_advisory_xact_lock(SWEEP_LOCK, chainId): one planner per chain at a time. */
export const SWEEP_LOCK = 0x5357_4550; // "SWEP"

/**
 * The longest a pair whose sweeps keep moving nothing (a blacklisted address) waits between
 * tries: one sweep's gas a day, and a lifted blacklist is swept within a day.
 */
export const EMPTY_RETRY_MAX_MS = 24 * 60 * 60 * 1000;

export type StartedSweep = { id: string; addresses: number; items: number; tokens: string[] };

export async function startSweeps({
  common,
  pool,
  chain,
  adapter,
  failedRetryAfterMs = chain.sweepIntervalMs * 10,
  emptyRetryAfterMs = chain.sweepIntervalMs * 10,
  emptyRetryMaxMs = Math.max(emptyRetryAfterMs, EMPTY_RETRY_MAX_MS),
  maxCandidates = chain.sweepBatchSize * 10,
}: {
  common: Common;
  pool: Pool;
  chain: ChainConfig;
  adapter: Pick<EvmAdapter, "rpc" | "getTokenBalances">;
  /** Back-off for addresses of a failed sweep (default ten sweep intervals). */
  failedRetryAfterMs?: number;
  /**
   * Back-off for an (address, asset) whose last sweep moved nothing (default ten sweep intervals),
   * doubled for each further sweep in a row that moved nothing of it…
   */
  emptyRetryAfterMs?: number;
  /** …up to this (default a day, or emptyRetryAfterMs if longer). */
  emptyRetryMaxMs?: number;
  /** (address, asset) pairs planned per pass at most (default ten batches); the next pass takes the next ones. */
  maxCandidates?: number;
}): Promise<StartedSweep[]> {
  const thresholds = sweepThresholds(chain);
  if (thresholds.size === 0) return [];
  // Only pairs whose running ledger balance reaches the threshold can be planned: read just those.
  const candidatesOf = (client: Pick<Pool, "query">) =>
    readSweepCandidates(
      client,
      chain.chainId,
      failedRetryAfterMs,
      emptyRetryAfterMs,
      thresholds,
      maxCandidates,
      emptyRetryMaxMs,
    );
  const seen = await candidatesOf(pool);
  if (seen.length === 0) return [];
  const held = await onChainBalances(
    common,
    chain.chainId,
    adapter,
    seen,
    (await indexedHeights(pool)).get(chain.chainId),
  );
  const started = await withTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1, $2)", [SWEEP_LOCK, chain.chainId]);
    const candidates = unchangedSince(await candidatesOf(client), seen);
    if (candidates.length === 0) return [];
    const plan = planSweeps(capByOnChain(candidates, held), thresholds, chain.sweepBatchSize);
    const out: StartedSweep[] = [];
    for (const sweep of plan) {
      const hotWallet = await contractHotWallet(client, chain.chainId, sweep.factory);
      if (!hotWallet) throw new Error(`factory ${sweep.factory} is not in chain.contracts`);
      const id = `sweep:${chain.chainId}:${randomUUID()}`;
      await client.query(
        `INSERT INTO custody.sweeps (id, chain_id, factory, hot_wallet, tokens)
         VALUES ($1, $2, $3, $4, $5)`,
        [id, chain.chainId, sweep.factory, hotWallet, sweep.tokens.map((t) => t.toLowerCase())],
      );
      await client.query(
        `INSERT INTO custody.sweep_items (sweep_id, chain_id, address, salt, asset, planned)
         SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::numeric[])`,
        [
          id,
          chain.chainId,
          sweep.items.map((i) => i.address),
          sweep.items.map((i) => i.salt),
          sweep.items.map((i) => i.asset),
          sweep.items.map((i) => i.planned.toString()),
        ],
      );
      await requestTransaction(client, {
        id,
        chainId: chain.chainId,
        from: hotWallet,
        to: sweep.factory,
        value: 0n,
        data: encodeFunctionData({
          abi: forwarderFactory.abi,
          functionName: "sweep",
          args: [sweep.salts, sweep.tokens],
        }),
        kind: "sweep",
        refId: id,
      });
      out.push({
        id,
        addresses: sweep.salts.length,
        items: sweep.items.length,
        tokens: sweep.tokens.map((t) => getAddress(t)),
      });
    }
    return out;
  });
  for (const s of started) {
    common.logger.info({
      msg: "sweep requested",
      chain_id: chain.chainId,
      sweep_id: s.id,
      addresses: s.addresses,
      items: s.items,
    });
  }
  return started;
}

/**
 * What each candidate (address, asset) holds at the head, keyed by balanceKey. An asset the node
 * would not read (unreadBalance.ts) has no entry: capByOnChain drops its pairs this pass, and the
 * chain's other assets are still swept. Read only from an endpoint at or past `indexed` (the
 * credits come from blocks up to it): a node behind it answers for its own older state, 0 before
 * the deposits or no code at the token, and nothing was swept for as long as it lagged. Tokens are
 * read at that block (getTokenBalances has no head read with a least height), which only plans:
 * settlement books what the Swept events say moved.
 */
async function onChainBalances(
  common: Common,
  chainId: number,
  adapter: Pick<EvmAdapter, "rpc" | "getTokenBalances">,
  candidates: readonly SweepCandidate[],
  indexed: bigint | undefined,
): Promise<Map<string, bigint>> {
  const byAsset = new Map<string, string[]>();
  for (const c of candidates) byAsset.set(c.asset, [...(byAsset.get(c.asset) ?? []), c.address]);
  const out = new Map<string, bigint>();
  for (const [asset, holders] of byAsset) {
    let balances: bigint[];
    try {
      balances =
        asset === zeroAddress
          ? (
              await adapter.rpc.batch<Hex>(
                holders.map((h) => ({ method: "eth_getBalance", params: [h, "latest"] })),
                indexed === undefined ? {} : { atLeast: indexed },
              )
            ).map((b) => BigInt(b))
          : await adapter.getTokenBalances({
              token: asset as Address,
              holders: holders as Address[],
              ...(indexed === undefined ? {} : { blockNumber: indexed }),
            });
    } catch (error) {
      if (!isUnreadBalance(error)) throw error;
      reportUnreadBalance(common, { chainId, asset, pass: "sweep", error });
      continue;
    }
    holders.forEach((h, i) => {
      out.set(balanceKey(h, asset), balances[i]!);
    });
  }
  return out;
}
