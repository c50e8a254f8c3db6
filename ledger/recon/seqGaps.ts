/**
 * Sequence gaps of `ledger.transfers`: seq values missing at a run's snapshot (taken by a
 * transaction that had not committed, or rolled back). Many writers share the identity, so a seq
 * below the entry watermark can become visible after the run; the next run re-reads exactly these
 * ranges until they fill or every transaction that could fill them has ended.
 */
import type { PoolClient } from "../../foundation/db.js";

/** A chain's first run records the seq gaps among this many newest seq values. */
const GAP_SCAN_ROWS = 100_000;

/**
 * Where a snapshot stood among transaction ids: `xmin` (`pg_current_snapshot()`'s), the oldest
 * transaction still running (every older one had ended); `next`, an id assigned in the snapshot's
 * transaction once the snapshot was taken (`pg_current_xact_id()`), so above every id assigned
 * before it. Not the snapshot's `xmax`: that is one past the newest *completed* id, and a
 * transaction that took its id after the newest one to commit is at or past it while it runs.
 */
export type SnapshotXids = { xmin: number; next: number };

/**
 * A range of `ledger.transfers.seq` values missing at a snapshot: taken by a transaction that had
 * not committed (or rolled back). Many writers share the identity, so a seq below the watermark
 * can become visible after the run; the next run re-reads exactly these ranges.
 * `[from, to, firstSeenMs, bound]`: `bound` is the `next` id (SnapshotXids) of the snapshot that
 * first saw the gap (absent in runs stored before it was kept; runs stored before the fix kept that
 * snapshot's `xmax` there). A writer takes its seq inside a transaction that already has an id
 * (a batch locks its accounts FOR UPDATE first, ledger/runBatch.ts), before the seq above the gap
 * committed, so before the snapshot: its id is below `bound`. Once a snapshot's `xmin` reaches
 * `bound`, every transaction with a lower id has ended (one still running would be at or below
 * that `xmin`), and what is still missing then was rolled back. Not a time: a transaction may hold
 * its seq for an hour (queued on a lock behind a migration) and then commit below every watermark.
 */
export type SeqGap = [from: number, to: number, firstSeenMs: number, bound?: number];

/** What a completed run saw of the journal: its entry seq watermark and its seq gaps. */
export type JournalRecord = { entryWatermark: number; entryGaps: SeqGap[] };

/**
 * The gaps a run records at its snapshot (`entry`: the highest seq, `now`: the snapshot's time):
 * after an earlier run, the parts of its gaps still missing and the gaps above its watermark, so
 * that every seq a later run may see commit is in the record, however old; a full run continues
 * the chain's newest completed run the same way (store.ts findJournalRecord): keeping only the
 * newest GAP_SCAN_ROWS seq values there lost the gap of a writer open across the run, and the runs
 * after it never read its booking. Only a chain's first run scans the newest GAP_SCAN_ROWS.
 */
export async function entryGapsAt(
  client: PoolClient,
  previous: JournalRecord | null,
  entry: number,
  now: number,
  xids: SnapshotXids,
): Promise<SeqGap[]> {
  return previous
    ? [
        ...(await stillMissing(client, previous.entryGaps, xids)),
        ...(await findSeqGaps(client, previous.entryWatermark, entry, now, xids)),
      ]
    : await findSeqGaps(client, Math.max(0, entry - GAP_SCAN_ROWS), entry, now, xids);
}

/**
 * Whether a run whose snapshot had this entry watermark and these seq gaps saw the entry `seq`:
 * at or below the watermark and in none of the gaps.
 */
export function seenAtSnapshot(
  seq: number,
  snapshot: { entryWatermark: number; entryGaps: readonly SeqGap[] },
): boolean {
  return (
    seq <= snapshot.entryWatermark &&
    !snapshot.entryGaps.some(([from, to]) => seq >= from && seq <= to)
  );
}

/** Missing seq values in (after, upTo], as ranges. */
async function findSeqGaps(
  client: PoolClient,
  after: number,
  upTo: number,
  now: number,
  xids: SnapshotXids,
): Promise<SeqGap[]> {
  if (upTo <= after) return [];
  const r = await client.query<{ a: string; b: string }>(
    `SELECT prev + 1 AS a, seq - 1 AS b FROM (
       SELECT seq, lag(seq, 1, $1::bigint) OVER (ORDER BY seq) AS prev
       FROM ledger.journal WHERE seq > $1 AND seq <= $2) x
     WHERE seq > prev + 1`,
    [after, upTo],
  );
  return r.rows.map((x) => [Number(x.a), Number(x.b), now, xids.next]);
}

/**
 * The parts of earlier gaps still missing at this snapshot, but for those no transaction can fill
 * any more: every transaction running when the gap was first seen had ended before this snapshot
 * (its `xmin` is at or past the gap's `bound`), so a value it committed is visible here and one
 * still missing was rolled back. A gap stored without its `bound` takes this snapshot's (every
 * transaction that could fill it is running now or has ended).
 */
async function stillMissing(
  client: PoolClient,
  gaps: SeqGap[],
  xids: SnapshotXids,
): Promise<SeqGap[]> {
  if (gaps.length === 0) return [];
  const live: SeqGap[] = gaps.map(([from, to, seen, bound]) => [
    from,
    to,
    seen,
    bound ?? xids.next,
  ]);
  const present: number[] = [];
  for (const { where, params } of seqRangeBatches("t.seq", live, 1)) {
    const r = await client.query<{ seq: string }>(
      `SELECT t.seq FROM ledger.journal t WHERE ${where}`,
      params,
    );
    for (const x of r.rows) present.push(Number(x.seq));
  }
  return splitGaps(live, present).filter(([, , , bound]) => xids.xmin < (bound ?? xids.next));
}

/** Ranges per statement: two parameters and one index range scan each. */
const RANGES_PER_STATEMENT = 500;

/**
 * `(column BETWEEN $first AND $first+1 OR ...)` over these seq ranges, in statements of at most
 * RANGES_PER_STATEMENT ranges. Scalar bounds, not a join with unnest(): the planner estimates each
 * range from the statistics and reads it through the seq index. Against unnest() it estimates
 * blind (a ninth of the table) and at 10M transfers walked every transfer instead, 5 s for every
 * incremental run while a gap was live (docs/scale.md, session 13).
 */
export function seqRangeBatches(
  column: string,
  ranges: readonly (readonly [number, number, ...unknown[]])[],
  first: number,
): { where: string; params: number[] }[] {
  const out: { where: string; params: number[] }[] = [];
  for (let i = 0; i < ranges.length; i += RANGES_PER_STATEMENT) {
    const batch = ranges.slice(i, i + RANGES_PER_STATEMENT);
    const params: number[] = [];
    for (const [from, to] of batch) params.push(from, to); // not a range's first-seen time
    out.push({
      where: `(${batch.map((_, k) => `${column} BETWEEN $${first + 2 * k}::bigint AND $${first + 2 * k + 1}::bigint`).join(" OR ")})`,
      params,
    });
  }
  return out;
}

/**
 * Remove the now-present values from the gaps, keeping each remainder's first-seen time (and
 * `bound`).
 */
export function splitGaps(gaps: readonly SeqGap[], present: readonly number[]): SeqGap[] {
  const sorted = [...present].sort((a, b) => a - b);
  const out: SeqGap[] = [];
  for (const [from, to, ...seen] of gaps) {
    let start = from;
    for (const p of sorted) {
      if (p < start || p > to) continue;
      if (p > start) out.push([start, p - 1, ...seen]);
      start = p + 1;
    }
    if (start <= to) out.push([start, to, ...seen]);
  }
  return out;
}
