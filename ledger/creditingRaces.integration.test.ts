/**
 * Races between the passes production runs at once on the same chain (two workers during a rolling
 * deploy, the doorbell's ranged pass, the periodic pass with its catch-up, the reorg-hold pass, the
 * parked-deposit retry and its operator CLI, withdrawal holds), fired with Promise.all over many
 * rounds against real Postgres. Each round checks the money rules: a deposit credited once, nothing
 * parked by mistake, an orphaned fact never "credited and not held", no balance below zero, no
 * update lost, and `ledger check` clean.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAudit } from "../foundation/audit.js";
import { createTestContext, type TestContext } from "../ops/testing/context.js";
import { createLedger, type Ledger } from "./createLedger.js";
import {
  createDepositCrediting,
  type DepositCrediting,
  makeParkedDepositsDue,
} from "./depositCrediting.js";

const CHAIN = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const ETH = `${CHAIN}:${ZERO}`;
const TOKEN = `0x${"70".repeat(20)}`;
const TT = `${CHAIN}:${TOKEN}`;
const HOT = `custody:hot:0x${"a1".repeat(20)}`;
const ROUNDS = 20;
const USERS = ["alice", "bob", "carol", "dave"] as const;
const ADDR: Record<string, string> = {
  alice: `0x${"d1".repeat(20)}`,
  bob: `0x${"d2".repeat(20)}`,
  carol: `0x${"d3".repeat(20)}`,
  dave: `0x${"d4".repeat(20)}`,
};

let ctx: TestContext;
// Two workers, each with its own ledger (own account-id cache) as two processes have.
let ledgerA: Ledger;
let ledgerB: Ledger;
let A: DepositCrediting;
let B: DepositCrediting;
let txCounter = 0;
let nextBlock = 1_000;
const txHash = () => `0x${(++txCounter).toString(16).padStart(64, "0")}`;
const jitter = () => new Promise((r) => setTimeout(r, Math.floor(Math.random() * 6)));

type Fact = { tx: string; block: number; owner: string; asset: string; amount: bigint };

async function insertFacts(facts: Fact[], status = "confirmed") {
  await ctx.db.pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position, kind,
       asset, from_address, to_address, amount, status)
     SELECT $1, b, '0xb' || b, tx, i, 'tx', CASE WHEN a = $2 THEN 'native' ELSE 'erc20' END, a, $3, t, amt, $4
       FROM unnest($5::bigint[], $6::text[], $7::text[], $8::text[], $9::numeric[])
         WITH ORDINALITY AS u(b, tx, a, t, amt, i)`,
    [
      CHAIN,
      ZERO,
      `0x${"ee".repeat(20)}`,
      status,
      facts.map((f) => f.block),
      facts.map((f) => f.tx),
      facts.map((f) => f.asset),
      facts.map((f) => ADDR[f.owner]),
      facts.map((f) => f.amount.toString()),
    ],
  );
}

/** As the indexer's rollback (indexers/store.ts): every fact above `ancestor` orphaned, reorg recorded. */
async function orphanAbove(ancestor: number) {
  const c = await ctx.db.pool.connect();
  try {
    await c.query("BEGIN");
    await c.query(
      `UPDATE chain.transfers SET status = 'orphaned', orphaned_at = now(),
         orphaned_after_confirmation = (status = 'confirmed')
       WHERE chain_id = $1 AND block_number > $2 AND status <> 'orphaned'`,
      [CHAIN, ancestor],
    );
    await c.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       VALUES ($1, 1, $2::bigint, $2::bigint + 1, '0xold', $2::bigint + 1, '0xnew', false)`,
      [CHAIN, ancestor],
    );
    await c.query("COMMIT");
  } catch (error) {
    await c.query("ROLLBACK");
    throw error;
  } finally {
    c.release();
  }
}

/** Credits per fact tx (every credit row of the tx's identity, whatever its state). */
async function creditsOf(txs: string[]) {
  const { rows } = await ctx.db.pool.query<{ tx_hash: string; state: string; n: number }>(
    `SELECT tx_hash, state, count(*)::int AS n FROM ledger.deposit_credits
      WHERE tx_hash = ANY($1::text[]) GROUP BY tx_hash, state`,
    [txs],
  );
  return rows;
}

async function parkedCount() {
  const { rows } = await ctx.db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM ledger.parked_deposits",
  );
  return rows[0]!.n;
}

async function creditedEvents(txs: string[]) {
  const { rows } = await ctx.db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ledger.events
      WHERE type = 'deposit.credited' AND payload->>'tx_hash' = ANY($1::text[])`,
    [txs],
  );
  return rows[0]!.n;
}

const credited = async (owner: string, assetId = ETH) =>
  (await ledgerA.getAccount({ assetId, name: `user:${owner}` }))?.creditsPosted ?? 0n;

beforeAll(async () => {
  ctx = await createTestContext();
  ledgerA = createLedger({ common: ctx.common, pool: ctx.db.pool });
  ledgerB = createLedger({ common: ctx.common, pool: ctx.db.pool });
  await ledgerA.ensureAssetsFromConfig(ctx.config.chains);
  await ledgerA.ensureAsset({
    chainId: CHAIN,
    token: TOKEN as `0x${string}`,
    symbol: "TT",
    decimals: 18,
  });
  A = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger: ledgerA });
  B = createDepositCrediting({ common: ctx.common, pool: ctx.db.pool, ledger: ledgerB });
  await ctx.db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     SELECT $1, a, 'deposit', o FROM unnest($2::text[], $3::text[]) AS u(a, o)`,
    [CHAIN, USERS.map((u) => ADDR[u]), [...USERS]],
  );
});
afterAll(async () => {
  await ledgerA?.close();
  await ledgerB?.close();
  await ctx?.cleanup();
});

describe("crediting races (real Postgres, Promise.all over many rounds)", () => {
  it("two workers' ranged doorbell passes, the periodic pass and the catch-up over the same blocks: each deposit credited once, nothing parked, no error", async () => {
    const all: Fact[] = [];
    const before = new Map<string, bigint>();
    for (const u of USERS)
      for (const [asset, id] of [
        [ZERO, ETH],
        [TOKEN, TT],
      ])
        before.set(`${u}/${asset}`, await credited(u, id));
    for (let r = 0; r < ROUNDS; r++) {
      // Three new blocks of deposits to every customer in both assets, and (from round 1) late facts
      // a writer put below the crediting watermark, where the catch-up pass and a ranged pass meet.
      const [b1, b2, b3] = [nextBlock++, nextBlock++, nextBlock++] as [number, number, number];
      const facts: Fact[] = [];
      for (const block of [b1, b2, b3])
        for (const owner of USERS)
          for (const asset of [ZERO, TOKEN])
            facts.push({
              tx: txHash(),
              block,
              owner,
              asset,
              amount: BigInt(1 + r * 100 + facts.length),
            });
      if (r > 0)
        for (const owner of USERS)
          facts.push({
            tx: txHash(),
            block: 900 + r,
            owner,
            asset: ZERO,
            amount: 1_000n + BigInt(r),
          });
      await insertFacts(facts);
      all.push(...facts);
      const lo = r > 0 ? 900 + r : b1;
      await Promise.all([
        // Disjoint blocks at once (the same accounts, different transfers) …
        A.creditConfirmed({ chainId: CHAIN, fromBlock: b1, toBlock: b1 }),
        B.creditConfirmed({ chainId: CHAIN, fromBlock: b2, toBlock: b2 }),
        B.catchUp({ chainId: CHAIN, maxBlocks: 1_000_000 }),
        // … and the same blocks by both workers' doorbell and periodic passes.
        A.sweep({ chainId: CHAIN, fromBlock: b3, toBlock: b3 }),
        B.sweep({ chainId: CHAIN, fromBlock: b1, toBlock: b3 }),
        jitter().then(() => A.creditConfirmed({ chainId: CHAIN, fromBlock: lo, toBlock: b3 })),
        jitter().then(() => B.creditConfirmed({ fromBlock: lo, toBlock: b3 })),
        jitter().then(() => A.sweep({ chainId: CHAIN })),
        jitter().then(() => B.creditNew({ chainId: CHAIN })),
      ]);
      const rows = await creditsOf(facts.map((f) => f.tx));
      expect(rows.every((x) => x.state === "credited" && x.n === 1)).toBe(true);
      expect(rows).toHaveLength(facts.length);
      expect(await parkedCount()).toBe(0);
    }
    expect(await creditedEvents(all.map((f) => f.tx))).toBe(all.length);
    for (const u of USERS) {
      for (const [asset, id] of [
        [ZERO, ETH],
        [TOKEN, TT],
      ] as const) {
        const want = all
          .filter((f) => f.owner === u && f.asset === asset)
          .reduce((sum, f) => sum + f.amount, 0n);
        expect(await credited(u, id)).toBe(before.get(`${u}/${asset}`)! + want);
      }
    }
    expect((await ledgerA.check()).problems).toEqual([]);
  });

  it("crediting racing the indexer's rollback and the reorg-hold pass: an orphaned fact is never credited and not held", async () => {
    const seen: Fact[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const block = nextBlock++;
      const facts: Fact[] = USERS.map((o, i) => ({
        tx: txHash(),
        block,
        owner: o,
        asset: i % 2 === 0 ? ZERO : TOKEN,
        amount: BigInt(5 + i),
      }));
      await insertFacts(facts);
      seen.push(...facts);
      await Promise.all([
        A.creditConfirmed({ chainId: CHAIN, fromBlock: block, toBlock: block }),
        jitter().then(() => B.creditNew({ chainId: CHAIN })),
        jitter().then(() => A.sweep({ chainId: CHAIN, fromBlock: block, toBlock: block })),
        // The indexer rolls the block back; the other worker's reorg-hold pass follows it.
        jitter()
          .then(() => orphanAbove(block - 1))
          .then(() => B.holdOrphaned({ chainId: CHAIN })),
        jitter().then(() => B.sweep({ chainId: CHAIN })),
      ]);
      // After the hold pass that followed the rollback: no orphaned fact has a standing credit.
      const rows = await creditsOf(facts.map((f) => f.tx));
      expect(rows.filter((x) => x.state === "credited")).toEqual([]);
      expect(rows.every((x) => x.n === 1)).toBe(true);
    }
    // Every credit of an orphaned fact is held in full (these customers could cover it): none of
    // it is available any more.
    const { rows } = await ctx.db.pool.query<{
      state: string;
      hold_amount: bigint;
      amount: bigint;
    }>(
      "SELECT state, hold_amount, amount FROM ledger.deposit_credits WHERE tx_hash = ANY($1::text[])",
      [seen.map((f) => f.tx)],
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const x of rows) expect([x.state, x.hold_amount]).toEqual(["held", x.amount]);
    // At finality the holds are posted: every credit of these facts reversed, none left standing.
    const top = Math.max(...seen.map((f) => f.block));
    await ctx.db.pool.query(
      `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash, finalized_number, finalized_hash)
       VALUES ($1, $2::bigint + 10, '0xtip', $2, '0xfinal')`,
      [CHAIN, top],
    );
    await Promise.all([A.sweep({ chainId: CHAIN }), B.sweep({ chainId: CHAIN })]);
    const states = await creditsOf(seen.map((f) => f.tx));
    expect(states.map((x) => [x.state, x.n])).toEqual(states.map((x) => ["final", x.n]));
    expect(states.reduce((n, x) => n + x.n, 0)).toBe(rows.length);
    expect((await ledgerA.check()).problems).toEqual([]);
  });

  it("a parked deposit's retry (two workers and the operator's `retry`) racing the ranged and catch-up passes: credited once, parked row cleared, audit coherent", async () => {
    const retrying = [A, B].map((_, i) =>
      createDepositCrediting({
        common: ctx.common,
        pool: ctx.db.pool,
        ledger: i === 0 ? ledgerA : ledgerB,
        parkedRetryMs: 1,
      }),
    ) as [DepositCrediting, DepositCrediting];
    let retriedCredits = 0;
    for (let r = 0; r < ROUNDS; r++) {
      // A token the ledger does not list yet: its deposits are refused and parked.
      const unlisted = `0x${(0x7b00 + r).toString(16).padStart(40, "0")}`;
      const block = nextBlock++;
      const facts: Fact[] = USERS.map((o, i) => ({
        tx: txHash(),
        block,
        owner: o,
        asset: unlisted,
        amount: BigInt(3 + i),
      }));
      await insertFacts(facts);
      // Parked by a worker that retries after 1 ms: due again by the time the race starts.
      await retrying[0].sweep({ chainId: CHAIN });
      expect(await parkedCount()).toBe(facts.length);
      await ledgerA.ensureAsset({
        chainId: CHAIN,
        token: unlisted as `0x${string}`,
        symbol: `U${r}`,
        decimals: 18,
      });
      const reason = `round ${r}`;
      const [r0, r1, r2, , , , dueNow] = await Promise.all([
        // Both workers' retries at the same instant (and the operator's CLI, below).
        retrying[0].retryParked({ chainId: CHAIN }),
        retrying[1].retryParked({ chainId: CHAIN }),
        jitter().then(() => retrying[0].retryParked({ chainId: CHAIN })),
        jitter().then(() =>
          A.creditConfirmed({ chainId: CHAIN, fromBlock: block, toBlock: block }),
        ),
        jitter().then(() => B.catchUp({ chainId: CHAIN, maxBlocks: 1_000_000 })),
        jitter().then(() => retrying[1].sweep({ chainId: CHAIN })),
        jitter().then(() =>
          makeParkedDepositsDue(ctx.db.pool, { chainId: CHAIN, by: "ops", reason }),
        ),
      ]);
      retriedCredits += r0.credited + r1.credited + r2.credited;
      // Whatever the interleaving, a retry after the race credits anything still parked.
      await retrying[0].retryParked({ chainId: CHAIN });
      expect(await parkedCount()).toBe(0);
      const rows = await creditsOf(facts.map((f) => f.tx));
      expect(rows).toHaveLength(facts.length);
      expect(rows.every((x) => x.state === "credited" && x.n === 1)).toBe(true);
      expect(await creditedEvents(facts.map((f) => f.tx))).toBe(facts.length);
      for (const f of facts) expect(await credited(f.owner, `${CHAIN}:${unlisted}`)).toBe(f.amount);
      // The operator's audit names exactly the deposits its call made due (none if the retry won).
      const audit = (
        await listAudit(ctx.db.pool, {
          actionPrefix: "ledger.parked_deposits.due_now",
          limit: 1000,
        })
      )
        .filter((a) => (a.details as { reason?: string }).reason === reason)
        .map((a) => (a.details as { deposits: string[] }).deposits);
      if (dueNow.length === 0) expect(audit).toEqual([]);
      else expect(audit).toEqual([dueNow.map((d) => `${d.txHash}:${d.position}`).sort()]);
    }
    // The racing retries did the crediting (the race was run, not skipped as nothing due).
    expect(retriedCredits).toBeGreaterThan(0);
    expect((await ledgerA.check()).problems).toEqual([]);
  });

  it("crediting and reorg holds racing withdrawal holds on the same customer: never below zero, no update lost", async () => {
    const owner = "dave";
    const acct = { assetId: ETH, name: `user:${owner}` };
    let withdrawn = 0n;
    for (let r = 0; r < ROUNDS; r++) {
      const block = nextBlock++;
      const deposits: Fact[] = Array.from({ length: 4 }, () => ({
        tx: txHash(),
        block,
        owner,
        asset: ZERO,
        amount: 10n,
      }));
      await insertFacts(deposits);
      const start = await ledgerA.getAccount(acct);
      const withdraw = (l: Ledger) =>
        jitter().then(async () => {
          const [res] = await l.createTransfers([
            {
              id: randomUUID(),
              type: "pending",
              assetId: ETH,
              debit: acct.name,
              credit: HOT,
              amount: 7n,
              kind: "withdrawal",
            },
          ]);
          if (res?.status === "created") return 7n;
          if (res?.status === "failed" && res.code === "LEDGER_INSUFFICIENT_BALANCE") return 0n;
          throw new Error(`unexpected ${JSON.stringify(res)}`);
        });
      const out = await Promise.all([
        A.sweep({ chainId: CHAIN, fromBlock: block, toBlock: block }),
        jitter().then(() => B.creditNew({ chainId: CHAIN }).then(() => 0n)),
        withdraw(ledgerA),
        withdraw(ledgerB),
        withdraw(ledgerA),
        withdraw(ledgerB),
        // Every other round the block is rolled back too: reorg holds take what is available.
        r % 2 === 1
          ? jitter()
              .then(() => orphanAbove(block - 1))
              .then(() => B.holdOrphaned({ chainId: CHAIN }))
              .then(() => 0n)
          : Promise.resolve(0n),
      ]);
      const held = out.slice(2).reduce<bigint>((s, x) => s + (x as bigint), 0n);
      withdrawn += held;
      const end = await ledgerA.getAccount(acct);
      const creditedNow = (
        await ctx.db.pool.query<{ s: string }>(
          `SELECT coalesce(sum(amount), 0)::text AS s FROM ledger.deposit_credits
            WHERE tx_hash = ANY($1::text[])`,
          [deposits.map((d) => d.tx)],
        )
      ).rows[0]!.s;
      const reorgHeld = (
        await ctx.db.pool.query<{ s: string }>(
          `SELECT coalesce(sum(hold_amount), 0)::text AS s FROM ledger.deposit_credits
            WHERE tx_hash = ANY($1::text[]) AND state = 'held'`,
          [deposits.map((d) => d.tx)],
        )
      ).rows[0]!.s;
      // No lost update: the account moved by exactly what was credited and held this round.
      expect(end!.creditsPosted - (start?.creditsPosted ?? 0n)).toBe(BigInt(creditedNow));
      expect(end!.debitsPending - (start?.debitsPending ?? 0n)).toBe(held + BigInt(reorgHeld));
      const b = await ledgerA.balance(acct);
      expect(b.available).toBeGreaterThanOrEqual(0n);
      // A held credit covers its whole amount: what the balance could not, the receivable.
      const split = await ctx.db.pool.query<{ ok: boolean }>(
        `SELECT bool_and(hold_amount + shortfall_amount = amount) AS ok FROM ledger.deposit_credits
          WHERE tx_hash = ANY($1::text[]) AND state = 'held'`,
        [deposits.map((d) => d.tx)],
      );
      expect(split.rows[0]!.ok ?? true).toBe(true);
    }
    expect(withdrawn).toBeGreaterThan(0n);
    expect((await ledgerA.check()).problems).toEqual([]);
  });
});
