/**
 * Fee-on-transfer recovery: token payments the tracker recorded mined before it read a token's fee
 * on transfer (migration 0111) have neither a transfer position (no Transfer carries the whole
 * amount) nor `fee_on_transfer`, and a mined request's receipt is never read again, so their
 * callers could never book them: such a withdrawal stays held for ever (WITHDRAWAL_OUTCOME_INCOMPLETE
 * on every pass). Here each one's receipt is read again, a few per pass, and where it is still in
 * the block the request records, `fee_on_transfer` is filled from its logs as markMined would
 * (track.ts), under the lease, with an event; the caller books the payment from there.
 *
 * Only data is added: no status changes and no hold is released. One exception: a payment whose
 * token logged no Transfer out of the wallet at all moved nothing (a token whose transfer()
 * returned false; recorded paid by a tracker before migration 0117, its caller never booked it):
 * it is put back to `mined` with `transfer_moved_nothing`, and the tracker fails it at its final
 * block (TRANSFER_MOVED_NOTHING) as it now does on first sight. A receipt the node does not
 * return, or one from another block (a re-inclusion: the tracker records it, fee included), is
 * missing data: the row is read again, never given up. Each pass reads on from the last nonce
 * the one before read, back to the lowest once a pass reaches the end, so rows whose receipts
 * stay missing never keep the rows after them from being read (each row within
 * ceil(rows / PER_PASS) passes).
 */
import type { Hex } from "viem";
import type { Lease } from "../lease.js";
import { feeOnTransfer, feeOnTransferJson, transferMovedNothing } from "../transferPosition.js";
import { recordEvent } from "./attempts.js";
import type { BroadcasterContext } from "./context.js";

/** Receipts read per pass: a backlog is worked off a few at a time, never holding a tick up. */
const PER_PASS = 20;
/** How often the rows are looked up (a process's first tick looks at once). */
const EVERY_MS = 60_000;

type UnreadRow = {
  id: string;
  nonce: bigint | string;
  status: string;
  to_address: Hex;
  value: bigint;
  data: Hex;
  tx_hash: Hex;
  block_hash: Hex;
};

// The index tx_requests_fee_on_transfer_unread (migration 0112) holds exactly these rows. Only the
// request's own send mined: a cancel's receipt has no payment in it.
const UNREAD = `
SELECT r.id, r.nonce, r.status, r.to_address, r.value, r.data, r.tx_hash, r.block_hash
  FROM custody.tx_requests r
 WHERE r.chain_id = $1 AND r.from_address = $2
   AND r.status IN ('mined', 'confirmed') AND r.receipt_success AND r.transfer_position IS NULL
   AND r.fee_on_transfer IS NULL AND r.data LIKE '0xa9059cbb%'
   -- A transfer() that moved nothing (migration 0117) was read whole: it fails at its final block.
   AND NOT r.transfer_moved_nothing
   AND NOT (r.id = ANY($3::text[]))
   AND ($5::bigint IS NULL OR r.nonce > $5::bigint)
   AND EXISTS (SELECT 1 FROM custody.tx_attempts a
                WHERE a.request_id = r.id AND a.tx_hash = r.tx_hash AND a.purpose = 'send')
 ORDER BY r.nonce
 LIMIT $4`;

export type FeeOnTransferRecovery = { run: (lease: Lease) => Promise<void> };

export function createFeeOnTransferRecovery(
  ctx: BroadcasterContext,
  /** Tests only: how often the rows are looked up (default EVERY_MS). */
  { everyMs = EVERY_MS }: { everyMs?: number } = {},
): FeeOnTransferRecovery {
  let nextLookAt = 0;
  /** Receipts read that show no fee on transfer (another token's quirk): a human's, not read again. */
  const notCharged = new Set<string>();
  /** The highest nonce the last pass read (null: the next pass starts from the lowest). */
  let after: string | null = null;

  const unreadRows = async (from: string | null) =>
    (
      await ctx.pool.query<UnreadRow>(UNREAD, [
        ctx.chain.chainId,
        ctx.from,
        [...notCharged],
        PER_PASS,
        from,
      ])
    ).rows;

  /**
   * A payment recorded paid whose receipt shows it moved nothing: back to `mined` (not final, not
   * confirmed), so the tracker fails it at its final block. Only the row as read, and only while
   * no caller could have booked it (no position, no fee on transfer: callers book neither).
   */
  async function movedNothing(lease: Lease, req: UnreadRow): Promise<void> {
    const moved = await lease.transaction(async () => {
      const { rowCount } = await lease.query(
        `UPDATE custody.tx_requests
            SET status = 'mined', finalized_at = NULL, transfer_moved_nothing = true,
                outcome_seq = outcome_seq + 1, updated_at = now()
          WHERE id = $1 AND tx_hash = $2 AND block_hash = $3
            AND status IN ('mined', 'confirmed') AND receipt_success
            AND transfer_position IS NULL AND fee_on_transfer IS NULL`,
        [req.id, req.tx_hash, req.block_hash],
      );
      if (rowCount !== 1) return false;
      await recordEvent(lease, {
        requestId: req.id,
        from: req.status,
        to: "mined",
        event: "transfer_moved_nothing_recovered",
        details: { tx_hash: req.tx_hash, block_hash: req.block_hash },
      });
      return true;
    });
    if (moved)
      ctx.log.warn({
        msg: "a token payment recorded paid moved nothing (no Transfer out of the wallet): it fails at its final block",
        request_id: req.id,
        tx_hash: req.tx_hash,
      });
  }

  return {
    async run(lease) {
      if (Date.now() < nextLookAt) return;
      nextLookAt = Date.now() + everyMs;
      let rows = await unreadRows(after);
      // Past the end: back to the lowest (the rows read before are still owed).
      if (rows.length === 0 && after !== null) rows = await unreadRows(null);
      after = rows.length === PER_PASS ? String(rows.at(-1)!.nonce) : null;
      if (rows.length === 0) return;
      const receipts = await ctx.chainView.receipts(rows.map((r) => r.tx_hash));
      const listed = ctx.chain.tokens.map((t) => t.address);
      let unread = 0;
      for (const req of rows) {
        const receipt = receipts.get(req.tx_hash.toLowerCase() as Hex);
        if (!receipt || receipt.blockHash !== req.block_hash || !receipt.success) {
          unread++;
          continue;
        }
        const sent = { from: ctx.from, to: req.to_address, value: req.value, data: req.data };
        const charged = feeOnTransfer(sent, receipt.logs, listed);
        if (!charged && transferMovedNothing(sent, receipt.logs)) {
          await movedNothing(lease, req);
          continue;
        }
        if (!charged) {
          notCharged.add(req.id);
          ctx.log.warn({
            msg: "a mined token payment has no Transfer of its amount and no fee on transfer",
            request_id: req.id,
            tx_hash: req.tx_hash,
          });
          continue;
        }
        const filled = await lease.transaction(async () => {
          // Only the row as read: a reorg the tracker recorded since leaves it to the tracker.
          const { rowCount } = await lease.query(
            `UPDATE custody.tx_requests SET fee_on_transfer = $2, updated_at = now()
              WHERE id = $1 AND tx_hash = $3 AND block_hash = $4
                AND status IN ('mined', 'confirmed') AND transfer_position IS NULL
                AND fee_on_transfer IS NULL`,
            [req.id, feeOnTransferJson(charged), req.tx_hash, req.block_hash],
          );
          if (rowCount !== 1) return false;
          await recordEvent(lease, {
            requestId: req.id,
            from: req.status,
            to: req.status,
            event: "fee_on_transfer_recovered",
            details: {
              tx_hash: req.tx_hash,
              block_hash: req.block_hash,
              received: charged.received.amount.toString(),
              token_fees: charged.fees.map((f) => f.amount.toString()),
            },
          });
          return true;
        });
        if (filled)
          ctx.log.info({
            msg: "fee on transfer read again from a mined token payment's receipt",
            request_id: req.id,
            tx_hash: req.tx_hash,
            received: charged.received.amount.toString(),
          });
      }
      // Not known to the node yet, or a backlog: looked at again soon, not a minute later.
      if (unread > 0 || rows.length === PER_PASS)
        nextLookAt = Date.now() + ctx.settings.fullSearchIntervalMs;
    },
  };
}
