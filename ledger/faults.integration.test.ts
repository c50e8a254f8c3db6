/**
 * Fault test (TigerBeetle-style, seeded): random batches of singles, holds, posts/voids and linked
 * chains are submitted several times each, out of order, by concurrent clients, while another
 * connection keeps killing the ledger's backends mid-transaction (pg_terminate_backend). Afterwards
 * the check passes, no id was ever created twice, and no id that failed for a sticky reason ever
 * succeeded.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, type Pool } from "../foundation/db.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { transferId } from "./transferId.js";
import { STICKY_FAILURES, type TransferInput, type TransferResult } from "./types.js";

const ETH = "31337:0x0000000000000000000000000000000000000000";
const HOT = `custody:hot:0x${"33".repeat(20)}`;
const APP = "ledger-fault-victim";
const SEED = Number(process.env.LEDGER_FAULT_SEED ?? Date.now() % 1_000_000);

/** mulberry32: a small seeded PRNG so a failing run can be replayed with LEDGER_FAULT_SEED. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let ctx: TestContext;
let pool: Pool;
let ledger: Ledger;

beforeAll(async () => {
  ctx = await createTestContext();
  pool = createPool(ctx.db.url, { max: 8, applicationName: APP });
  ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
});
afterAll(async () => {
  await ledger?.close();
  await pool?.end();
  await ctx?.cleanup();
});

function generate(rand: () => number): TransferInput[][] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)] as T;
  const users = Array.from({ length: 10 }, (_, i) => `user:f${i}`);
  let n = 0;
  const id = () => transferId(`fault:${SEED}:${n++}`);
  const holds: string[] = [];
  const batches: TransferInput[][] = [
    users.map((u) => ({
      id: id(),
      assetId: ETH,
      debit: "custody:deposits",
      credit: u,
      amount: 1000n,
      kind: "deposit",
    })),
  ];
  for (let b = 0; b < 60; b++) {
    const batch: TransferInput[] = [];
    const size = 1 + Math.floor(rand() * 12);
    for (let i = 0; i < size; i++) {
      const r = rand();
      const from = pick(users);
      let to = pick(users);
      if (to === from) to = HOT;
      const amount = BigInt(1 + Math.floor(rand() * 300));
      if (r < 0.45)
        batch.push({ id: id(), assetId: ETH, debit: from, credit: to, amount, kind: "manual" });
      else if (r < 0.65) {
        const h = id();
        holds.push(h);
        batch.push({
          id: h,
          type: "pending",
          assetId: ETH,
          debit: from,
          credit: HOT,
          amount,
          kind: "withdrawal",
        });
      } else if (r < 0.85 && holds.length > 0) {
        const pendingId = pick(holds);
        batch.push(
          rand() < 0.6
            ? { id: id(), type: "post", pendingId }
            : { id: id(), type: "void", pendingId },
        );
      } else {
        batch.push(
          {
            id: id(),
            assetId: ETH,
            debit: "custody:deposits",
            credit: from,
            amount,
            kind: "deposit",
            linked: true,
          },
          { id: id(), assetId: ETH, debit: from, credit: to, amount: amount * 2n, kind: "manual" },
        );
      }
    }
    batches.push(batch);
  }
  return batches;
}

describe("faults", () => {
  it(`survives killed connections with duplicate, out-of-order retries (seed ${SEED})`, async () => {
    const rand = prng(SEED);
    const batches = generate(rand);
    // Every batch 1-3 times, in shuffled order after the funding batch, some retried as sub-batches.
    const work: TransferInput[][] = [];
    for (const b of batches.slice(1)) {
      const copies = 1 + Math.floor(rand() * 3);
      for (let c = 0; c < copies; c++) {
        if (c > 0 && rand() < 0.3 && b.length > 1) {
          // A partial retry: a suffix cut at a chain boundary (the previous transfer is not linked).
          const cut = 1 + Math.floor(rand() * (b.length - 1));
          if (
            !(
              "linked" in (b[cut - 1] as TransferInput) &&
              (b[cut - 1] as { linked?: boolean }).linked
            )
          )
            work.push(b.slice(cut));
          else work.push(b);
        } else work.push(b);
      }
    }
    for (let i = work.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [work[i], work[j]] = [work[j] as TransferInput[], work[i] as TransferInput[]];
    }
    const seen = new Map<string, TransferResult[]>();
    const record = (results: TransferResult[]) => {
      for (const r of results) seen.set(r.id, [...(seen.get(r.id) ?? []), r]);
    };
    // Kills are paced by progress, not by the clock: after each kill the killer waits until some
    // submission has gone through, so a slow (loaded) machine gets as many kills per batch as a
    // fast one instead of a livelock of kills.
    let completed = 0;
    const submit = async (batch: TransferInput[]) => {
      for (let attempt = 0; attempt < 2000; attempt++) {
        try {
          record(await ledger.createTransfers(batch));
          completed++;
          return;
        } catch {
          // Killed mid-flight: the batch committed or it did not; resubmitting is always safe.
          await new Promise((r) => setTimeout(r, 2));
        }
      }
      throw new Error("batch never got through");
    };

    await submit(batches[0] as TransferInput[]);
    let killing = true;
    let kills = 0;
    const killer = (async () => {
      while (killing) {
        const r = await ctx.db.pool.query<{ killed: boolean }>(
          `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = $1 AND state <> 'idle'
           ORDER BY random() LIMIT 1`,
          [APP],
        );
        const killed = r.rows.filter((x) => x.killed).length;
        kills += killed;
        await new Promise((res) => setTimeout(res, 3 + Math.floor(Math.random() * 15)));
        if (killed === 0) continue;
        const before = completed;
        while (killing && completed === before) await new Promise((res) => setTimeout(res, 2));
      }
    })();
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < work.length) await submit(work[next++] as TransferInput[]);
      }),
    );
    killing = false;
    await killer;
    // Re-run every batch in order once more with no faults: whatever got lost is applied now.
    for (const b of batches) record(await ledger.createTransfers(b));

    console.log(`fault test seed ${SEED}: ${work.length} submissions, ${kills} backends killed`);
    expect(kills).toBeGreaterThan(0);
    const report = await ledger.check();
    expect(report.problems).toEqual([]);
    for (const [id, results] of seen) {
      const created = results.filter((r) => r.status === "created").length;
      expect(created, `id ${id} created twice`).toBeLessThanOrEqual(1);
      const sticky = results.findIndex((r) => r.status === "failed" && STICKY_FAILURES.has(r.code));
      if (sticky >= 0) {
        expect(
          results.slice(sticky).some((r) => r.status !== "failed"),
          `id ${id} succeeded after a sticky failure`,
        ).toBe(false);
      }
    }
    // Stored transfers are exactly the ids some submission reported created, or whose creating
    // commit's answer was lost to a kill (later answered "exists").
    const stored = await ctx.db.pool.query<{ id: string }>("SELECT id::text FROM ledger.transfers");
    for (const { id } of stored.rows) {
      const results = seen.get(id) ?? [];
      expect(
        results.some((r) => r.status === "created" || r.status === "exists"),
        id,
      ).toBe(true);
      expect(
        results.some((r) => r.status === "failed" && STICKY_FAILURES.has(r.code)),
        id,
      ).toBe(false);
    }
  }, 300_000); // ~120 submissions each killed and retried; minutes on a heavily loaded machine
});
