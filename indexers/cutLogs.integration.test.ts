/**
 * An eth_getLogs answer cut partway within a block (a proxy or provider truncating without an
 * error) keeps some of the block's Transfers, so the bloom check (every listed token has a log)
 * passes. A direct transfer() of a listed token to a watched address whose Transfer the answer
 * lacks is checked against its receipt: a successful receipt with the log shows the answer cut, and
 * the block's logs are read again by hash (from another endpoint when the first cuts that too);
 * a reverted call is no evidence, and costs one receipt read, once.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type ChainConfig, endpointLabel } from "../chains/index.js";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import { type Common, createCommon } from "../foundation/common.js";
import { createLogger } from "../foundation/logger.js";
import { createMetrics } from "../foundation/metrics.js";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import type { Ingestor } from "./createIngestor.js";
import {
  call,
  canonicalFacts,
  freshAddress,
  freshIndex,
  receipt,
  sendTx,
  syncToHead,
  watch,
} from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
let t: IndexerTest;
let primary: FaultyProxy;
let secondary: FaultyProxy;
let chain: ChainConfig;
let token: Hex;
let seed = 100;

beforeAll(async () => {
  t = await startIndexerTest({ proxies: 2, token: true });
  chain = t.chain;
  [primary, secondary] = t.proxies as [FaultyProxy, FaultyProxy];
  token = t.token!;
});

beforeEach(() => {
  for (const proxy of [primary, secondary])
    for (const method of ["eth_getLogs", "eth_getBlockReceipts"]) proxy.setMethodLie(method, null);
});

afterAll(async () => {
  await t?.stop();
});

function freshCommon(): Common {
  return createCommon(t.ctx.config, {
    logger: createLogger(t.ctx.config.env.LOG_LEVEL),
    metrics: createMetrics({ defaults: false }),
  });
}

async function counter(common: Common, name: string): Promise<number> {
  const values = (await common.metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.find((v) => v.labels.chain_id === String(CHAIN_ID))?.value ?? 0;
}

const topicOf = (address: string) => `0x${address.slice(2).toLowerCase().padStart(64, "0")}`;

/**
 * `proxy` answers eth_getLogs (ranged, or by block hash with `byHash`) without the Transfers to
 * `victim`, keeping the others: a cut within the block. Returns how many answers were cut.
 */
function cutTransfersTo(
  proxy: FaultyProxy,
  victim: Hex,
  { byHash = false }: { byHash?: boolean } = {},
): () => number {
  let cut = 0;
  proxy.setMethodLie("eth_getLogs", (real, params) => {
    const filter = params[0] as { blockHash?: string } | undefined;
    if (!Array.isArray(real.result) || (filter?.blockHash !== undefined && !byHash))
      return real.error ? { error: real.error } : { result: real.result };
    const kept = (real.result as { topics: string[] }[]).filter(
      (l) => l.topics[2] !== topicOf(victim),
    );
    if (kept.length < real.result.length) cut++;
    return { result: kept };
  });
  return () => cut;
}

/** Mines one block holding a listed-token transfer() to each of `recipients` (and `extra` txs). */
async function mineTransfers(
  recipients: { to: Hex; amount: bigint; from?: Hex }[],
): Promise<Hex[]> {
  await t.rpc("evm_setAutomine", [false]);
  const hashes: Hex[] = [];
  try {
    for (const r of recipients)
      hashes.push(
        await sendTx(t.rpc, {
          from: r.from ?? t.from,
          to: token,
          data: call("TestToken", "transfer", [r.to, r.amount]),
          gas: 100_000n,
        }),
      );
    await t.rpc("evm_mine");
  } finally {
    await t.rpc("evm_setAutomine", [true]);
  }
  const receipts = await Promise.all(hashes.map((h) => receipt(t.rpc, h)));
  expect(new Set(receipts.map((r) => r.blockHash)).size).toBe(1);
  return hashes;
}

type Case = { common: Common; db: TestDatabase; ingestor: Ingestor; deposit: Hex };

/**
 * Runs `body` with a fresh database watching a fresh deposit address and its ingestor (on
 * `rpcUrls`, else the chain's endpoints, with its own metrics); then stops the ingestor before its
 * database is dropped (it holds the chain's lease there).
 */
async function withIngestor(
  rpcUrls: string[] | undefined,
  body: (c: Case) => Promise<void>,
): Promise<void> {
  const deposit = freshAddress(seed++);
  const common = freshCommon();
  const db = await createTestDatabase();
  let ingestor: Ingestor | undefined;
  try {
    await watch(db.pool, CHAIN_ID, [{ address: deposit }]);
    ingestor = await t.ingestor({
      common,
      pool: db.pool,
      chain: rpcUrls === undefined ? chain : { ...chain, rpcUrls },
    });
    await body({ common, db, ingestor, deposit });
  } finally {
    await ingestor?.stop();
    await db.drop();
  }
}

/** The erc20 facts to `to` stored in `pool`. */
async function erc20To(pool: Parameters<typeof canonicalFacts>[0], to: Hex) {
  return (await canonicalFacts(pool, CHAIN_ID)).filter(
    (f) => f.kind === "erc20" && f.to_address === to.toLowerCase(),
  );
}

describe("an eth_getLogs answer cut within a block", () => {
  for (const path of ["backfill", "realtime"] as const)
    it(`a deposit whose Transfer the answer left out is stored once (${path})`, async () => {
      const others = [freshAddress(seed++), freshAddress(seed++)];
      // Realtime: the preferred endpoint cuts every answer, by hash too; the re-read moves on to
      // the other endpoint. Backfill: the only endpoint cuts ranged answers (by hash is whole).
      const urls = path === "realtime" ? undefined : [primary.url];
      await withIngestor(urls, async ({ common, db, ingestor, deposit }) => {
        if (path === "realtime") await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
        const cut = cutTransfersTo(primary, deposit, { byHash: path === "realtime" });
        await mineTransfers([
          { to: others[0]!, amount: 1n },
          { to: deposit, amount: 42n },
          { to: others[1]!, amount: 3n },
        ]);
        // Backfill: blocks after it, so the block comes in a range.
        if (path === "backfill") await t.rpc("anvil_mine", ["0x3"]);
        await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
        await ingestor.stop();
        expect(cut()).toBeGreaterThan(0);
        expect((await erc20To(db.pool, deposit)).map((f) => f.amount)).toEqual([42n]);
        expect(await counter(common, "custody_indexer_cut_log_answers_total")).toBe(1);
        if (path === "realtime") {
          // The preferred endpoint's by-hash answer was cut too: passed over for the other's.
          const incomplete = await common.metrics.registry
            .getSingleMetric("custody_rpc_incomplete_answers_total")
            ?.get();
          expect(
            incomplete?.values.filter(
              (v) => v.labels.field === "logs" && v.labels.endpoint === endpointLabel(primary.url),
            ).length,
          ).toBe(1);
        }
        primary.setMethodLie("eth_getLogs", null);
        const reference = await freshIndex({
          common: t.ctx.common,
          chain: { ...chain, rpcUrls: [t.ctx.anvils[0]!.rpcUrl] },
          sourcePool: db.pool,
        });
        expect(await canonicalFacts(db.pool, CHAIN_ID)).toEqual(reference.facts);
      });
    });

  it("a re-read by hash cut as well is not taken: nothing is stored until a whole answer comes", async () => {
    await withIngestor([primary.url], async ({ db, ingestor, deposit }) => {
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      const tip = await t.rpc<Hex>("eth_blockNumber");
      cutTransfersTo(primary, deposit, { byHash: true });
      await mineTransfers([
        { to: freshAddress(seed++), amount: 1n },
        { to: deposit, amount: 5n },
      ]);
      await expect(ingestor.syncOnce()).rejects.toThrow(/eth_getLogs/);
      const stored = await db.pool.query<{ n: string }>(
        "SELECT block_number::text AS n FROM chain.checkpoints WHERE chain_id = $1",
        [CHAIN_ID],
      );
      expect(stored.rows[0]?.n).toBe(BigInt(tip).toString());
      primary.setMethodLie("eth_getLogs", null);
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      await ingestor.stop();
      expect((await erc20To(db.pool, deposit)).map((f) => f.amount)).toEqual([5n]);
    });
  });

  for (const path of ["backfill", "realtime"] as const)
    it(`a reverted transfer() to a watched address costs one receipt read, no re-reading (${path})`, async () => {
      await withIngestor([primary.url], async ({ common, db, ingestor, deposit }) => {
        if (path === "realtime") await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
        let byHash = 0;
        primary.setMethodLie("eth_getLogs", (real, params) => {
          if ((params[0] as { blockHash?: string }).blockHash !== undefined) byHash++;
          return real.error ? { error: real.error } : { result: real.result };
        });
        // accounts[1] holds no tokens: its transfer() reverts, beside a good one to someone else.
        const [, reverted] = await mineTransfers([
          { to: freshAddress(seed++), amount: 1n },
          { to: deposit, amount: 9n, from: t.accounts[1]! },
        ]);
        const block = (await receipt(t.rpc, reverted!)).blockNumber;
        expect((await receipt(t.rpc, reverted!)).status).toBe("0x0");
        let receiptReads = 0;
        primary.setMethodLie("eth_getBlockReceipts", (real, params) => {
          if (params[0] === block) receiptReads++;
          return real.error ? { error: real.error } : { result: real.result };
        });
        if (path === "backfill") await t.rpc("anvil_mine", ["0x3"]);
        await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
        await ingestor.stop();
        expect(await erc20To(db.pool, deposit)).toEqual([]);
        expect(await counter(common, "custody_indexer_cut_log_answers_total")).toBe(0);
        // Realtime reads the block's logs by hash once (its bloom holds the token); backfill not at all.
        expect(byHash).toBe(path === "realtime" ? 1 : 0);
        expect(receiptReads).toBe(1);
      });
    });
});
