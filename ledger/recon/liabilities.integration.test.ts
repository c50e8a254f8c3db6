/**
 * Running user liabilities (liabilities.ts): transfers written through the real ledger, runs
 * through the real reconciler. After every run the solvency check's ledger side equals the sum
 * over the user accounts at that moment: an incremental run moves the stored totals by the entries
 * it loaded (deposits, user-to-user moves, a withdrawal hold and its post, a slow writer that took
 * its seq before the run and committed after it); a full run, and a run that does not continue
 * from the run the totals stand at, sum the accounts again. A shortfall is still reported by an
 * incremental run.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import type { Ledger } from "../createLedger.js";
import { transferId } from "../transferId.js";
import type { Reconciler, RunSummary } from "./reconcile.js";
import {
  ETH,
  LEDGER_ONLY_CHAIN_ID,
  type LedgerOnlyRecon,
  startLedgerOnlyRecon,
} from "./testing/ledgerOnly.js";

const CHAIN_ID = LEDGER_ONLY_CHAIN_ID;
const HOT = `custody:hot:0x${"f0".repeat(20)}`;

let pool: Pool;
let chain: ChainConfig;
let ledger: Ledger;
let reconciler: Reconciler;
let close: (() => Promise<void>) | undefined;
let n = 0;

/** Credits − debits posted over the user accounts of ETH, read from the accounts now. */
async function accountsSum(): Promise<bigint> {
  const r = await pool.query<{ s: bigint | null }>(
    "SELECT sum(credits_posted - debits_posted) AS s FROM ledger.accounts WHERE asset_id = $1 AND kind = 'user'",
    [ETH],
  );
  return r.rows[0]!.s ?? 0n;
}

const owed = (run: RunSummary) =>
  run.checks.find((c) => c.scope === "solvency" && c.assetId === ETH)?.ledger;

async function state(): Promise<{ runId: number; total: bigint } | null> {
  const r = await pool.query<{ run_id: string; total: bigint | null }>(
    `SELECT s.run_id::text, t.total FROM recon.liability_state s
       LEFT JOIN recon.liability_totals t ON t.chain_id = s.chain_id AND t.asset_id = $2
      WHERE s.chain_id = $1`,
    [CHAIN_ID, ETH],
  );
  const row = r.rows[0];
  return row ? { runId: Number(row.run_id), total: row.total ?? 0n } : null;
}

let deposit: LedgerOnlyRecon["deposit"];

beforeAll(async () => {
  const recon = await startLedgerOnlyRecon("liabilities test", { depositKind: "deposit" });
  ({ pool, chain, ledger, reconciler, deposit } = recon);
  close = recon.close;
});

afterAll(async () => {
  await close?.();
});

describe("running user liabilities", () => {
  it("a full run sums the accounts and stores the totals", async () => {
    await deposit("alice", 500n);
    await deposit("bob", 300n);
    const run = await reconciler.run({ chain, full: true });
    expect(run.mode).toBe("full");
    expect(owed(run)).toBe(800n);
    expect(await state()).toEqual({ runId: run.runId, total: 800n });
  });

  it("incremental runs move the totals by the entries they load and match the accounts", async () => {
    await deposit("carol", 70n);
    // A user-to-user move changes no total; a withdrawal's hold posts nothing until its post.
    await ledger.transfer({
      id: transferId(`liabilities test ${++n}`),
      assetId: ETH,
      debit: "user:alice",
      credit: "user:bob",
      amount: 100n,
      kind: "manual",
    });
    const hold = transferId(`liabilities test ${++n}`);
    await ledger.hold({
      id: hold,
      assetId: ETH,
      debit: "user:bob",
      credit: HOT,
      amount: 50n,
      kind: "withdrawal",
    });
    const first = await reconciler.run({ chain });
    expect(first.mode).toBe("incremental");
    expect(owed(first)).toBe(870n);
    expect(owed(first)).toBe(await accountsSum());
    expect(await state()).toEqual({ runId: first.runId, total: 870n });

    await ledger.postPending({ id: transferId(`liabilities test ${++n}`), pendingId: hold });
    const second = await reconciler.run({ chain });
    expect(owed(second)).toBe(820n);
    expect(owed(second)).toBe(await accountsSum());
  });

  it("a slow writer's entry, below the watermark of the run it missed, is added by the next run", async () => {
    const slow = await pool.connect();
    try {
      await slow.query("BEGIN");
      await deposit("dave", 9n, { client: slow });
      // A later transfer (on accounts the slow one does not hold) commits first, so the run's
      // watermark passes the slow one's seq.
      await ledger.transfer({
        id: transferId(`liabilities test ${++n}`),
        assetId: ETH,
        debit: "suspense",
        credit: "user:erin",
        amount: 1n,
        kind: "manual",
      });
      const during = await reconciler.run({ chain });
      expect(during.mode).toBe("incremental");
      expect(owed(during)).toBe(821n);
      await slow.query("COMMIT");
    } finally {
      slow.release();
    }
    const after = await reconciler.run({ chain });
    expect(owed(after)).toBe(830n);
    expect(owed(after)).toBe(await accountsSum());
  });

  it("a run that does not continue from the run the totals stand at sums the accounts again", async () => {
    const previous = await reconciler.run({ chain });
    // Another writer moved the totals on (as a concurrent run would): the next run cannot continue.
    await pool.query("UPDATE recon.liability_totals SET total = total + 1000 WHERE chain_id = $1", [
      CHAIN_ID,
    ]);
    await pool.query("UPDATE recon.liability_state SET run_id = $2 WHERE chain_id = $1", [
      CHAIN_ID,
      previous.runId - 1,
    ]);
    await deposit("frank", 5n);
    const run = await reconciler.run({ chain });
    expect(run.mode).toBe("incremental");
    expect(owed(run)).toBe(835n);
    expect(owed(run)).toBe(await accountsSum());
    expect(await state()).toEqual({ runId: run.runId, total: 835n });
  });

  it("an incremental run still reports a shortfall: custody holds nothing of what users are owed", async () => {
    await deposit("grace", 2n);
    const run = await reconciler.run({ chain });
    expect(run.mode).toBe("incremental");
    const shortfall = run.breaks.find((b) => b.type === "solvency_shortfall");
    expect(shortfall?.ledgerAmount).toBe(837n);
    expect(shortfall?.difference).toBe(-837n);
  });
});
