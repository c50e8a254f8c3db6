/**
 * Running expected balances (expectedBalances.ts): facts written as the indexer writes them, runs
 * through the real reconciler (balances read from anvil). After every run the table equals the
 * history recomputation at the run's block; an incremental run moves it by its own facts only (a
 * row it has no reason to touch keeps whatever it held), recomputes the addresses a reorg touched
 * at heights already counted, and the unattributed-inflow check uses those values; a run that does
 * not continue from the run the table stands at, and a full run, rebuild it (a full run from what
 * its stream of facts summed, not from a second read of history).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain } from "../../chains/index.js";
import type { Pool } from "../../foundation/db.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { balanceKey, loadFactBalances } from "./expectedBalances.js";
import { createReconciler, type Reconciler } from "./reconcile.js";
import { createPlanTracingPool } from "./testing/planTrace.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const TOKEN = `0x${"7".repeat(40)}`;
const SENDER = `0x${"ee".repeat(20)}`;
const HOT = `0x${"f0".repeat(20)}`;
const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, "0")}`;
const dep = (i: number) => hex(0xd0000 + i, 40);
const ADDRESSES = 12;

let ctx: TestContext;
let pool: Pool;
let chain: ChainConfig;
let reconciler: Reconciler;
let tx = 0;

const rpc = async (method: string, params: unknown[] = []) => {
  const r = (await fetch(ctx.anvils[0]!.rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  }).then((x) => x.json())) as { result?: unknown; error?: { message: string } };
  if (r.error) throw new Error(`${method}: ${r.error.message}`);
  return r.result;
};

type Fact = { from: string; to: string; amount: bigint; asset?: string; kind?: string };

/** Facts of one block, then the checkpoint two blocks above it (confirmations: 2). */
async function writeBlock(block: number, facts: Fact[]) {
  await pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount, status)
     SELECT $1, $2, $3, t, i::int - 1, 'tx', k, a, f, d, v, 'confirmed'
       FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::numeric[])
         WITH ORDINALITY AS x(t, k, a, f, d, v, i)`,
    [
      CHAIN_ID,
      block,
      hex(block, 64),
      facts.map(() => hex(++tx, 64)),
      facts.map((f) => f.kind ?? (f.asset ? "erc20" : "native")),
      facts.map((f) => f.asset ?? ZERO),
      facts.map((f) => f.from),
      facts.map((f) => f.to),
      facts.map((f) => f.amount.toString()),
    ],
  );
  await pool.query(
    `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)
     ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number`,
    [CHAIN_ID, block + 2, hex(block + 2, 64)],
  );
}

async function table(): Promise<Map<string, bigint>> {
  const r = await pool.query<{ address: string; asset: string; balance: bigint }>(
    "SELECT address, asset, balance FROM recon.expected_fact_balances WHERE chain_id = $1",
    [CHAIN_ID],
  );
  return new Map(r.rows.map((x) => [balanceKey(x.address, `${CHAIN_ID}:${x.asset}`), x.balance]));
}

async function history(block: number): Promise<Map<string, bigint>> {
  const client = await pool.connect();
  try {
    return await loadFactBalances(client, { chainId: CHAIN_ID, block, addresses: "all" });
  } finally {
    client.release();
  }
}

async function state() {
  const r = await pool.query<{ run_id: string; block_number: string }>(
    "SELECT run_id::text, block_number::text FROM recon.expected_fact_state WHERE chain_id = $1",
    [CHAIN_ID],
  );
  const row = r.rows[0];
  return row ? { runId: Number(row.run_id), block: Number(row.block_number) } : null;
}

/** Without (address, asset) pairs whose facts sum to zero: a table row may stand for them or not. */
const nonZero = (m: Map<string, bigint>) => new Map([...m].filter(([, v]) => v !== 0n));

/** Anvil mines up to `block`: a run reads balances there. */
async function anvilAt(block: number) {
  const head = Number(await rpc("eth_blockNumber"));
  if (head < block) await rpc("anvil_mine", [`0x${(block - head).toString(16)}`]);
}

beforeAll(async () => {
  ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  pool = ctx.db.pool;
  chain = ctx.config.chains[0]!;
  await pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     SELECT $1::bigint, a, 'deposit', 'c' || i FROM unnest($2::text[]) WITH ORDINALITY AS x(a, i)
     UNION ALL SELECT $1::bigint, $3, 'hot', 'custody'`,
    [CHAIN_ID, Array.from({ length: ADDRESSES }, (_, i) => dep(i)), HOT],
  );
  // Every run reads at a block anvil has (the checkpoint is ours; anvil mines its own blocks).
  await rpc("anvil_mine", ["0x40"]);
  reconciler = createReconciler({
    sweeps: sweepReader,
    common: ctx.common,
    pool,
    inflowRotation: 2,
    chains: adapterPerChain(ctx.common),
  });
}, 120_000);

afterAll(async () => {
  await ctx?.cleanup();
});

describe("running expected balances of deposit addresses", () => {
  it("a full run builds the table from history and names itself as where it stands", async () => {
    for (let b = 1; b <= 3; b++)
      await writeBlock(b, [
        ...Array.from({ length: ADDRESSES }, (_, i) => ({
          from: SENDER,
          to: dep(i),
          amount: BigInt(1000 * b + i),
        })),
        { from: SENDER, to: dep(b), amount: 77n, asset: TOKEN },
        { from: dep(b), to: HOT, amount: 500n },
        // A fee is paid by its sender and arrives nowhere the check looks.
        { from: dep(b + 3), to: dep(b + 4), amount: 9n, kind: "fee" },
      ]);
    const run = await reconciler.run({ chain, full: true });
    expect(run.block).toBe(3);
    expect(nonZero(await table())).toEqual(nonZero(await history(3)));
    expect((await history(3)).get(balanceKey(dep(1), `${CHAIN_ID}:${TOKEN}`))).toBe(77n);
    expect(await state()).toEqual({ runId: run.runId, block: 3 });
  }, 120_000);

  it("an incremental run moves it by the facts of its blocks only", async () => {
    // A row no fact of the new blocks touches: an incremental run leaves it as it is (it is not
    // recomputed from history); the full run at the end puts it right.
    const untouched = dep(ADDRESSES - 1);
    await pool.query(
      "UPDATE recon.expected_fact_balances SET balance = balance + 1 WHERE chain_id = $1 AND address = $2 AND asset = $3",
      [CHAIN_ID, untouched, ZERO],
    );
    await writeBlock(4, [
      { from: SENDER, to: dep(0), amount: 40n },
      { from: dep(2), to: HOT, amount: 300n },
      { from: SENDER, to: dep(5), amount: 11n, asset: TOKEN },
    ]);
    await writeBlock(5, [{ from: dep(0), to: dep(1), amount: 5n }]);
    const run = await reconciler.run({ chain });
    expect(run.mode).toBe("incremental");
    expect(run.block).toBe(5);
    const want = await history(5);
    want.set(
      balanceKey(untouched, `${CHAIN_ID}:${ZERO}`),
      want.get(balanceKey(untouched, `${CHAIN_ID}:${ZERO}`))! + 1n,
    );
    expect(nonZero(await table())).toEqual(nonZero(want));
    expect(await state()).toEqual({ runId: run.runId, block: 5 });
  }, 120_000);

  it("the inflow check uses the moved values: value above them on chain is a break naming them", async () => {
    const a = dep(0);
    await writeBlock(6, [{ from: SENDER, to: a, amount: 1n }]);
    const expected = (await history(6)).get(balanceKey(a, `${CHAIN_ID}:${ZERO}`))!;
    // anvil holds 12,345 more at `a` than its facts explain, from the next block on; the run
    // reads there (empty blocks in between).
    await rpc("anvil_setBalance", [a, `0x${(expected + 12345n).toString(16)}`]);
    await rpc("evm_mine");
    const final = Number(await rpc("eth_blockNumber"));
    await writeBlock(final, []);
    const run = await reconciler.run({ chain, block: final });
    expect(run.mode).toBe("incremental");
    const inflow = run.breaks.find(
      (b) => b.type === "unattributed_inflow" && b.key === `inflow:${a}`,
    );
    expect(inflow?.ledgerAmount).toBe(expected);
    expect(inflow?.difference).toBe(-12345n);
  }, 120_000);

  it("a reorg at a height already counted: the addresses it touched are recomputed", async () => {
    const { block: at } = (await state())!;
    // Orphan a fact of block 4 (already counted; its address has no other fact since), and a new
    // fact above.
    const tok = balanceKey(dep(5), `${CHAIN_ID}:${TOKEN}`);
    await pool.query(
      `UPDATE chain.transfers SET status = 'orphaned', orphaned_at = now()
        WHERE chain_id = $1 AND block_number = 4 AND to_address = $2 AND asset = $3`,
      [CHAIN_ID, dep(5), TOKEN],
    );
    await pool.query(
      `INSERT INTO chain.reorgs (chain_id, depth, common_ancestor, old_tip_number, old_tip_hash,
         new_tip_number, new_tip_hash, beyond_window)
       VALUES ($1, 1, 3, 4, $2, 4, $3, false)`,
      [CHAIN_ID, hex(4, 64), hex(0xbad4, 64)],
    );
    await writeBlock(at + 1, [{ from: SENDER, to: dep(3), amount: 21n }]);
    await anvilAt(at + 1);
    const before = (await table()).get(tok)!;
    const run = await reconciler.run({ chain, block: at + 1 });
    expect(run.mode).toBe("incremental");
    const after = await table();
    const want = await history(at + 1);
    expect(after.get(tok) ?? 0n).toBe(before - 11n);
    for (const a of [dep(0), dep(1), dep(2), dep(3), dep(5)])
      for (const asset of [ZERO, TOKEN]) {
        const k = balanceKey(a, `${CHAIN_ID}:${asset}`);
        expect([k, after.get(k) ?? 0n]).toEqual([k, want.get(k) ?? 0n]);
      }
  }, 120_000);

  it("a run that does not continue from the run the table stands at rebuilds it; so does a full run", async () => {
    const s = (await state())!;
    // As if another run had moved the table: this run's previous run is not the one named.
    const other = await pool.query<{ id: string }>(
      "SELECT id::text FROM recon.runs WHERE chain_id = $1 AND status = 'completed' AND id < $2 ORDER BY id LIMIT 1",
      [CHAIN_ID, s.runId],
    );
    await pool.query("UPDATE recon.expected_fact_state SET run_id = $2 WHERE chain_id = $1", [
      CHAIN_ID,
      other.rows[0]!.id,
    ]);
    await writeBlock(s.block + 1, [{ from: SENDER, to: dep(6), amount: 3n }]);
    await anvilAt(s.block + 1);
    const run = await reconciler.run({ chain, block: s.block + 1 });
    expect(run.mode).toBe("incremental");
    expect(nonZero(await table())).toEqual(nonZero(await history(s.block + 1)));
    expect(await state()).toEqual({ runId: run.runId, block: s.block + 1 });
    // The row corrupted earlier is right again; a full run rebuilds too.
    await pool.query(
      "UPDATE recon.expected_fact_balances SET balance = balance + 7 WHERE chain_id = $1 AND address = $2",
      [CHAIN_ID, dep(9)],
    );
    const full = await reconciler.run({ chain, block: s.block + 1, full: true });
    expect(nonZero(await table())).toEqual(nonZero(await history(s.block + 1)));
    expect(await state()).toEqual({ runId: full.runId, block: s.block + 1 });
  }, 120_000);

  it("a process carries what it knows from run to run only while no other run moves the tables", async () => {
    // `reconciler` knows every row (loaded by its first incremental run). Another process's run moves both tables
    // (expected facts and cached balances) at an address `reconciler` will read again; if it
    // used what it knew, it would miss the 1,000 (a false inflow break, and the deposits' chain
    // side off by the cached balance it replaced).
    const other = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      inflowRotation: 2,
      chains: adapterPerChain(ctx.common),
    });
    // The reorg above is old news: its heights are not re-read (that would recompute `a`).
    await pool.query(
      "UPDATE chain.reorgs SET detected_at = now() - interval '1 day' WHERE chain_id = $1",
      [CHAIN_ID],
    );
    const a = dep(10);
    const native = balanceKey(a, `${CHAIN_ID}:${ZERO}`);
    const at = async (facts: Fact[], run: Reconciler) => {
      const before = (await history(Number(await rpc("eth_blockNumber")))).get(native) ?? 0n;
      const add = facts.reduce((sum, f) => sum + f.amount, 0n);
      await rpc("anvil_setBalance", [a, `0x${(before + add).toString(16)}`]);
      await rpc("evm_mine");
      const final = Number(await rpc("eth_blockNumber"));
      await writeBlock(final, facts);
      return run.run({ chain, block: final });
    };
    // An incremental run first: a full run leaves no memory; this one loads and keeps the rows.
    expect((await at([{ from: SENDER, to: a, amount: 1n }], reconciler)).mode).toBe("incremental");
    const moved = await at([{ from: SENDER, to: a, amount: 1000n }], other);
    expect(moved.mode).toBe("incremental");
    const run = await at([{ from: SENDER, to: a, amount: 5n }], reconciler);
    expect(run.mode).toBe("incremental");
    // (dep(0)'s 12,345 from the test above is still open.)
    expect(run.breaks.filter((b) => b.key === `inflow:${a}`)).toEqual([]);
    const cached = await pool.query<{ sum: bigint | null }>(
      "SELECT sum(balance) AS sum FROM recon.onchain_balances WHERE chain_id = $1 AND asset = $2",
      [CHAIN_ID, ZERO],
    );
    const deposits = run.checks.find((c) => c.scope === "deposits" && c.assetId.endsWith(ZERO));
    expect(deposits?.chain).toBe(cached.rows[0]!.sum);
    expect(nonZero(await table())).toEqual(nonZero(await history(run.block)));
  }, 120_000);

  it("a run whose balance read fails moves nothing (its completion was opened during the read)", async () => {
    const s = (await state())!;
    const stateOf = async (table: string) =>
      (
        await pool.query<{ run_id: string }>(
          `SELECT run_id::text FROM recon.${table} WHERE chain_id = $1`,
          [CHAIN_ID],
        )
      ).rows[0]?.run_id;
    const before = {
      table: await table(),
      liabilities: await stateOf("liability_state"),
      onchain: await stateOf("onchain_balance_state"),
    };
    // A listed token with no contract: its balance is unreadable, the run fails after its load.
    const noCode = `0x${"ab".repeat(20)}` as const;
    const broken = {
      ...chain,
      tokens: [...chain.tokens, { address: noCode, symbol: "NOC", decimals: 18 }],
    };
    const next = Number(await rpc("eth_blockNumber")) + 1;
    await writeBlock(next, [{ from: SENDER, to: dep(3), amount: 2n }]);
    await anvilAt(next);
    await expect(reconciler.run({ chain: broken, block: next })).rejects.toMatchObject({
      code: "RECON_BALANCE_UNREADABLE",
    });
    expect(await state()).toEqual(s);
    expect({
      table: await table(),
      liabilities: await stateOf("liability_state"),
      onchain: await stateOf("onchain_balance_state"),
    }).toEqual(before);
    const run = await reconciler.run({ chain, block: next });
    expect(run.mode).toBe("incremental");
    expect(nonZero(await table())).toEqual(nonZero(await history(next)));
    expect(await state()).toEqual({ runId: run.runId, block: next });
  }, 120_000);
  it("a full run rebuilds it from its own stream of facts, page by page, without reading history again", async () => {
    const at = Number(await rpc("eth_blockNumber")) + 1;
    type Row = {
      tx: number;
      position: string;
      kind?: string;
      asset?: string;
      from?: string;
      to: string;
      amount: bigint;
      status?: string;
    };
    // One transaction with three facts (a page of two cannot hold it), an orphaned fact, a fee
    // paid by a deposit address, value moving between two deposit addresses; and a fact above
    // the run's block.
    const rows: Row[] = [
      { tx: 1, position: "log:0", kind: "erc20", asset: TOKEN, to: dep(2), amount: 5n },
      { tx: 1, position: "log:1", kind: "erc20", asset: TOKEN, to: dep(2), amount: 6n },
      { tx: 1, position: "tx", to: dep(2), amount: 7n },
      { tx: 2, position: "tx", to: dep(7), amount: 900n, status: "orphaned" },
      { tx: 3, position: "fee", kind: "fee", from: dep(8), to: SENDER, amount: 4n },
      { tx: 4, position: "tx", from: dep(9), to: dep(10), amount: 8n },
    ];
    const base = tx;
    tx += rows.length;
    await pool.query(
      `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
         kind, asset, from_address, to_address, amount, status)
       SELECT $1, $2, $3, t, i::int - 1, p, k, a, f, d, v, s
         FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                     $10::numeric[], $11::text[]) WITH ORDINALITY AS x(t, p, k, a, f, d, v, s, i)`,
      [
        CHAIN_ID,
        at,
        hex(at, 64),
        rows.map((r) => hex(0xabc000 + base + r.tx, 64)),
        rows.map((r) => r.position),
        rows.map((r) => r.kind ?? "native"),
        rows.map((r) => r.asset ?? ZERO),
        rows.map((r) => r.from ?? SENDER),
        rows.map((r) => r.to),
        rows.map((r) => r.amount.toString()),
        rows.map((r) => r.status ?? "confirmed"),
      ],
    );
    await writeBlock(at + 1, [{ from: SENDER, to: dep(4), amount: 999n }]);
    await anvilAt(at + 1);
    const want = await history(at);
    expect(want).not.toEqual(await history(at + 1));
    // Every statement's plan, as auto_explain sends it to the client.
    const { pool: traced, plans } = createPlanTracingPool(ctx.db.url);
    try {
      const run = await createReconciler({
        sweeps: sweepReader,
        common: ctx.common,
        pool: traced,
        streamPage: 2,
        chains: adapterPerChain(ctx.common),
      }).run({ chain, block: at, full: true });
      expect(run.mode).toBe("full");
      expect(await state()).toEqual({ runId: run.runId, block: at });
    } finally {
      await traced.end();
    }
    // Exactly history's rows, zero sums included.
    expect(await table()).toEqual(want);
    expect(plans.filter((p) => p.includes("ORDER BY tx_hash, position")).length).toBeGreaterThan(2);
    expect(plans.filter((p) => p.includes("sum(v) AS net"))).toEqual([]);
  }, 120_000);
});
