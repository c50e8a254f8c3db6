/**
 * Follow booked sweeps until their block is final (DESIGN "Finality and bad days"): a sweep is
 * booked once the signer reports it confirmed, but a reorg above the finalized height can still
 * take its transaction out. When the signer's outcome shows the transaction left the block it was
 * booked in (its reorg count grew) or failed after all, the booking is reversed (compensating
 * transfers, `reverses` the originals) and the sweep is open again: settlement books it anew, with
 * ids of the new generation, once it mines again (or fails it). A booked sweep whose outcome is
 * finalized in the booked inclusion is final and no longer followed, unless a deep reorg an
 * operator accepted undid that final block (the signer follows the request again, `finalUndoneAt`,
 * its reorg count grown past the booked one): then it is followed again (reopenFinalUndone), and
 * unbooked as above, so that it is booked as it ends on the new branch (or fails).
 */

import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import { followAction, type Ledger, type NewTransfer } from "../../ledger/index.js";
import { getTxOutcomes } from "../outcomes.js";
import { assertBooked, gasUnbooking, sweepUnbooking } from "./bookings.js";
import { sweepUnbooked } from "./sweepable.js";

type BookedSweep = {
  id: string;
  hot_wallet: string;
  tx_hash: string | null;
  fee: bigint | null;
  booked_generation: number;
};

/** The rule a booking follows (ledger/failureEvidence.ts), re-exported where sweeps use it. */
export { followAction };

export type FollowedSweep = { id: string; action: "final" | "unbooked" };

/**
 * Booked sweeps or cold moves (`table`, a constant) of `kind` settled final whose request a deep
 * reorg an operator accepted took back from final (signer broadcaster/undone.ts): followed again
 * (`final_at` cleared), so the follower reverses the booking its inclusion no longer backs. Only
 * on the signer's word (`finalUndoneAt`, and its reorg count past the booked generation).
 */
export async function reopenFinalUndone(
  { common, pool, chain }: { common: Common; pool: Pool; chain: ChainConfig },
  kind: "sweep" | "cold_move",
  table: "custody.sweeps" | "custody.cold_moves",
): Promise<void> {
  const undone = (await getTxOutcomes(pool, { finalUndone: true, kind })).filter(
    (o) => o.chainId === chain.chainId,
  );
  if (undone.length === 0) return;
  const { rows } = await pool.query<{ id: string }>(
    `UPDATE ${table} t SET final_at = NULL
       FROM unnest($1::text[], $2::int[]) AS v(id, reorgs)
      WHERE t.id = v.id AND t.status = 'booked' AND t.final_at IS NOT NULL
        AND t.booked_generation < v.reorgs
      RETURNING t.id`,
    [undone.map((o) => o.requestId), undone.map((o) => o.reorgs)],
  );
  for (const r of rows)
    common.logger.error({
      msg: "a booked transfer final in a block a deep reorg undid: followed again",
      component: kind === "sweep" ? "sweeps" : "cold_moves",
      chain_id: chain.chainId,
      [`${kind}_id`]: r.id,
    });
}

export async function followSweeps({
  common,
  pool,
  ledger,
  chain,
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  chain: ChainConfig;
}): Promise<FollowedSweep[]> {
  const log = common.logger.child({ component: "sweeps", chain_id: chain.chainId });
  await reopenFinalUndone({ common, pool, chain }, "sweep", "custody.sweeps");
  const { rows } = await pool.query<BookedSweep>(
    `SELECT id, hot_wallet, tx_hash, fee, booked_generation FROM custody.sweeps
     WHERE chain_id = $1 AND status = 'booked' AND final_at IS NULL ORDER BY settled_at`,
    [chain.chainId],
  );
  if (rows.length === 0) return [];
  const outcomes = new Map(
    (await getTxOutcomes(pool, { requestIds: rows.map((r) => r.id) })).map((o) => [o.requestId, o]),
  );
  const out: FollowedSweep[] = [];
  for (const row of rows) {
    const o = outcomes.get(row.id);
    const action = o && followAction(row.booked_generation, o);
    if (o?.status === "failed" && !action)
      log.error({
        msg: "signer reported a booked sweep failed without a final block or an operator; the booking stands",
        sweep_id: row.id,
        tx_hash: row.tx_hash,
        error_code: o.errorCode,
      });
    if (!action) continue;
    const done = await withTransaction(pool, async (client) => {
      const lock = await client.query<{ status: string; booked_generation: number }>(
        "SELECT status, booked_generation FROM custody.sweeps WHERE id = $1 FOR UPDATE",
        [row.id],
      );
      const now = lock.rows[0];
      if (now?.status !== "booked" || now.booked_generation !== row.booked_generation) return false;
      if (action === "final") {
        await client.query("UPDATE custody.sweeps SET final_at = now() WHERE id = $1", [row.id]);
        return true;
      }
      const { rows: items } = await client.query<{ address: string; asset: string; swept: bigint }>(
        "SELECT address, asset, swept FROM custody.sweep_items WHERE sweep_id = $1 AND swept > 0",
        [row.id],
      );
      // What was booked, in the generation it was booked in.
      const booked = {
        chainId: chain.chainId,
        sweepId: row.id,
        hotWallet: row.hot_wallet,
        generation: row.booked_generation,
      };
      const transfers: NewTransfer[] = items.map((i) =>
        sweepUnbooking({ ...booked, address: i.address, asset: i.asset, amount: i.swept }),
      );
      const fee = row.fee ?? 0n;
      if (row.tx_hash && fee > 0n) {
        transfers.push(
          gasUnbooking({ ...booked, of: `sweep ${row.id}`, txHash: row.tx_hash, fee }),
        );
      }
      assertBooked(await ledger.createTransfers(transfers, { client }), `unbooking ${row.id}`);
      await sweepUnbooked(client, row.id);
      // Back to what it was when requested: planned items only, nothing swept yet.
      await client.query("DELETE FROM custody.sweep_items WHERE sweep_id = $1 AND planned = 0", [
        row.id,
      ]);
      await client.query("UPDATE custody.sweep_items SET swept = NULL WHERE sweep_id = $1", [
        row.id,
      ]);
      await client.query(
        `UPDATE custody.sweeps SET status = 'open', tx_hash = NULL, fee = NULL, settled_at = NULL
         WHERE id = $1`,
        [row.id],
      );
      return true;
    });
    if (!done) continue;
    out.push({ id: row.id, action: action === "final" ? "final" : "unbooked" });
    if (action === "unbook")
      log.warn({
        msg: "booked sweep left the chain (reorg): booking reversed until it mines again",
        sweep_id: row.id,
        tx_hash: row.tx_hash,
        generation: row.booked_generation,
        reorgs: o!.reorgs,
      });
  }
  return out;
}
