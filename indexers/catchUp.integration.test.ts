/**
 * Catch-up after an outage: the indexer and the crediting worker run; every RPC endpoint goes
 * down (one drops connections, the other answers 500) while the chain produces 2 hours of 12 s
 * blocks (600 blocks, compressed with anvil_mine at 12 s timestamps) holding 12 deposits; then the
 * endpoints recover. The indexer catches up by itself (its loop, no syncOnce): no fact lost (the
 * stored chain equals a fresh index of the node's chain), every deposit credited exactly once, no
 * reorg recorded and no halt (a gap is not a fork).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import { createLedger, type Ledger } from "../ledger/createLedger.js";
import { type CreditingWorker, startCreditingWorker } from "../ledger/creditingWorker.js";
import { waitFor } from "../ops/testing/wait.js";
import type { Ingestor } from "./createIngestor.js";
import { createFactsDoorbell } from "./doorbell.js";
import { openHalt } from "./halts.js";
import { loadTip } from "./store.js";
import {
  canonicalBlocks,
  canonicalFacts,
  freshAddress,
  freshIndex,
  sendAndMine,
} from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const ETH = `${CHAIN_ID}:0x0000000000000000000000000000000000000000`;
const BLOCK_TIME_S = 12;
const OUTAGE_BLOCKS = 600; // 2 hours of 12 s blocks
const DEPOSITS = 12;
const ALICE = freshAddress(301);
const BOB = freshAddress(302);

let t: IndexerTest;
let from: Hex;
let primary: FaultyProxy;
let secondary: FaultyProxy;
let chain: ChainConfig;
let ingestor: Ingestor;
let ledger: Ledger;
let worker: CreditingWorker;

const credited = async (owner: string) =>
  (await ledger.getAccount({ assetId: ETH, name: `user:${owner}` }))?.creditsPosted ?? 0n;
const atHead = async () => {
  const head = await t.rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
  const tip = await loadTip(t.ctx.db.pool, CHAIN_ID);
  return tip?.number === BigInt(head.number) && tip.hash === head.hash.toLowerCase();
};
const count = async (sql: string) => (await t.ctx.db.pool.query(sql)).rows[0].n as number;

beforeAll(async () => {
  t = await startIndexerTest({
    chain: { config: { confirmations: { kind: "blocks", blocks: 3 } } },
    proxies: 2,
    config: { blockTimeMs: BLOCK_TIME_S * 1000 },
    watch: [
      { address: ALICE, owner: "alice" },
      { address: BOB, owner: "bob" },
    ],
  });
  ({ from, chain } = t);
  [primary, secondary] = t.proxies as [FaultyProxy, FaultyProxy];
  ingestor = await t.ingestor({
    adapterOptions: { timeoutMs: 2_000 },
    doorbell: createFactsDoorbell(t.ctx.queues),
    // A 12 s chain polls every 12 s; the test polls faster so it does not wait on the clock.
    options: { batchBlocks: 50, pollIntervalMs: 200 },
  });
  ledger = createLedger({ common: t.ctx.common, pool: t.ctx.db.pool });
  worker = await startCreditingWorker({
    common: t.ctx.common,
    pool: t.ctx.db.pool,
    queues: t.ctx.queues,
    ledger,
    chains: [chain],
    sweepIntervalMs: 2_000,
  });
  ingestor.start();
});

afterAll(async () => {
  await worker?.stop();
  await t?.stop();
});

it("catches up 2 hours of blocks after every RPC endpoint was down: nothing lost, credited, no reorg", async () => {
  // Before the outage: a deposit is credited (the pipeline works).
  await sendAndMine(t.rpc, { from, to: ALICE, value: 1000n });
  await t.rpc("anvil_mine", ["0x3"]);
  await waitFor("the first deposit credited", async () => (await credited("alice")) === 1000n);

  primary.setFault("drop");
  secondary.setFault("http500");
  await waitFor("the indexer to notice the outage", () => ingestor.status().lastError !== null);
  const indexedAtOutage = ingestor.status().indexed!;

  // Two hours of blocks with 12 deposits spread over them, timestamps 12 s apart.
  const expected = new Map<string, bigint>([
    ["alice", 1000n],
    ["bob", 0n],
  ]);
  const hashes: string[] = [];
  const between = OUTAGE_BLOCKS / DEPOSITS - 1;
  for (let i = 0; i < DEPOSITS; i++) {
    await t.rpc("anvil_mine", [`0x${between.toString(16)}`, `0x${BLOCK_TIME_S.toString(16)}`]);
    const owner = i % 2 === 0 ? "alice" : "bob";
    const value = 10_000n + BigInt(i);
    const r = await sendAndMine(t.rpc, { from, to: owner === "alice" ? ALICE : BOB, value });
    hashes.push(r.transactionHash.toLowerCase());
    expected.set(owner, expected.get(owner)! + value);
  }
  await t.rpc("anvil_mine", ["0x5", `0x${BLOCK_TIME_S.toString(16)}`]); // bury the last deposit
  const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
  expect(head - indexedAtOutage).toBeGreaterThanOrEqual(BigInt(OUTAGE_BLOCKS));
  // Nothing moved while every endpoint was down.
  expect(ingestor.status().indexed).toBe(indexedAtOutage);

  primary.setFault("none");
  secondary.setFault("none");
  await waitFor("the indexer to catch up to the head", atHead, { timeoutMs: 180_000 });

  // No fact lost: the stored chain is a fresh index of the node's chain.
  const reference = await freshIndex({ common: t.ctx.common, chain, sourcePool: t.ctx.db.pool });
  expect(await canonicalBlocks(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.blocks);
  expect(await canonicalFacts(t.ctx.db.pool, CHAIN_ID)).toEqual(reference.facts);
  const { rows } = await t.ctx.db.pool.query<{ tx_hash: string; status: string }>(
    "SELECT tx_hash, status FROM chain.transfers WHERE tx_hash = ANY($1::text[])",
    [hashes],
  );
  expect(rows.map((r) => r.tx_hash).sort()).toEqual([...hashes].sort());
  expect(rows.every((r) => r.status === "confirmed")).toBe(true);
  // A gap is not a fork.
  expect(await count("SELECT count(*)::int AS n FROM chain.reorgs")).toBe(0);
  expect(
    await count("SELECT count(*)::int AS n FROM chain.transfers WHERE status = 'orphaned'"),
  ).toBe(0);
  expect(await openHalt(t.ctx.db.pool, CHAIN_ID)).toBeNull();

  // Crediting resumes: every deposit of the outage credited, exactly once.
  await waitFor(
    "every deposit credited",
    async () =>
      (await credited("alice")) === expected.get("alice") &&
      (await credited("bob")) === expected.get("bob"),
    { timeoutMs: 120_000 },
  );
  expect(
    await count(
      `SELECT count(*)::int AS n FROM ledger.transfers WHERE kind = 'deposit'
        AND tx_hash IN (SELECT tx_hash FROM chain.transfers WHERE chain_id = ${CHAIN_ID})`,
    ),
  ).toBe(DEPOSITS + 1);
});
