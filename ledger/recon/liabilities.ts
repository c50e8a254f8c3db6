/**
 * User liabilities per asset (credits − debits posted over the `user:*` accounts), kept running in
 * `recon.liability_totals` (issue 15): summing every user account is a scan of 1M accounts at
 * production volumes. A run that continues from the run named in `recon.liability_state` adds the
 * postings of the entries that became visible since that run's snapshot (the entries above its seq
 * watermark and those filling its seq gaps: `loadChangedEntries`); a full run, or a run that does
 * not continue from that run, sums the accounts (the check) and replaces the rows.
 *
 * The totals are as of the run's snapshot: the caller takes out entries whose fact is above its
 * block and pending reorg holds afterwards, on its own copy.
 */
import type { PoolClient } from "../../foundation/db.js";
import type { LedgerEntry } from "./types.js";
import type { PreviousRun } from "./watermarks.js";

/** How a run leaves the running totals (written by completeRun, in its transaction). */
export type LiabilityUpdate = {
  /** "replace": summed from the accounts; "continue": moved on from `fromRunId`'s totals. */
  mode: "replace" | "continue";
  fromRunId: number | null;
  totals: ReadonlyMap<string, bigint>;
};

/** A user account's name (docs/contracts.md: `user:<id>`; chartOfAccounts.ts gives it kind user). */
export const isUserAccount = (name: string) => name.startsWith("user:");

/**
 * What a posted entry moves on the user liabilities: credits − debits of each user account it
 * names. Every reader of the liabilities (the running totals, a run's deferred entries, the
 * customers' balances at a run) moves them by this and nothing else.
 */
export function liabilityMoves(
  e: Pick<LedgerEntry, "debit" | "credit" | "amount">,
): [account: string, change: bigint][] {
  const moves: [string, bigint][] = [];
  if (isUserAccount(e.credit)) moves.push([e.credit, e.amount]);
  if (isUserAccount(e.debit)) moves.push([e.debit, -e.amount]);
  return moves;
}

/** Credits − debits posted over the user accounts of the chain's assets, by asset id. */
export async function sumLiabilities(
  client: PoolClient,
  chainId: number,
): Promise<Map<string, bigint>> {
  const r = await client.query<{ asset_id: string; net: bigint }>(
    `SELECT a.asset_id, sum(a.credits_posted - a.debits_posted) AS net
       FROM ledger.account_balances a
      WHERE a.chain_id = $1 AND a.kind = 'user'
      GROUP BY a.asset_id`,
    [chainId],
  );
  return new Map(r.rows.map((row) => [row.asset_id, row.net]));
}

/**
 * The chain's user liabilities at the run's snapshot (`totals`), and how the run moves the running
 * table. `changedEntries` are every posted entry of the chain's assets that became visible since
 * the previous run's snapshot (null in a full run).
 */
export async function liabilitiesAt(
  client: PoolClient,
  args: {
    chainId: number;
    previous: PreviousRun | null;
    changedEntries: readonly LedgerEntry[] | null;
  },
): Promise<LiabilityUpdate> {
  const { chainId, previous } = args;
  if (previous !== null && args.changedEntries !== null) {
    const state = await client.query<{ run_id: string }>(
      "SELECT run_id::text FROM recon.liability_state WHERE chain_id = $1",
      [chainId],
    );
    if (state.rows[0] !== undefined && Number(state.rows[0].run_id) === previous.id) {
      const totals = await client.query<{ asset_id: string; total: bigint }>(
        "SELECT asset_id, total FROM recon.liability_totals WHERE chain_id = $1",
        [chainId],
      );
      const liabilities = new Map(totals.rows.map((r) => [r.asset_id, r.total]));
      const add = (assetId: string, v: bigint) =>
        liabilities.set(assetId, (liabilities.get(assetId) ?? 0n) + v);
      for (const e of args.changedEntries)
        for (const [, change] of liabilityMoves(e)) add(e.assetId, change);
      return { mode: "continue", fromRunId: previous.id, totals: liabilities };
    }
  }
  return { mode: "replace", fromRunId: null, totals: await sumLiabilities(client, chainId) };
}

/**
 * Move the running totals to the run, in the caller's (completeRun's) transaction. A run
 * continuing from another writes only if the totals still stand at that run (a concurrent run may
 * have moved them); otherwise it leaves them to the next run to sum again.
 */
export async function storeLiabilities(
  client: PoolClient,
  args: { chainId: number; runId: number; update: LiabilityUpdate },
): Promise<void> {
  const { chainId, runId, update } = args;
  if (update.mode === "replace") {
    // Row lock on the state first: runs of the chain write the totals one at a time.
    await client.query(
      `INSERT INTO recon.liability_state (chain_id, run_id) VALUES ($1, $2)
       ON CONFLICT (chain_id) DO UPDATE SET run_id = excluded.run_id`,
      [chainId, runId],
    );
  } else {
    const moved = await client.query(
      "UPDATE recon.liability_state SET run_id = $2 WHERE chain_id = $1 AND run_id = $3",
      [chainId, runId, update.fromRunId],
    );
    if (moved.rowCount === 0) return;
  }
  const assets = [...update.totals.keys()];
  await client.query(
    "DELETE FROM recon.liability_totals WHERE chain_id = $1 AND NOT (asset_id = ANY($2::text[]))",
    [chainId, assets],
  );
  await client.query(
    `INSERT INTO recon.liability_totals (chain_id, asset_id, total)
     SELECT $1, * FROM unnest($2::text[], $3::numeric[])
     ON CONFLICT (chain_id, asset_id) DO UPDATE SET total = excluded.total`,
    [chainId, assets, assets.map((a) => update.totals.get(a)!.toString())],
  );
}
