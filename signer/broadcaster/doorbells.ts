/**
 * Doorbells: ring tx-outcomes for every outcome change callers should act on at once (confirmed,
 * failed, receipt_unknown, needs_review, and leaving one of those, e.g. a reorg taking `confirmed`
 * back to `broadcast`). Postgres records what is owed (`outcome_seq` > `notified_seq`); a ring is
 * fire-and-forget through `queues.ring` (bounded, never blocks a tick on Redis), one at a time,
 * and what Redis did not take is rung again on a later pass. Finality is not rung: callers read it
 * with getTxOutcomes({ since }).
 */
import { jobId } from "../../foundation/queues.js";
import { TX_OUTCOMES_QUEUE, type TxOutcomeJob } from "../requests.js";
import type { BroadcasterContext } from "./context.js";

export type Doorbells = {
  /** Start ringing what is owed unless a ring is in flight; returns at once. */
  ringOwed: () => void;
  /** Ring what is owed and wait for it (bounded by the ring timeout). */
  ringOwedNow: () => Promise<void>;
  /** Resolves when no ring is in flight. */
  idle: () => Promise<void>;
};

export function createDoorbells(ctx: BroadcasterContext): Doorbells {
  let inFlight: Promise<void> | undefined;

  async function ring(): Promise<void> {
    const { rows } = await ctx.pool.query(
      `SELECT id, kind, ref_id, status, outcome_seq FROM custody.tx_requests
        WHERE chain_id = $1 AND from_address = $2 AND outcome_seq > COALESCE(notified_seq, 0)
        LIMIT 500`,
      [ctx.chain.chainId, ctx.from],
    );
    if (rows.length === 0) return;
    const ok = await ctx.queues.ring<TxOutcomeJob>(
      TX_OUTCOMES_QUEUE,
      rows.map((r) => ({
        name: "outcome",
        data: { requestId: r.id, kind: r.kind, refId: r.ref_id, status: r.status },
        // The first ring of a status keeps the plain id; a status reached again (after a reorg)
        // is a new job.
        opts: {
          jobId: r.outcome_seq <= 1 ? jobId(r.id, r.status) : jobId(r.id, r.status, r.outcome_seq),
        },
      })),
    );
    if (!ok) return;
    await ctx.pool.query(
      `UPDATE custody.tx_requests r
          SET notified_seq = GREATEST(COALESCE(r.notified_seq, 0), v.seq),
              notified_at = COALESCE(r.notified_at, now())
         FROM unnest($1::text[], $2::int[]) AS v(id, seq)
        WHERE r.id = v.id`,
      [rows.map((r) => r.id), rows.map((r) => r.outcome_seq)],
    );
  }

  function start(): Promise<void> {
    inFlight ??= ring()
      .catch((error) => ctx.log.warn({ msg: "ringing outcome doorbells failed", err: error }))
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  }

  return {
    ringOwed: () => void start(),
    ringOwedNow: () => start(),
    idle: () => inFlight ?? Promise.resolve(),
  };
}
