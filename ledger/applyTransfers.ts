/**
 * Applying a batch of transfers, in the caller's open transaction (under a savepoint, so a lost id
 * race is redone without aborting it) or in a transaction of its own (missing accounts created
 * outside it first); every result is counted.
 */
import type { Common } from "../foundation/common.js";
import { type Pool, type PoolClient, withTransaction } from "../foundation/db.js";
import { counterOnce } from "../foundation/metrics.js";
import type { BatchInput } from "./applyBatch.js";
import { TransferIdRaceError } from "./errors.js";
import { runBatch } from "./runBatch.js";
import type { TransferResult } from "./types.js";

export type TransferOptions = {
  /** Run inside this client's open transaction instead of a new one. */
  client?: PoolClient;
  /**
   * The ids are expected not to exist yet (e.g. deposit credits of facts with no standing credit):
   * the batch skips reading them first, and is redone the ordinary way (reading them) when its
   * write meets an id that exists or failed. Results are the same either way.
   */
  expectNew?: boolean;
};

/**
 * One result per transfer, in order. With `onlyNew`, all or nothing for new ids: `null` (nothing
 * written) when an id exists or failed, or the ledger refuses one.
 */
export type ApplyTransfers = {
  (
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew: true },
  ): Promise<TransferResult[] | null>;
  (
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew?: false },
  ): Promise<TransferResult[]>;
};

/** Control flow only: the batch needs accounts created first (see `apply`). */
class AccountsMissing extends Error {
  readonly sql: string;
  readonly params: unknown[];
  constructor(sql: string, params: unknown[]) {
    super("accounts missing");
    this.sql = sql;
    this.params = params;
  }
}

/** Ids found not new (or a transfer refused) under `onlyNew`: the batch wrote nothing. */
const NOT_ALL_NEW = null;

export function createApplyTransfers({
  common,
  pool,
  knownAssets,
}: {
  common: Common;
  pool: Pool;
  /** Asset ids seen committed (assets are never deleted, so one seen stays valid). */
  knownAssets: Set<string>;
}): ApplyTransfers {
  const registry = common.metrics.registry;
  const transfersTotal = counterOnce(registry, {
    name: "custody_ledger_transfers_total",
    help: "Transfers submitted to the ledger, by result",
    labelNames: ["status"],
  });
  const count = (results: TransferResult[]) => {
    for (const r of results)
      transfersTotal.inc({ status: r.status === "failed" ? r.code : r.status });
  };

  const accountIds = new Map<string, bigint>();
  const refreshAssets = async (ids: Iterable<string>) => {
    const wanted = [...new Set(ids)].filter((id) => !knownAssets.has(id));
    if (wanted.length === 0) return;
    const r = await pool.query<{ id: string }>(
      "SELECT id FROM ledger.assets WHERE id = ANY($1::text[])",
      [wanted],
    );
    for (const row of r.rows) knownAssets.add(row.id);
  };

  async function apply(
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew: true },
  ): Promise<TransferResult[] | null>;
  async function apply(
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew?: false },
  ): Promise<TransferResult[]>;
  async function apply(
    transfers: readonly BatchInput[],
    options: TransferOptions & { onlyNew?: boolean },
  ): Promise<TransferResult[] | null> {
    if (transfers.length === 0) return [];
    await refreshAssets(transfers.flatMap((t) => ("assetId" in t ? [t.assetId] : [])));
    const snapshot = new Set(knownAssets);
    const client = options.client;
    const onlyNew = options.onlyNew === true;
    // Ids taken as new until a write (or an outcome other than created) says otherwise.
    let assumeNew = options.expectNew === true || onlyNew;
    if (client) {
      // A savepoint lets a lost id race be retried without aborting the caller's transaction.
      for (let attempt = 1; ; attempt++) {
        await client.query("SAVEPOINT ledger_batch");
        try {
          const results = await runBatch(client, transfers, {
            knownAssets: snapshot,
            accountIds,
            assumeNew,
          });
          await client.query("RELEASE SAVEPOINT ledger_batch");
          count(results);
          return results;
        } catch (error) {
          if (error instanceof TransferIdRaceError && (attempt < 5 || assumeNew)) {
            await client.query("ROLLBACK TO SAVEPOINT ledger_batch");
            if (onlyNew) return NOT_ALL_NEW;
            assumeNew = false;
            continue;
          }
          throw error;
        }
      }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const results = await withTransaction(pool, (client) =>
          runBatch(client, transfers, {
            knownAssets: snapshot,
            accountIds,
            assumeNew,
            // Missing accounts are created outside the batch's transaction, after it rolled
            // back: creation then commits on its own, never waits inside our lock order, and
            // never needs a second pool connection while this one is held (pool exhaustion).
            createAccounts: async (sql, params) => {
              throw new AccountsMissing(sql, params);
            },
          }),
        );
        count(results);
        return results;
      } catch (error) {
        if (error instanceof AccountsMissing && attempt < 5) {
          await pool.query(error.sql, error.params);
          continue;
        }
        if (error instanceof TransferIdRaceError && (attempt < 5 || assumeNew)) {
          if (onlyNew) return NOT_ALL_NEW;
          assumeNew = false;
          continue;
        }
        throw error;
      }
    }
  }
  return apply;
}
