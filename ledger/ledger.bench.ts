/**
 * Ledger benchmark through the Node `pg` client, fsync on (the server default; printed below).
 * Workload: one hot omnibus account (`custody:deposits`) and 10,000 user accounts; every transfer
 * debits the omnibus and credits a random user, so every transaction contends on the same row.
 *   1. batched: createTransfers() with large batches from concurrent submitters;
 *   2. single-transfer path, one database transaction per transfer, 1 vs 64 concurrent clients;
 *   3. single-transfer path through ledger.transfer() (callers share commits), 1 vs 64 clients.
 */
import { randomUUID } from "node:crypto";
import { createPool } from "../foundation/db.js";
import { figure, machineLine } from "../ops/bench/machine.js";
import { createTestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import type { NewTransfer } from "./types.js";

const USERS = 10_000;
const ASSET = "31337:0x0000000000000000000000000000000000000000";
const BATCH = Number(process.env.LEDGER_BENCH_BATCH ?? 8000);
const BATCHED_TOTAL = Number(process.env.LEDGER_BENCH_TOTAL ?? 200_000);
const SECONDS = Number(process.env.LEDGER_BENCH_SECONDS ?? 6);
const SUBMITTERS = Number(process.env.LEDGER_BENCH_SUBMITTERS ?? 3);

const deposit = (): NewTransfer => ({
  id: randomUUID(),
  assetId: ASSET,
  debit: "custody:deposits",
  credit: `user:${Math.floor(Math.random() * USERS)}`,
  amount: 1n + BigInt(Math.floor(Math.random() * 1000)),
  kind: "deposit",
});

/** Runs `clients` loops of `op` for `seconds`; returns transfers per second. */
async function closedLoop(clients: number, seconds: number, op: () => Promise<void>) {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < until) {
        await op();
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

const ctx = await createTestContext();
const pool = createPool(ctx.db.url, { max: 66, applicationName: "ledger-bench" });
try {
  const settings = await pool.query<{ fsync: string; sc: string; version: string }>(
    "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc, split_part(version(), ' ', 2) AS version",
  );
  const s = settings.rows[0];
  console.log(
    `workload: 1 hot omnibus account + ${USERS} user accounts; every transfer debits the omnibus and credits a random user`,
  );
  console.log(
    `postgres ${s?.version}, fsync=${s?.fsync}, synchronous_commit=${s?.sc}; batched: ${BATCHED_TOTAL} transfers in batches of ${BATCH}, ${SUBMITTERS} submitters; single paths: ${SECONDS}s closed loops`,
  );
  console.log(machineLine());

  const ledger: Ledger = createLedger({ common: ctx.common, pool });
  await ledger.ensureAssetsFromConfig(ctx.config.chains);
  await pool.query(
    `INSERT INTO ledger.accounts (asset_id, name, kind, normal, debits_must_not_exceed_credits)
     SELECT $1, 'user:' || g, 'user', 'credit', true FROM generate_series(0, $2 - 1) g
     UNION ALL SELECT $1, 'custody:deposits', 'custody', 'debit', false`,
    [ASSET, USERS],
  );
  // Warm up: the name→id cache and the connections.
  await ledger.createTransfers(Array.from({ length: 2000 }, deposit));

  // 1. Batched.
  let submitted = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: SUBMITTERS }, async () => {
      while (submitted < BATCHED_TOTAL) {
        submitted += BATCH;
        const results = await ledger.createTransfers(Array.from({ length: BATCH }, deposit));
        if (results.some((r) => r.status !== "created")) throw new Error("a transfer was refused");
      }
    }),
  );
  const batchedRate = submitted / ((performance.now() - t0) / 1000);
  figure("batched throughput", batchedRate, "transfers/s");

  // 2. One transaction per transfer.
  const own = async () => {
    const [r] = await ledger.createTransfers([deposit()]);
    if (r?.status !== "created") throw new Error("a transfer was refused");
  };
  const own1 = await closedLoop(1, SECONDS, own);
  const own64 = await closedLoop(64, SECONDS, own);
  figure("single path, own transaction, 1 client", own1, "transfers/s");
  figure("single path, own transaction, 64 clients", own64, "transfers/s");
  figure("single path, own transaction, 64 vs 1 client", (own64 / own1) * 100, "%");

  // 3. ledger.transfer(): concurrent callers share commits.
  const shared = async () => {
    await ledger.transfer(deposit());
  };
  const shared1 = await closedLoop(1, SECONDS, shared);
  const shared64 = await closedLoop(64, SECONDS, shared);
  figure("single path, ledger.transfer(), 1 client", shared1, "transfers/s");
  figure("single path, ledger.transfer(), 64 clients", shared64, "transfers/s");
  figure("single path, ledger.transfer(), 64 vs 1 client", (shared64 / shared1) * 100, "%");

  await ledger.close();
  const report = await ledger.check();
  console.log(`ledger check after the run: ${report.ok ? "passed" : "FAILED"}`);
  if (!report.ok) process.exitCode = 1;
} finally {
  await pool.end();
  await ctx.cleanup();
}
