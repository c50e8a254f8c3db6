/**
 * Sweeps and cold moves whose failure a deep reorg undid. Settled `failed` (a sweep's addresses
 * freed, a cold move's hold voided; the gas of the failing transaction booked), the request is
 * followed again by the signer once an accepted deep reorg took the final block it failed at
 * (signer/broadcaster/undone.ts, `failureUndoneAt`): it may yet be paid (its payment mined at that
 * nonce on the new branch, `failed_request_paid`) or fail again by another transaction. Left
 * `failed`, a paid one stays unbooked (custody:deposits or custody:cold short of the chain) and
 * its gas the old block's. So each pass opens again, before settling, what a request followed
 * again no longer backs: the failure's gas is reversed (`:unbook`, as a reorg reverses a booking),
 * a sweep's items back to unswept (its addresses out of planning while it is open), a cold move
 * held again under its next hold generation. Settlement then books it as it ends, with the ids of
 * the request's new reorg count (sweep) or hold generation (cold move): once. A request undone and
 * failed again by the same transaction at the same fee changes nothing.
 */
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, withTransaction } from "../../foundation/db.js";
import type { Ledger, NewTransfer } from "../../ledger/index.js";
import { getTxOutcomes, type TxOutcome } from "../outcomes.js";
import { assertBooked, coldMoveHold, gasUnbooking } from "./bookings.js";
import {
  type ColdMoveWaits,
  noteColdMoveWait,
  otherOpenColdMove,
  pruneColdMoveWaits,
} from "./followColdMoves.js";

type Deps = { common: Common; pool: Pool; ledger: Ledger; chain: ChainConfig };

type FailedRow = {
  id: string;
  hot_wallet: string;
  tx_hash: string | null;
  fee: bigint | null;
  /** What its gas was booked under: a sweep's booked generation, a cold move's hold generation. */
  generation: number;
};

/**
 * Whether a `failed` settlement no longer stands: the request is not failed now, or failed again
 * by another transaction or at another fee (its gas booked is the old block's).
 */
function failureNoLongerStands(
  row: Pick<FailedRow, "tx_hash" | "fee">,
  o: Pick<TxOutcome, "status" | "txHash" | "fee">,
): boolean {
  if (o.status !== "failed") return true;
  return (
    (o.txHash?.toLowerCase() ?? null) !== (row.tx_hash?.toLowerCase() ?? null) ||
    (o.fee ?? 0n) !== (row.fee ?? 0n)
  );
}

/**
 * The failed sweeps or cold moves (`select`) whose request of `kind` the signer follows again and
 * whose failure no longer stands.
 */
async function undoneRows(
  { pool, chain }: Deps,
  kind: string,
  select: string,
): Promise<{ rows: FailedRow[]; outcomes: Map<string, TxOutcome> }> {
  const undone = await getTxOutcomes(pool, { failureUndone: true, kind });
  const outcomes = new Map(
    undone.filter((o) => o.chainId === chain.chainId).map((o) => [o.requestId, o]),
  );
  if (outcomes.size === 0) return { rows: [], outcomes };
  const { rows } = await pool.query<FailedRow>(select, [chain.chainId, [...outcomes.keys()]]);
  return { rows: rows.filter((r) => failureNoLongerStands(r, outcomes.get(r.id)!)), outcomes };
}

function failureGasUnbooking(chainId: number, of: string, row: FailedRow): NewTransfer[] {
  const fee = row.fee ?? 0n;
  if (!row.tx_hash || fee === 0n) return [];
  return [
    gasUnbooking({
      chainId,
      of,
      txHash: row.tx_hash,
      hotWallet: row.hot_wallet,
      fee,
      generation: row.generation,
    }),
  ];
}

/** Failed sweeps whose failure a deep reorg undid, open again; their ids. */
export async function reopenUndoneSweeps(deps: Deps): Promise<string[]> {
  const { common, pool, ledger, chain } = deps;
  const { rows, outcomes } = await undoneRows(
    deps,
    "sweep",
    `SELECT id, hot_wallet, tx_hash, fee, booked_generation AS generation FROM custody.sweeps
      WHERE chain_id = $1 AND id = ANY($2::text[]) AND status = 'failed'`,
  );
  const out: string[] = [];
  for (const row of rows) {
    const done = await withTransaction(pool, async (client) => {
      const lock = await client.query<{ status: string; tx_hash: string | null }>(
        "SELECT status, tx_hash FROM custody.sweeps WHERE id = $1 FOR UPDATE",
        [row.id],
      );
      const now = lock.rows[0];
      if (now?.status !== "failed" || now.tx_hash !== row.tx_hash) return false;
      const transfers = failureGasUnbooking(chain.chainId, `sweep ${row.id}`, row);
      assertBooked(await ledger.createTransfers(transfers, { client }), `reopening ${row.id}`);
      // Back to what it was when requested, as a booked sweep reorged out (followSweeps.ts).
      await client.query("DELETE FROM custody.sweep_items WHERE sweep_id = $1 AND planned = 0", [
        row.id,
      ]);
      await client.query("UPDATE custody.sweep_items SET swept = NULL WHERE sweep_id = $1", [
        row.id,
      ]);
      await client.query(
        `UPDATE custody.sweeps SET status = 'open', tx_hash = NULL, fee = NULL, settled_at = NULL,
           final_at = NULL
         WHERE id = $1`,
        [row.id],
      );
      return true;
    });
    if (!done) continue;
    out.push(row.id);
    const o = outcomes.get(row.id)!;
    common.logger.warn({
      msg: "failed sweep whose failure a deep reorg undid: open again, followed until it ends",
      component: "sweeps",
      chain_id: chain.chainId,
      sweep_id: row.id,
      failed_tx_hash: row.tx_hash,
      outcome: o.status,
      tx_hash: o.txHash,
    });
  }
  return out;
}

/**
 * Failed cold moves whose failure a deep reorg undid, held again and open; their ids. `waits`: the
 * moves that waited behind another open move at the last pass (followColdMoves.ts).
 */
export async function reopenUndoneColdMoves(
  deps: Deps & { waits?: ColdMoveWaits },
): Promise<string[]> {
  const { waits = new Map() } = deps;
  const waited = new Set<string>();
  try {
    return await reopenColdMoves(deps, waits, waited);
  } finally {
    pruneColdMoveWaits(waits, waited);
  }
}

async function reopenColdMoves(
  deps: Deps,
  waits: ColdMoveWaits,
  waited: Set<string>,
): Promise<string[]> {
  const { common, pool, ledger, chain } = deps;
  const log = common.logger.child({ component: "cold_moves", chain_id: chain.chainId });
  const { rows, outcomes } = await undoneRows(
    deps,
    "cold_move",
    `SELECT id, hot_wallet, tx_hash, fee, hold_generation AS generation FROM custody.cold_moves
      WHERE chain_id = $1 AND id = ANY($2::text[]) AND status = 'failed'`,
  );
  const out: string[] = [];
  for (const row of rows) {
    const done = await withTransaction(pool, async (client) => {
      const lock = await client.query<{
        status: string;
        hold_generation: number;
        cold_address: string;
        asset: string;
        amount: bigint;
      }>(
        `SELECT status, hold_generation, cold_address, asset, amount FROM custody.cold_moves
          WHERE id = $1 FOR UPDATE`,
        [row.id],
      );
      const now = lock.rows[0];
      if (now?.status !== "failed" || now.hold_generation !== row.generation) return false;
      const other = await otherOpenColdMove(client, row.id);
      if (other) {
        waited.add(row.id);
        noteColdMoveWait(
          log,
          waits,
          "cold move whose failure a deep reorg undid waits: another move of its asset is open",
          row.id,
          other,
        );
        return false;
      }
      const next = row.generation + 1;
      const transfers = [
        ...failureGasUnbooking(chain.chainId, `cold move ${row.id}`, row),
        coldMoveHold({
          chainId: chain.chainId,
          moveId: row.id,
          hotWallet: row.hot_wallet,
          coldAddress: now.cold_address,
          asset: now.asset,
          amount: now.amount,
          generation: next,
        }),
      ];
      assertBooked(await ledger.createTransfers(transfers, { client }), `reopening ${row.id}`);
      await client.query(
        `UPDATE custody.cold_moves
            SET status = 'open', hold_generation = $2, tx_hash = NULL, fee = NULL,
                settled_at = NULL, final_at = NULL
          WHERE id = $1`,
        [row.id, next],
      );
      return true;
    });
    if (!done) continue;
    out.push(row.id);
    const o = outcomes.get(row.id)!;
    log.warn({
      msg: "failed cold move whose failure a deep reorg undid: held again and followed until it ends",
      cold_move_id: row.id,
      failed_tx_hash: row.tx_hash,
      outcome: o.status,
      tx_hash: o.txHash,
      hold_generation: row.generation + 1,
    });
  }
  return out;
}
