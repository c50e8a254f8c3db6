/**
 * Follow booked cold moves until their block is final (DESIGN "Finality and bad days"), as
 * followSweeps does for sweeps and the withdrawal follower for withdrawals: a cold move's hold is
 * posted once the signer reports its transaction confirmed, but a reorg above the finalized height
 * can still take that transaction out, and the re-sent bytes may then mine in another block at
 * another fee, or revert. When the signer's outcome shows the booked inclusion left the chain
 * (followAction), the post and the gas booked with it are reversed (compensating transfers that
 * `reverses` the originals; a fee-on-transfer token's fees booked with the post too), the amount
 * is held again under the next hold generation and the move is open again: settleColdMoves posts
 * that hold when the transaction mines again, or voids it when the signer fails the request at a
 * final block. Nothing is released here. A booked move whose outcome is finalized in the booked
 * inclusion is final and no longer followed, unless a deep reorg an operator accepted undid that
 * block (followSweeps.ts reopenFinalUndone): followed again, unbooked, and settled as it ends.
 */
import type { ChainConfig } from "../../chains/index.js";
import type { Common } from "../../foundation/common.js";
import { type Pool, type PoolClient, withTransaction } from "../../foundation/db.js";
import type { Logger } from "../../foundation/logger.js";
import type { Ledger, NewTransfer } from "../../ledger/index.js";
import { getTxOutcomes } from "../outcomes.js";
import {
  assertBooked,
  coldMoveHold,
  coldMoveTokenFeeIds,
  coldMoveTokenFeeUnbooking,
  coldMoveTransferIds,
  coldMoveUnbooking,
  gasUnbooking,
} from "./bookings.js";
import { followAction, reopenFinalUndone } from "./followSweeps.js";

type BookedMove = {
  id: string;
  hot_wallet: string;
  cold_address: string;
  asset: string;
  amount: bigint;
  tx_hash: string | null;
  fee: bigint | null;
  booked_generation: number;
  hold_generation: number;
};

/** Another open move of this move's (chain, hot wallet, asset), which this one cannot open beside. */
export async function otherOpenColdMove(
  client: Pick<PoolClient, "query">,
  moveId: string,
): Promise<string | undefined> {
  const { rows } = await client.query<{ id: string }>(
    `SELECT m.id FROM custody.cold_moves m, custody.cold_moves me
      WHERE me.id = $1 AND m.chain_id = me.chain_id AND m.hot_wallet = me.hot_wallet
        AND m.asset = me.asset AND m.status = 'open'`,
    [moveId],
  );
  return rows[0]?.id;
}

/**
 * Moves that waited behind another open move of their asset at the last pass, each with the move
 * it waited behind. Waiting is expected and ends when that move settles (its own signer request,
 * followed and alerted on by itself): logged at error every pass (one per second) it buried real
 * errors, so it is logged when it begins or the move waited behind changes, at debug on the
 * passes between. One per caller of a pass (createSweeper keeps them across passes).
 */
export type ColdMoveWaits = Map<string, string>;

/** Logs that `moveId` waits behind `openId`: at warn once per wait, at debug on later passes. */
export function noteColdMoveWait(
  log: Logger,
  waits: ColdMoveWaits,
  msg: string,
  moveId: string,
  openId: string,
): void {
  const fields = { msg, cold_move_id: moveId, open_cold_move_id: openId };
  if (waits.get(moveId) === openId) {
    log.debug(fields);
    return;
  }
  waits.set(moveId, openId);
  log.warn(fields);
}

/** Forget the waits of moves that did not wait in this pass (`waited`): a next one is logged again. */
export function pruneColdMoveWaits(waits: ColdMoveWaits, waited: ReadonlySet<string>): void {
  for (const id of waits.keys()) if (!waited.has(id)) waits.delete(id);
}

export type FollowedColdMove = { id: string; action: "final" | "unbooked" };

export async function followColdMoves({
  common,
  pool,
  ledger,
  chain,
  waits = new Map(),
}: {
  common: Common;
  pool: Pool;
  ledger: Ledger;
  chain: ChainConfig;
  /** Moves that waited at the last pass (noteColdMoveWait); omitted: each wait is logged. */
  waits?: ColdMoveWaits;
}): Promise<FollowedColdMove[]> {
  const log = common.logger.child({ component: "cold_moves", chain_id: chain.chainId });
  await reopenFinalUndone({ common, pool, chain }, "cold_move", "custody.cold_moves");
  const waited = new Set<string>();
  try {
    return await followBooked({ pool, ledger, chain }, log, waits, waited);
  } finally {
    pruneColdMoveWaits(waits, waited);
  }
}

async function followBooked(
  { pool, ledger, chain }: { pool: Pool; ledger: Ledger; chain: ChainConfig },
  log: Logger,
  waits: ColdMoveWaits,
  waited: Set<string>,
): Promise<FollowedColdMove[]> {
  const { rows } = await pool.query<BookedMove>(
    `SELECT id, hot_wallet, cold_address, asset, amount, tx_hash, fee, booked_generation,
            hold_generation
       FROM custody.cold_moves
      WHERE chain_id = $1 AND status = 'booked' AND final_at IS NULL ORDER BY settled_at`,
    [chain.chainId],
  );
  if (rows.length === 0) return [];
  const outcomes = new Map(
    (await getTxOutcomes(pool, { requestIds: rows.map((r) => r.id) })).map((o) => [o.requestId, o]),
  );
  const out: FollowedColdMove[] = [];
  for (const row of rows) {
    const o = outcomes.get(row.id);
    const action = o && followAction(row.booked_generation, o);
    if (o?.status === "failed" && !action)
      log.error({
        msg: "signer reported a booked cold move failed without a final block or an operator; the booking stands",
        cold_move_id: row.id,
        tx_hash: row.tx_hash,
        error_code: o.errorCode,
      });
    if (!o || !action) continue;
    const done = await withTransaction(pool, async (client) => {
      const lock = await client.query<{ status: string; hold_generation: number }>(
        "SELECT status, hold_generation FROM custody.cold_moves WHERE id = $1 FOR UPDATE",
        [row.id],
      );
      const now = lock.rows[0];
      if (now?.status !== "booked" || now.hold_generation !== row.hold_generation) return false;
      if (action === "final") {
        await client.query("UPDATE custody.cold_moves SET final_at = now() WHERE id = $1", [
          row.id,
        ]);
        return true;
      }
      // One open move per (chain, hot wallet, asset) (cold_moves_one_open). startColdMoves starts
      // none while this one is followed; a revision without that rule may have: this one waits,
      // still booked and followed, until that one settles.
      const other = await otherOpenColdMove(client, row.id);
      if (other) {
        waited.add(row.id);
        noteColdMoveWait(
          log,
          waits,
          "cold move reorged out after booking waits: another move of its asset is open",
          row.id,
          other,
        );
        return false;
      }
      const move = {
        chainId: chain.chainId,
        moveId: row.id,
        hotWallet: row.hot_wallet,
        coldAddress: row.cold_address,
        asset: row.asset,
        amount: row.amount,
      };
      // What was booked, under the generation it was booked in; then the next generation's hold.
      // A token that took a fee on the move had its post short of the move by the fees booked
      // beside it (settleColdMoves): each is reversed too. Booked in an earlier pass, so committed.
      const { post } = coldMoveTransferIds(row.id, row.hold_generation);
      const posted = (await ledger.getTransfer(post))?.postedDelta ?? row.amount;
      const transfers: NewTransfer[] = [
        coldMoveUnbooking({ ...move, amount: posted, generation: row.hold_generation }),
      ];
      for (let index = 0, charged = posted; charged < row.amount; index++) {
        const tokenFee = await ledger.getTransfer(
          coldMoveTokenFeeIds(row.id, row.hold_generation, index).charge,
        );
        if (!tokenFee) break;
        transfers.push(
          coldMoveTokenFeeUnbooking({
            ...move,
            generation: row.hold_generation,
            index,
            fee: tokenFee.amount,
          }),
        );
        charged += tokenFee.amount;
      }
      const fee = row.fee ?? 0n;
      if (row.tx_hash && fee > 0n) {
        transfers.push(
          gasUnbooking({
            chainId: chain.chainId,
            of: `cold move ${row.id}`,
            txHash: row.tx_hash,
            hotWallet: row.hot_wallet,
            fee,
            generation: row.hold_generation,
          }),
        );
      }
      const next = row.hold_generation + 1;
      transfers.push(coldMoveHold({ ...move, generation: next }));
      assertBooked(await ledger.createTransfers(transfers, { client }), `unbooking ${row.id}`);
      await client.query(
        `UPDATE custody.cold_moves
            SET status = 'open', hold_generation = $2, tx_hash = NULL, fee = NULL,
                settled_at = NULL
          WHERE id = $1`,
        [row.id, next],
      );
      return true;
    });
    if (!done) continue;
    out.push({ id: row.id, action: action === "final" ? "final" : "unbooked" });
    if (action === "unbook")
      log.warn({
        msg: "booked cold move left the chain (reorg): posting reversed and held again until it mines again",
        cold_move_id: row.id,
        tx_hash: row.tx_hash,
        booked_generation: row.booked_generation,
        reorgs: o.reorgs,
        outcome: o.status,
        hold_generation: row.hold_generation + 1,
      });
  }
  return out;
}
