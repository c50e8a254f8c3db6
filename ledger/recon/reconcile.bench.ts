/**
 * Reconciliation benchmark: the matching core over 1,000,000 chain facts and their ledger entries
 * (every 1,000th deposit left uncredited and every 1,000th credited twice, so breaks are found),
 * then an incremental run over one block of 10,000 transfers against Postgres.
 */
import { adapterPerChain } from "../../chains/index.js";
import { figure, machineLine } from "../../ops/bench/machine.js";
import { createTestContext } from "../../ops/testing/context.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { createLedger } from "../createLedger.js";
import { transferId } from "../transferId.js";
import type { NewTransfer } from "../types.js";
import { matchFactsToEntries } from "./match.js";
import { createReconciler } from "./reconcile.js";
import type { ChainFact, CustodyKind, LedgerEntry } from "./types.js";

const N = 1_000_000;
const ETH = "31337:0x0000000000000000000000000000000000000000";
const hex = (n: number, width: number) => `0x${n.toString(16).padStart(width, "0")}`;

function buildWorkload(n: number) {
  const custody = new Map<string, CustodyKind>();
  for (let i = 0; i < 10_000; i++) custody.set(hex(i + 1, 40), "deposit");
  const facts: ChainFact[] = new Array(n);
  const entries: LedgerEntry[] = [];
  for (let i = 0; i < n; i++) {
    const txHash = hex(i + 1, 64);
    const to = hex((i % 10_000) + 1, 40);
    const amount = BigInt(1_000_000 + i);
    facts[i] = {
      id: i + 1,
      blockNumber: Math.floor(i / 100),
      txHash,
      position: "log:0",
      kind: "erc20",
      assetId: ETH,
      from: hex(0xeeee, 40),
      to,
      amount,
      status: "confirmed",
    };
    if (i % 1000 === 7) continue;
    const e: LedgerEntry = {
      seq: entries.length + 1,
      id: `t${i}`,
      kind: "deposit",
      assetId: ETH,
      debit: "custody:deposits",
      credit: `user:${i % 10_000}`,
      amount,
      // a separate string, as rows read from pg are: its hash is not shared with the fact's
      txHash: hex(i + 1, 64),
      position: "log:0",
      reversesId: null,
    };
    entries.push(e);
    if (i % 1000 === 11) entries.push({ ...e, seq: entries.length + 1, id: `t${i}b` });
  }
  return { facts, entries, custody };
}

async function main() {
  console.log(
    `workload: match ${N.toLocaleString("en")} ERC-20 deposit facts against ${N.toLocaleString("en")} ledger entries (0.1% uncredited, 0.1% credited twice)`,
  );
  console.log(machineLine());
  const input = buildWorkload(N);
  const times: number[] = [];
  let breaks = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    const r = matchFactsToEntries(input);
    times.push(performance.now() - t0);
    breaks = r.breaks.length;
  }
  figure("match 1,000,000 facts (best of 3)", Math.min(...times), "ms");
  figure("match 1,000,000 facts (median of 3)", times.sort((a, b) => a - b)[1]!, "ms");
  figure("breaks found", breaks, "breaks");
}

const HISTORY_BLOCKS = 200;
const PER_HISTORY_BLOCK = 500;
const NEW_BLOCK = 10_000;
const DEPOSIT_ADDRESSES = 1_000;
const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";

/**
 * Facts are written as the indexer writes them (rows of chain.transfers in committed blocks); the
 * ledger side goes through the real ledger API.
 */
async function incremental() {
  console.log(
    `workload: incremental run over one block of ${NEW_BLOCK.toLocaleString("en")} deposit facts and their ${NEW_BLOCK.toLocaleString("en")} ledger transfers, after a completed run over ${(HISTORY_BLOCKS * PER_HISTORY_BLOCK).toLocaleString("en")} (Postgres + anvil, ${DEPOSIT_ADDRESSES} deposit addresses)`,
  );
  const ctx = await createTestContext({ chains: [{ chainId: CHAIN_ID }] });
  try {
    const pool = ctx.db.pool;
    const chain = ctx.config.chains[0]!;
    const ledger = createLedger({ common: ctx.common, pool });
    await ledger.ensureAssetsFromConfig([chain]);
    const rpc = async (method: string, params: unknown[]) =>
      (await fetch(ctx.anvils[0]!.rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      }).then((r) => r.json())) as { result: unknown };
    await rpc("anvil_mine", [`0x${(HISTORY_BLOCKS + 10).toString(16)}`]);
    const addr = (i: number) => hex(0xd0000 + (i % DEPOSIT_ADDRESSES), 40);
    await pool.query(
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
       SELECT $1, a, 'deposit', 'c' || i FROM unnest($2::text[]) WITH ORDINALITY AS x(a, i)`,
      [CHAIN_ID, Array.from({ length: DEPOSIT_ADDRESSES }, (_, i) => addr(i))],
    );
    let txCounter = 0;
    async function writeBlock(block: number, n: number) {
      const txs = Array.from({ length: n }, () => hex(++txCounter, 64));
      await pool.query(
        `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
           kind, asset, from_address, to_address, amount, status)
         SELECT $1, $2, $3, t, i::int, 'tx', 'native', $4, $5, a, 1000 + i, 'confirmed'
         FROM unnest($6::text[], $7::text[]) WITH ORDINALITY AS x(t, a, i)`,
        [CHAIN_ID, block, hex(block, 64), ZERO, hex(0xeeee, 40), txs, txs.map((_, i) => addr(i))],
      );
      await pool.query(
        `INSERT INTO chain.checkpoints (chain_id, block_number, block_hash) VALUES ($1, $2, $3)
         ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number`,
        [CHAIN_ID, block + 2, hex(block + 2, 64)],
      );
      const transfers: NewTransfer[] = txs.map((t, i) => ({
        id: transferId(`deposit:${CHAIN_ID}:${t}:tx`),
        assetId: `${CHAIN_ID}:${ZERO}`,
        debit: "custody:deposits",
        credit: `user:c${(i % DEPOSIT_ADDRESSES) + 1}`,
        amount: BigInt(1001 + i),
        kind: "deposit",
        chainRef: { chainId: CHAIN_ID, txHash: t, position: "tx" },
      }));
      for (let i = 0; i < transfers.length; i += 4096)
        await ledger.createTransfers(transfers.slice(i, i + 4096));
    }
    for (let b = 1; b <= HISTORY_BLOCKS; b++) await writeBlock(b, PER_HISTORY_BLOCK);
    // After a bulk load, as autovacuum would: plans depend on row estimates.
    await pool.query("ANALYZE chain.transfers; ANALYZE ledger.transfers; ANALYZE ledger.accounts");
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: ctx.common,
      pool,
      chains: adapterPerChain(ctx.common),
    });
    const full = await reconciler.run({ chain });
    figure(
      `full run over ${full.factsExamined.toLocaleString("en")} facts (load ${full.timingsMs.load.toFixed(0)} ms, match ${full.timingsMs.match.toFixed(0)} ms, balances ${full.timingsMs.balances.toFixed(0)} ms, store ${full.timingsMs.store.toFixed(0)} ms)`,
      full.timingsMs.total,
      "ms",
    );
    const times: number[] = [];
    let last = full;
    for (let round = 0; round < 3; round++) {
      await writeBlock(HISTORY_BLOCKS + 1 + round, NEW_BLOCK);
      const t0 = performance.now();
      last = await reconciler.run({ chain });
      times.push(performance.now() - t0);
      if (last.mode !== "incremental" || last.factsExamined < NEW_BLOCK)
        throw new Error(`expected an incremental run over the new block, got ${last.mode}`);
    }
    const s = last.timingsMs;
    console.log(
      `last incremental run: ${last.factsExamined} facts, ${last.entriesExamined} entries, ${last.matched} matched, ${last.breaks.length} breaks (synthetic facts: on-chain balances differ); load ${s.load.toFixed(0)} ms, match ${s.match.toFixed(0)} ms, balances ${s.balances.toFixed(0)} ms, store ${s.store.toFixed(0)} ms`,
    );
    figure("incremental run, one block of 10,000 transfers (best of 3)", Math.min(...times), "ms");
    figure(
      "incremental run, one block of 10,000 transfers (median of 3)",
      times.sort((a, b) => a - b)[1]!,
      "ms",
    );
  } finally {
    await ctx.cleanup();
  }
}

await main();
await incremental();
