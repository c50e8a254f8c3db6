/**
 * A seq gap's holder whose transaction id is not below the snapshot's `xmax`: `xmax` is one past
 * the newest *completed* transaction, not the first unassigned id, so a writer that took its id
 * after the one that committed above its seq sits at or past it. Recording that `xmax` as the
 * gap's bound let a later run, with that writer now the oldest one running (its `xmin`), drop the
 * gap while the writer was still open: its booking, committed later below every watermark, was
 * never read by an incremental run. Real ledger writers and run reads on real Postgres; the
 * reconciliation reads are the run's own (watermarks.ts, seqGaps.ts) in snapshots this test opens,
 * so it needs nothing of other transactions on the server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PoolClient } from "../../foundation/db.js";
import { transferId } from "../transferId.js";
import { entryGapsAt, type JournalRecord, type SeqGap } from "./seqGaps.js";
import { ETH, type LedgerOnlyRecon, startLedgerOnlyRecon } from "./testing/ledgerOnly.js";
import { readWatermarks } from "./watermarks.js";

let t: LedgerOnlyRecon;

beforeAll(async () => {
  t = await startLedgerOnlyRecon("seq gap holder");
  // The accounts both writers use exist before they start.
  await t.deposit("alice", 1n);
  await t.ledger.transfer({
    id: transferId("seq gap holder: treasury"),
    assetId: ETH,
    debit: "suspense",
    credit: "treasury",
    amount: 1n,
    kind: "manual",
  });
});

afterAll(async () => {
  await t?.close();
});

/** What a run records of the journal at a snapshot of its own, continuing `previous`. */
async function runJournal(previous: JournalRecord): Promise<JournalRecord & { xmin: number }> {
  const reader = await t.pool.connect();
  try {
    await reader.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const w = await readWatermarks(reader, t.chain.chainId);
    const entryGaps = await entryGapsAt(reader, previous, w.entry, Date.now(), w.xids);
    await reader.query("COMMIT");
    return { entryWatermark: w.entry, entryGaps, xmin: w.xids.xmin };
  } finally {
    reader.release();
  }
}

const xid = async (c: PoolClient) =>
  Number((await c.query<{ x: string }>("SELECT pg_current_xact_id()::text AS x")).rows[0]!.x);
const covers = (gaps: SeqGap[], seq: number) => gaps.some(([from, to]) => seq >= from && seq <= to);

describe("seq gaps and their holders' transaction ids", () => {
  it("a gap stays while its holder is open, also when the holder is the oldest transaction running", async () => {
    // old code: expected 1081 to be greater than 1081 (the gap's recorded bound, the first run's
    // `xmax`, was the holder's own id), and without that check: expected [] to deeply equal
    // [ [ 3, 3, …, 1233 ] ] (the second run's `xmin` was the holder's id, at the bound, and the
    // gap was dropped with the holder open). The old code lost it only when no transaction on the
    // server with a newer id than the holder's committed before the first run's snapshot (2 runs
    // of 3 here beside other sessions); the fixed one keeps it whatever else runs.
    const before = (
      await t.pool.query<{ s: string }>("SELECT max(seq)::text AS s FROM ledger.journal")
    ).rows[0]!.s;
    const blocker = await t.pool.connect();
    const holder = await t.pool.connect();
    let holderOpen = false;
    let committed: Promise<unknown> = Promise.resolve();
    try {
      // The committer locks its first account (taking its transaction id) and waits on the second,
      // held by a third transaction; the holder takes a newer id and its seq; then the committer
      // goes on, takes the next seq and commits. Every transaction involved but the holder ends.
      await blocker.query("BEGIN");
      const blockerPid = Number(
        (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid,
      );
      await blocker.query(
        `SELECT id FROM ledger.accounts WHERE asset_id = $1 AND name IN ('suspense', 'treasury')
          ORDER BY id DESC LIMIT 1 FOR UPDATE`,
        [ETH],
      );
      committed = t.ledger.transfer({
        id: transferId("seq gap holder: committed above the holder"),
        assetId: ETH,
        debit: "suspense",
        credit: "treasury",
        amount: 1n,
        kind: "manual",
      });
      committed.catch(() => {});
      let committerXid: number | null = null;
      while (committerXid === null) {
        const r = await t.pool.query<{ xid: string | null }>(
          `SELECT backend_xid::text AS xid FROM pg_stat_activity
            WHERE $1 = ANY(pg_blocking_pids(pid))`,
          [blockerPid],
        );
        if (r.rows[0]?.xid) committerXid = Number(r.rows[0].xid);
        else await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await holder.query("BEGIN");
      holderOpen = true;
      await t.deposit("alice", 5n, { client: holder });
      const holderXid = await xid(holder);
      expect(holderXid).toBeGreaterThan(committerXid);
      const held = Number(
        (
          await holder.query<{ s: string }>(
            "SELECT seq::text AS s FROM ledger.journal WHERE id = $1",
            [transferId("seq gap holder deposit 2")],
          )
        ).rows[0]!.s,
      );
      await blocker.query("ROLLBACK");
      await committed;

      const first = await runJournal({ entryWatermark: Number(before), entryGaps: [] });
      expect(first.entryWatermark).toBeGreaterThan(held);
      expect(covers(first.entryGaps, held)).toBe(true);
      // Every transaction that could hold the gap's seq has an id below its recorded bound.
      const [gap] = first.entryGaps.filter(([from, to]) => held >= from && held <= to);
      expect(gap![3]).toBeGreaterThan(holderXid);

      const second = await runJournal(first);
      expect(second.xmin).toBeLessThanOrEqual(holderXid);
      expect(second.entryGaps.filter(([from, to]) => held >= from && held <= to)).toEqual([gap]);
      await holder.query("COMMIT");
      holderOpen = false;
      // Committed, the seq is seen and the gap is gone.
      const third = await runJournal(second);
      expect(covers(third.entryGaps, held)).toBe(false);
    } finally {
      if (holderOpen) await holder.query("ROLLBACK").catch(() => {});
      await blocker.query("ROLLBACK").catch(() => {});
      await committed.catch(() => {});
      holder.release();
      blocker.release();
    }
  }, 60_000);
});
