/**
 * Undone stage: a request `failed` at a final block (its cancel mined there, or its send reverted,
 * or moved nothing) is followed no more, and its caller released what it held. A deep reorg an
 * operator accepted at the chain's resume (`chains resume --accept-reorg`, recorded in the
 * indexer's chain.reorg_log, docs/chain-halts.md) can take that block away, and the new branch may
 * hold the request's own payment at that nonce instead (a node had passed its bytes on): the
 * customer paid while the request says `failed`, and a retry would pay again. So each new row of
 * chain.reorg_log (`custody.reorgs_followed` keeps the last one looked at, per wallet, migration
 * 0119) has the wallet's requests failed in a block above its common ancestor checked against the
 * block a node at the best head shows there:
 *
 * - still ours: nothing changes;
 * - another block: the failure is undone. The request goes back to `broadcast` with
 *   `failure_undone_at` stamped (an event `final_block_undone`), its cancels live again and the
 *   mined one resent; only cancels may use its nonce from now on (attempts.ts `cancelsOnly`: never
 *   its payment). The tracker then finds what took the nonce: a cancel (or a revert) fails it
 *   again at its final block; its payment is recorded `mined` with a `failed_request_paid` event
 *   and alert (track.ts) and followed to final like any payment;
 * - no node there (or none at the best head): no evidence either way; the reorg is looked at again
 *   on a later pass.
 *
 * A request `confirmed` and finalized in such a block (`finalized_at`: followed no more, its
 * caller booked it paid for good) is checked the same way. Another block there: the payment is not
 * on the new branch as recorded. The request goes back to `broadcast` (`finalized_at` and its
 * block cleared, `final_undone_at` stamped, an event `final_block_undone`, alert
 * `confirmed_tx_reorged_out` with `final`), its attempts live again and the one that mined resent:
 * the same stored bytes at the same nonce, never re-signed, so it cannot pay twice (one an operator
 * failed, paid all the same, gets only its cancels back, as track.ts's unmine). The tracker then
 * follows it as any reorged-out payment: mined again (here or in another block) to confirmed and
 * final, or, should it revert on the new branch, failed at its final block; its caller (api/withdrawals/outcome.ts) reverses the posting
 * to a hold and ends it as the request ends. Before this, nothing followed it: its nonce unused,
 * every later nonce waited behind it (gaps.ts alerted `nonce_gap` for a person to send `raw_tx`).
 *
 * A wallet without a row starts at the newest reorg recorded when it first runs here.
 */
import type { Hex } from "viem";
import type { Lease } from "../lease.js";
import { recordEvent } from "./attempts.js";
import type { ChainSnapshot } from "./chainView.js";
import type { BroadcasterContext } from "./context.js";
import { sendRaw } from "./send.js";

/** A request's final block outcome cleared, back to `broadcast` (what both undos below share). */
const OUTCOME_CLEARED = `UPDATE custody.tx_requests
    SET status = 'broadcast', block_number = NULL, block_hash = NULL, receipt_success = NULL,
        gas_used = NULL, effective_gas_price = NULL, fee = NULL, transfer_position = NULL,
        transfer_log_index = NULL, fee_on_transfer = NULL, transfer_moved_nothing = false,
        finalized_at = NULL, reorg_count = reorg_count + 1, outcome_seq = outcome_seq + 1,
        updated_at = now()`;

/**
 * A `failed` request followed again: back to `broadcast`, its final block's outcome cleared,
 * `failure_undone_at` stamped (the UPDATE without its WHERE; also the tests' fixture of it).
 */
export const UNDO_FAILURE = `${OUTCOME_CLEARED}, error_code = NULL, failure_undone_at = now()`;

/**
 * A finalized request followed again: back to `broadcast`, its final block's outcome cleared,
 * `final_undone_at` stamped (migration 0127; the UPDATE without its WHERE). Its payment is sent
 * again as it is: `failure_undone_at` stays unset.
 */
export const UNDO_FINAL = `${OUTCOME_CLEARED}, final_undone_at = now()`;

export type UndoneFailures = {
  check: (lease: Lease, snap: ChainSnapshot) => Promise<void>;
};

type FailedRow = {
  id: string;
  status: "failed" | "confirmed";
  /** An operator failed it, or a failure of it was undone before: never its payment again (attempts.ts cancelsOnly). */
  cancels_only: boolean;
  block_number: string;
  block_hash: Hex;
  tx_hash: Hex | null;
  error_code: string | null;
};

export function createUndoneFailures(ctx: BroadcasterContext): UndoneFailures {
  const { chainId } = ctx.chain;

  async function followed(lease: Lease): Promise<bigint | null> {
    const { rows } = await lease.query<{ reorg_id: string }>(
      `SELECT reorg_id::text FROM custody.reorgs_followed WHERE chain_id = $1 AND from_address = $2`,
      [chainId, ctx.from],
    );
    if (rows[0]) return BigInt(rows[0].reorg_id); // int8 text
    await lease.query(
      `INSERT INTO custody.reorgs_followed (chain_id, from_address, reorg_id)
       SELECT $1, $2, COALESCE(max(id), 0) FROM chain.reorg_log WHERE chain_id = $1
       ON CONFLICT (chain_id, from_address) DO NOTHING`,
      [chainId, ctx.from],
    );
    return null;
  }

  /**
   * The request at its final block moved back to `broadcast` (`undoSql`), attempts live again
   * (`attemptsSql`, its params after the request id), and its event, in one transaction. Returns the
   * raw bytes of the attempt that had mined, to send again (null: none of them; undefined: the
   * request had moved meanwhile, nothing done).
   */
  async function followAgain(
    lease: Lease,
    req: FailedRow,
    step: {
      undoSql: string;
      attemptsSql: string;
      attemptParams: unknown[];
      details: Record<string, unknown>;
    },
  ): Promise<Hex | null | undefined> {
    return lease.transaction(async () => {
      const upd = await lease.query(step.undoSql, [req.id, req.block_hash]);
      if (upd.rowCount === 0) return undefined;
      const { rows } = await lease.query<{ raw_tx: Hex; tx_hash: Hex }>(
        `UPDATE custody.tx_attempts SET status = 'broadcast', broadcast_at = now()
          WHERE request_id = $1 AND status IN ('mined', 'replaced') AND ${step.attemptsSql}
          RETURNING raw_tx, tx_hash`,
        [req.id, ...step.attemptParams],
      );
      await recordEvent(lease, {
        requestId: req.id,
        from: req.status,
        to: "broadcast",
        event: "final_block_undone",
        details: step.details,
      });
      return rows.find((r) => r.tx_hash === req.tx_hash)?.raw_tx ?? null;
    });
  }

  async function undo(lease: Lease, req: FailedRow, canonical: Hex, reorgId: string) {
    const cancel = await followAgain(lease, req, {
      undoSql: `${UNDO_FAILURE} WHERE id = $1 AND status = 'failed' AND block_hash = $2`,
      // The cancel that had mined goes out again at once (the others are live for the stages).
      attemptsSql: "purpose = 'cancel'",
      attemptParams: [],
      details: {
        error_code: req.error_code,
        tx_hash: req.tx_hash,
        block_number: req.block_number,
        block_hash: req.block_hash,
        canonical_block_hash: canonical,
        reorg_id: reorgId,
      },
    });
    if (cancel === undefined) return;
    ctx.log.warn({
      msg: "a request failed at a final block a deep reorg undid: followed again, only cancels use its nonce",
      request_id: req.id,
      error_code: req.error_code,
      tx_hash: req.tx_hash,
      block_number: req.block_number,
    });
    if (cancel) await sendRaw(ctx, lease, cancel);
  }

  /**
   * A finalized payment whose block is gone: followed again, its mined bytes sent again (the same
   * ones: never re-signed, so at most one of its attempts can ever pay at the nonce).
   */
  async function undoFinal(lease: Lease, req: FailedRow, canonical: Hex, reorgId: string) {
    const raw = await followAgain(lease, req, {
      undoSql: `${UNDO_FINAL} WHERE id = $1 AND status = 'confirmed' AND finalized_at IS NOT NULL
            AND block_hash = $2`,
      // As a reorg's unmine (track.ts): one an operator failed (or whose failure was undone
      // before) gets only its cancels back, never its payment.
      attemptsSql: "(purpose = 'cancel' OR NOT $2)",
      attemptParams: [req.cancels_only],
      details: {
        finalized: true,
        tx_hash: req.tx_hash,
        block_number: req.block_number,
        block_hash: req.block_hash,
        canonical_block_hash: canonical,
        reorg_id: reorgId,
      },
    });
    if (raw === undefined) return;
    // Told once the move committed (a pass rolled back changed nothing).
    ctx.log.error({
      msg: "a payment finalized in a block a deep reorg undid: followed again, its stored bytes sent again",
      request_id: req.id,
      tx_hash: req.tx_hash,
      block_number: req.block_number,
    });
    ctx.alert("confirmed_tx_reorged_out", {
      request_id: req.id,
      tx_hash: req.tx_hash ?? "",
      final: "true",
    });
    if (raw) await sendRaw(ctx, lease, raw);
  }

  return {
    async check(lease, snap) {
      // Only a node at the best head seen decides that a block is no longer ours: one stuck on
      // the losing fork still shows it.
      if (!snap.atBestHead) return;
      const after = await followed(lease);
      if (after === null) return;
      const { rows: reorgs } = await lease.query<{ id: string; ancestor: string }>(
        `SELECT id::text, common_ancestor::text AS ancestor FROM chain.reorg_log
          WHERE chain_id = $1 AND id > $2 ORDER BY id`,
        [chainId, after.toString()],
      );
      if (reorgs.length === 0) return;
      const ancestor = reorgs.reduce(
        (m, r) => (BigInt(r.ancestor) < m ? BigInt(r.ancestor) : m),
        BigInt(reorgs[0]!.ancestor),
      );
      const last = reorgs.at(-1)!.id;
      const { rows: failed } = await lease.query<FailedRow>(
        `SELECT id, status, block_number::text, block_hash, tx_hash, error_code,
                (cancel_requested_at IS NOT NULL OR failure_undone_at IS NOT NULL) AS cancels_only
           FROM custody.tx_requests
          WHERE chain_id = $1 AND from_address = $2 AND status IN ('failed', 'confirmed')
            AND block_number > $3 AND block_hash IS NOT NULL AND finalized_at IS NOT NULL`,
        [chainId, ctx.from, ancestor.toString()],
      );
      if (failed.length > 0) {
        const canonical = await ctx.chainView.blockHashes(
          failed.map((r) => BigInt(r.block_number)),
          snap.head,
        );
        // No node there now: no evidence; this reorg is looked at again on a later pass.
        if (failed.some((r) => !canonical.has(BigInt(r.block_number)))) return;
        for (const req of failed) {
          const hash = canonical.get(BigInt(req.block_number))!;
          if (hash === req.block_hash.toLowerCase()) continue;
          if (req.status === "failed") await undo(lease, req, hash, last);
          else await undoFinal(lease, req, hash, last);
        }
      }
      await lease.query(
        `UPDATE custody.reorgs_followed SET reorg_id = GREATEST(reorg_id, $3)
          WHERE chain_id = $1 AND from_address = $2`,
        [chainId, ctx.from, last],
      );
    },
  };
}
