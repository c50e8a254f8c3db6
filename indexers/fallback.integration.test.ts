/**
 * RPC faults in front of a real anvil: the first endpoint fails (HTTP 500), rate-limits (429),
 * times out, drops connections or refuses wide eth_getLogs ranges; the adapter falls back to the
 * next endpoint (or shrinks the range) and the indexer's result equals a clean index. The same when
 * the first endpoint answers a chain-data read with a JSON-RPC error, leaves receipts out or answers
 * with another block's receipts, or a block without its transactions: that answer is never
 * evidence, the read moves on. A receipt
 * without the field its fee is read from is not known yet either: the next endpoint's is taken
 * (the endpoint counted in custody_rpc_incomplete_answers_total); from the only endpoint, nothing is
 * stored from it, and it is counted (custody_rpc_receipt_fee_field_missing_total) so an operator
 * sees the stall.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import { createEvmAdapter, endpointLabel, RpcUnavailableError } from "../chains/index.js";
import type { FaultyProxy } from "../chains/testing/faultyProxy.js";
import { type Common, createCommon } from "../foundation/common.js";
import type { Pool } from "../foundation/db.js";
import { createLogger } from "../foundation/logger.js";
import { createMetrics } from "../foundation/metrics.js";
import { droppedTogether } from "../ops/testing/database.js";
import { loadTip } from "./store.js";
import {
  call,
  canonicalFacts,
  freshAddress,
  freshIndex,
  sendAndMine,
  syncToHead,
  watch,
} from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const D1 = freshAddress(1);
// Receives only in the tests at the end (the ones above count D1's facts and the token's logs).
const D2 = freshAddress(2);
let t: IndexerTest;
let primary: FaultyProxy;
let secondary: FaultyProxy;
let chain: ChainConfig;
let from: Hex;
let token: Hex;
// Two databases a test (its own index and the reference), dropped together after the last test.
const databases = droppedTogether();

beforeAll(async () => {
  t = await startIndexerTest({ proxies: 2, token: true, watch: [{ address: D1 }] });
  ({ from, chain } = t);
  [primary, secondary] = t.proxies as [FaultyProxy, FaultyProxy];
  token = t.token!;
  for (let i = 1n; i <= 20n; i++) {
    await sendAndMine(t.rpc, { from, to: D1, value: i });
    await sendAndMine(t.rpc, { from, to: token, data: call("TestToken", "transfer", [D1, i]) });
  }
});

// Every test starts from healthy endpoints, whatever the test before it left behind.
beforeEach(() => {
  for (const proxy of [primary, secondary]) {
    proxy.setFault("none");
    proxy.setMaxLogRange(null);
    proxy.setDropRangeLogs(false);
    proxy.setRefuseBatches(false);
    for (const method of LIED_ABOUT) proxy.setMethodLie(method, null);
  }
});

const LIED_ABOUT = [
  "eth_getBlockReceipts",
  "eth_getTransactionReceipt",
  "eth_getLogs",
  "trace_block",
  "eth_getBlockByNumber",
  "eth_getBlockByHash",
];

/** A Common with its own metrics registry, so a test's counters start at zero. */
function freshCommon(): Common {
  return createCommon(t.ctx.config, {
    logger: createLogger(t.ctx.config.env.LOG_LEVEL),
    metrics: createMetrics({ defaults: false }),
  });
}

/** The proxy's receipts (both receipt reads) lose `field`, as from a proxy that drops fields it does not know. */
function stripReceiptField(proxy: FaultyProxy, field: string): void {
  const without = (r: unknown) => {
    const { [field]: _dropped, ...rest } = r as Record<string, unknown>;
    return rest;
  };
  const stripped = (real: { result?: unknown }) => ({
    result: Array.isArray(real.result)
      ? real.result.map(without)
      : real.result && without(real.result),
  });
  proxy.setMethodLie("eth_getBlockReceipts", stripped);
  proxy.setMethodLie("eth_getTransactionReceipt", stripped);
}

/**
 * The proxy's blocks with their transactions (eth_getBlockByNumber, hydrated) come without them,
 * their header (transactionsRoot) unchanged: a node missing the block's body (a fast-synced geth
 * answers so for blocks whose bodies it has not downloaded).
 */
function withoutTransactions(proxy: FaultyProxy): void {
  proxy.setMethodLie("eth_getBlockByNumber", (real, params) => {
    const block = real.result as { transactions?: unknown[] } | null | undefined;
    if (params[1] !== true || !block || !block.transactions?.length) return { result: real.result };
    return { result: { ...block, transactions: [] } };
  });
}

function stripEffectiveGasPrice(proxy: FaultyProxy): void {
  stripReceiptField(proxy, "effectiveGasPrice");
}

/** Ranges the indexer refused for a receipt without effectiveGasPrice (it waited for a whole one). */
async function stalls(common: Common): Promise<number> {
  const metric = common.metrics.registry.getSingleMetric(
    "custody_rpc_receipt_fee_field_missing_total",
  );
  return (
    (await metric?.get())?.values.find(
      (v) =>
        v.labels.chain_id === String(CHAIN_ID) &&
        v.labels.component === "indexer" &&
        v.labels.field === "effectiveGasPrice",
    )?.value ?? 0
  );
}

/** The facts `pool` holds are what a fresh index of the node itself (no proxy) stores; returns them. */
async function expectCleanIndex(pool: Pool, config: Partial<ChainConfig> = {}) {
  const reference = await freshIndex({
    common: t.ctx.common,
    chain: { ...chain, ...config, rpcUrls: [t.ctx.anvils[0]!.rpcUrl] },
    sourcePool: pool,
    databases,
  });
  const facts = await canonicalFacts(pool, CHAIN_ID);
  expect(facts).toEqual(reference.facts);
  return facts;
}

/** The primary's lies told since `before` (its stats then): a test that set one tested something. */
function liesSince(before: Record<string, number>): string[] {
  return Object.entries(primary.stats())
    .filter(([k, n]) => k.startsWith("lie:") && n > (before[k] ?? 0))
    .map(([k]) => k);
}

// Long enough that a healthy node on a loaded machine always answers; a hung one costs this much.
const TIMEOUT_MS = 2_000;

afterAll(async () => {
  await t?.stop();
  await databases.dropAll();
});

describe("RPC fallback", () => {
  for (const fault of ["http500", "http429", "hang", "drop"] as const) {
    it(`falls back to the next endpoint when the first answers ${fault}`, async () => {
      primary.setFault(fault);
      const adapter = createEvmAdapter(chain, { common: t.ctx.common }, { timeoutMs: TIMEOUT_MS });
      const [primaryBefore, secondaryBefore] = [primary.requests(), secondary.requests()];
      expect(await adapter.getHead()).toBe(BigInt(await t.rpc<Hex>("eth_blockNumber")));
      // Asked the preferred endpoint once (its chain id, before its first read: failed), then the
      // next one its chain id and the head.
      expect(primary.requests()).toBe(primaryBefore + 1);
      expect(secondary.requests()).toBe(secondaryBefore + 2);
    });
  }

  it("returns to the preferred endpoint after its cool-down", async () => {
    primary.setFault("http500");
    const adapter = createEvmAdapter(chain, { common: t.ctx.common });
    await adapter.getHead();
    primary.setFault("none");
    // The first cool-down is 250 ms of wall-clock time from the failure, which happened before
    // getHead returned: wait it out (a timer never fires early, however loaded the machine), then
    // the preferred endpoint answers again and the fallback is not asked.
    await new Promise((r) => setTimeout(r, 300));
    const [primaryBefore, secondaryBefore] = [primary.requests(), secondary.requests()];
    await adapter.getHead();
    // Its chain id (never told yet: its first ask failed), then the head.
    expect(primary.requests()).toBe(primaryBefore + 2);
    expect(secondary.requests()).toBe(secondaryBefore);
  });

  it("gives up with RpcUnavailableError when every endpoint fails", async () => {
    primary.setFault("http500");
    secondary.setFault("http429");
    const adapter = createEvmAdapter(
      { ...chain, rpcUrls: [primary.url, secondary.url] },
      { common: t.ctx.common },
    );
    await expect(adapter.getHead()).rejects.toBeInstanceOf(RpcUnavailableError);
  });

  it("shrinks eth_getLogs ranges the provider refuses and grows them back", async () => {
    secondary.setMaxLogRange(4);
    const adapter = createEvmAdapter(
      { ...chain, rpcUrls: [secondary.url] },
      { common: t.ctx.common },
      { maxLogRange: 64 },
    );
    const head = BigInt(await t.rpc<Hex>("eth_blockNumber"));
    const logs = await adapter.getTransferLogs({ fromBlock: 0n, toBlock: head, tokens: [token] });
    const direct = await t.rpc<unknown[]>("eth_getLogs", [
      { fromBlock: "0x0", toBlock: `0x${head.toString(16)}`, address: [token] },
    ]);
    expect(logs).toEqual(direct);
    // It shrank to ranges the provider accepts, and grew past them again after successes.
    expect(secondary.logRanges().some((span) => span <= 4)).toBe(true);
    expect(secondary.logRanges().some((span) => span > 4)).toBe(true);
  });

  it("sends single requests to a provider that refuses JSON-RPC batches", async () => {
    secondary.setRefuseBatches(true);
    const adapter = createEvmAdapter(
      { ...chain, rpcUrls: [secondary.url] },
      { common: t.ctx.common },
    );
    const before = secondary.requests();
    const headers = await adapter.getHeaders([1n, 2n, 3n]);
    expect(headers.map((h) => h && BigInt(h.number))).toEqual([1n, 2n, 3n]);
    // Its chain id (first use), the refused batch, then 3 single calls.
    expect(secondary.requests()).toBe(before + 5);
  });

  it("recovers logs a provider silently leaves out of ranged eth_getLogs (block bloom check)", async () => {
    secondary.setDropRangeLogs(true);
    const common = freshCommon();
    const db = await databases.create();
    try {
      await watch(db.pool, CHAIN_ID, [{ address: D1 }]);
      const ingestor = await t.ingestor({
        common,
        pool: db.pool,
        chain: { ...chain, rpcUrls: [secondary.url] },
        options: { batchBlocks: 7 },
      });
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      await ingestor.stop();
      const facts = await canonicalFacts(db.pool, CHAIN_ID);
      expect(facts.filter((f) => f.kind === "erc20")).toHaveLength(20);
      const recovered = await common.metrics.registry.getSingleMetricAsString(
        "custody_indexer_recovered_logs_total",
      );
      // The 20 transfers to D1 and the token's mint: every Transfer came back by block hash.
      expect(recovered).toMatch(/} 21$/m);
    } finally {
      await db.pool.end();
    }
  });

  it("the indexer keeps going on a flaky primary and stores what a clean run stores", async () => {
    // Every request to the primary fails in turn with one of the faults, or succeeds.
    const cycle = ["http500", "none", "http429", "drop", "none", "hang"] as const;
    primary.setFault((n) => cycle[n % cycle.length]!);
    secondary.setFault((n) => (n % 4 === 0 ? "http500" : "none"));
    const common = freshCommon();
    const db = await databases.create();
    try {
      await watch(db.pool, CHAIN_ID, [{ address: D1 }]);
      const ingestor = await t.ingestor({
        common,
        pool: db.pool,
        adapterOptions: { timeoutMs: TIMEOUT_MS },
        options: { batchBlocks: 5 },
      });
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      await ingestor.stop();
      primary.setFault("none");
      secondary.setFault("none");
      expect(await expectCleanIndex(db.pool)).toHaveLength(40);
      // Every kind of fault was met on the way (counted in this test's own registry).
      const errors = await common.metrics.registry.getSingleMetricAsString(
        "custody_rpc_errors_total",
      );
      for (const kind of ["http_5xx", "rate_limited", "timeout", "network"])
        expect(errors).toContain(`kind="${kind}"`);
    } finally {
      await db.pool.end();
    }
  });
});

/**
 * An ingestor on `rpcUrls` indexes to the head with every endpoint truthful (so it has seen
 * eth_getBlockReceipts answered), then the primary starts lying (`lie`) and D2 receives a native
 * and a token deposit: the ingestor must reach the head again and store what a clean index stores.
 * With `blockByBlock` it syncs after each deposit's block (the realtime stage), else after both.
 */
async function ingestThroughLie(
  lie: () => void,
  config: Partial<ChainConfig> = {},
  blocksAfter = 0,
  blockByBlock = false,
) {
  const db = await databases.create();
  await watch(db.pool, CHAIN_ID, [{ address: D1 }, { address: D2 }]);
  const ingestor = await t.ingestor({
    common: freshCommon(),
    pool: db.pool,
    chain: { ...chain, ...config },
  });
  try {
    await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
    const toD2 = async () =>
      (await canonicalFacts(db.pool, CHAIN_ID)).filter((f) => f.to_address === D2.toLowerCase());
    const earlier = (await toD2()).length;
    lie();
    const liesBefore = primary.stats();
    await sendAndMine(t.rpc, { from, to: D2, value: 7n });
    // One block a pass: each is the next block on our tip (the realtime stage's fetch).
    if (blockByBlock) await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
    await sendAndMine(t.rpc, { from, to: token, data: call("TestToken", "transfer", [D2, 7n]) });
    if (blocksAfter > 0) await t.rpc("anvil_mine", [`0x${blocksAfter.toString(16)}`]);
    await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
    await ingestor.stop();
    const lied = liesSince(liesBefore);
    for (const method of LIED_ABOUT) primary.setMethodLie(method, null);
    await expectCleanIndex(db.pool, config);
    const d2 = await toD2();
    expect(d2).toHaveLength(earlier + 2);
    if (blocksAfter > 0)
      expect(d2.slice(-2).map((f) => f.status)).toEqual(["confirmed", "confirmed"]);
    // The lie was told (the test tested something).
    expect(lied.length).toBeGreaterThan(0);
  } finally {
    // Stopped before its pool is ended (it holds the chain's lease there).
    await ingestor.stop();
    await db.pool.end();
  }
}

describe("a node's refusal or partial answer is not evidence: the read moves on", () => {
  it("eth_getBlockReceipts answered with a JSON-RPC error: the next endpoint's receipts", async () => {
    await ingestThroughLie(() =>
      primary.setMethodLie("eth_getBlockReceipts", () => ({
        error: { code: -32603, message: "internal error" },
      })),
    );
  });

  it("eth_getBlockReceipts refused by the only endpoint: per-transaction receipts", async () => {
    await ingestThroughLie(
      () =>
        primary.setMethodLie("eth_getBlockReceipts", () => ({
          error: { code: -32603, message: "internal error" },
        })),
      { rpcUrls: [primary.url] },
    );
  });

  it("eth_getBlockReceipts leaving receipts out (fewer than the block's transactions)", async () => {
    await ingestThroughLie(() =>
      primary.setMethodLie("eth_getBlockReceipts", () => ({ result: [] })),
    );
  });

  it("receipts of another block at that height: refused (never stored), the read moves on", async () => {
    const sibling = `0x${"ab".repeat(32)}`;
    const ofSibling = (real: { result?: unknown }) => ({
      result: Array.isArray(real.result)
        ? real.result.map((r) => ({ ...(r as object), blockHash: sibling }))
        : real.result && { ...(real.result as object), blockHash: sibling },
    });
    await ingestThroughLie(() => {
      primary.setMethodLie("eth_getBlockReceipts", ofSibling);
      primary.setMethodLie("eth_getTransactionReceipt", ofSibling);
    });
  });

  it("a watched sender's receipt without effectiveGasPrice from the only endpoint: nothing stored, counted, stored once whole", async () => {
    const sender = t.accounts[1]! as Hex;
    const db = await databases.create();
    await watch(db.pool, CHAIN_ID, [{ address: D1 }, { address: D2 }, { address: sender }]);
    const common = freshCommon();
    const ingestor = await t.ingestor({
      common,
      pool: db.pool,
      chain: { ...chain, rpcUrls: [primary.url] },
    });
    const counted = () => stalls(common);
    try {
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      stripEffectiveGasPrice(primary);
      const paid = await sendAndMine(t.rpc, { from: sender, to: D2, value: 7n });
      const stored = async () =>
        (await canonicalFacts(db.pool, CHAIN_ID)).filter(
          (f) => f.tx_hash === paid.transactionHash.toLowerCase(),
        );
      // Not known yet: the range is refused, again and again, and counted each time.
      for (let pass = 1; pass <= 3; pass++) {
        await expect(ingestor.syncOnce()).rejects.toThrow(/effectiveGasPrice/);
        expect(await counted()).toBe(pass);
      }
      expect(await stored()).toEqual([]);
      for (const method of LIED_ABOUT) primary.setMethodLie(method, null);
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      expect((await stored()).map((f) => f.position).sort()).toEqual(["fee", "tx"]);
      await ingestor.stop();
      await expectCleanIndex(db.pool);
    } finally {
      await ingestor.stop();
      await db.pool.end();
    }
  });

  it("a watched sender's receipt without effectiveGasPrice from the first endpoint only: the next endpoint's, stored at once; the first counted", async () => {
    const sender = t.accounts[1]! as Hex;
    const db = await databases.create();
    await watch(db.pool, CHAIN_ID, [{ address: D1 }, { address: D2 }, { address: sender }]);
    const common = freshCommon();
    const ingestor = await t.ingestor({ common, pool: db.pool });
    try {
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      stripEffectiveGasPrice(primary);
      const liesBefore = primary.stats();
      const paid = await sendAndMine(t.rpc, { from: sender, to: D2, value: 7n });
      // One pass takes the block: the stripped answer was passed over, nothing waited for it.
      await ingestor.syncOnce();
      const stored = (await canonicalFacts(db.pool, CHAIN_ID)).filter(
        (f) => f.tx_hash === paid.transactionHash.toLowerCase(),
      );
      expect(stored.map((f) => f.position).sort()).toEqual(["fee", "tx"]);
      expect(liesSince(liesBefore).length).toBeGreaterThan(0);
      expect(await stalls(common)).toBe(0);
      const passedOver = (
        await common.metrics.registry.getSingleMetric("custody_rpc_incomplete_answers_total")?.get()
      )?.values.filter((v) => v.labels.field === "effectiveGasPrice");
      expect(passedOver?.map((v) => v.labels.endpoint)).toEqual([endpointLabel(primary.url)]);
      expect(passedOver?.[0]?.value).toBeGreaterThan(0);
      await ingestor.stop();
      for (const method of LIED_ABOUT) primary.setMethodLie(method, null);
      await expectCleanIndex(db.pool);
    } finally {
      await ingestor.stop();
      await db.pool.end();
    }
  });

  it("a deposit's receipt without status is not a failed deposit: refused while every endpoint sends it so, the next endpoint's taken", async () => {
    const db = await databases.create();
    await watch(db.pool, CHAIN_ID, [{ address: D1 }, { address: D2 }]);
    const common = freshCommon();
    const ingestor = await t.ingestor({ common, pool: db.pool });
    try {
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      stripReceiptField(primary, "status");
      stripReceiptField(secondary, "status");
      const liesBefore = primary.stats();
      const paid = await sendAndMine(t.rpc, { from, to: D2, value: 9n });
      const stored = async () =>
        (await canonicalFacts(db.pool, CHAIN_ID)).filter(
          (f) => f.tx_hash === paid.transactionHash.toLowerCase(),
        );
      // Not known yet: the block is refused, never stored without its deposit.
      for (let pass = 1; pass <= 2; pass++)
        await expect(ingestor.syncOnce()).rejects.toThrow(/status/);
      expect(liesSince(liesBefore).length).toBeGreaterThan(0);
      expect(await stored()).toEqual([]);
      // One endpoint sends it whole: taken at once, the other passed over and counted.
      for (const method of LIED_ABOUT) secondary.setMethodLie(method, null);
      await ingestor.syncOnce();
      expect((await stored()).map((f) => [f.position, f.to_address, f.amount])).toEqual([
        ["tx", D2.toLowerCase(), 9n],
      ]);
      const passedOver = (
        await common.metrics.registry.getSingleMetric("custody_rpc_incomplete_answers_total")?.get()
      )?.values.filter((v) => v.labels.field === "status");
      expect(passedOver?.map((v) => v.labels.endpoint)).toContain(endpointLabel(primary.url));
      await ingestor.stop();
      for (const method of LIED_ABOUT) primary.setMethodLie(method, null);
      await expectCleanIndex(db.pool);
    } finally {
      await ingestor.stop();
      await db.pool.end();
    }
  });

  it("eth_getLogs answered with a JSON-RPC error other than a range limit: the next endpoint's logs", async () => {
    await ingestThroughLie(() =>
      primary.setMethodLie("eth_getLogs", () => ({
        error: { code: -32000, message: "header not found" },
      })),
    );
  });

  /**
   * Some providers answer eth_getLogs for a block hash they do not know with no logs instead of an
   * error; the same node answers eth_getBlockByHash with null. Returns how many by-hash log reads
   * the primary answered so (the lie was told).
   */
  function unknownHashAnswersNoLogs(): () => number {
    let told = 0;
    primary.setMethodLie("eth_getLogs", (real, params) => {
      if ((params[0] as { blockHash?: string } | undefined)?.blockHash === undefined)
        return { result: real.result };
      told++;
      return { result: [] };
    });
    primary.setMethodLie("eth_getBlockByHash", () => ({ result: null }));
    return () => told;
  }

  it("eth_getLogs by block hash answered [] by a node that does not know the hash (realtime): the next endpoint's logs", async () => {
    let told = () => 0;
    await ingestThroughLie(
      () => {
        told = unknownHashAnswersNoLogs();
      },
      {},
      0,
      true,
    );
    expect(told()).toBeGreaterThan(0);
  });

  it("eth_getLogs by block hash answered [] by a node that does not know the hash (dropped-log recovery): the next endpoint's logs", async () => {
    let told = () => 0;
    await ingestThroughLie(() => {
      told = unknownHashAnswersNoLogs();
      primary.setDropRangeLogs(true);
    });
    expect(told()).toBeGreaterThan(0);
  });

  it("trace_block answered with a JSON-RPC error: the next endpoint's traces", async () => {
    await ingestThroughLie(
      () =>
        primary.setMethodLie("trace_block", () => ({
          error: { code: -32603, message: "internal error" },
        })),
      { traces: true, tracesMethod: "trace_block" },
    );
  });

  it("trace_block answered with another block's traces (a sibling at that height): the next endpoint's traces", async () => {
    const sibling = `0x${"cd".repeat(32)}`;
    await ingestThroughLie(
      () =>
        primary.setMethodLie("trace_block", (real) => ({
          result: Array.isArray(real.result)
            ? real.result.map((t) => ({ ...(t as object), blockHash: sibling }))
            : real.result,
        })),
      { traces: true, tracesMethod: "trace_block" },
    );
  });

  it("trace_block answered with no transaction traced (an empty sibling's []): the next endpoint's traces", async () => {
    await ingestThroughLie(() => primary.setMethodLie("trace_block", () => ({ result: [] })), {
      traces: true,
      tracesMethod: "trace_block",
    });
  });

  it("a block whose transactions the preferred endpoint leaves out (its header holds some): the next endpoint's block, block by block and in ranges", async () => {
    for (const blockByBlock of [true, false])
      await ingestThroughLie(() => withoutTransactions(primary), {}, 0, blockByBlock);
  });

  it("a block without its transactions from the only endpoint: refused (its native deposit never dropped), stored once whole", async () => {
    const db = await databases.create();
    await watch(db.pool, CHAIN_ID, [{ address: D1 }, { address: D2 }]);
    const common = freshCommon();
    const ingestor = await t.ingestor({
      common,
      pool: db.pool,
      chain: { ...chain, rpcUrls: [primary.url] },
    });
    try {
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      const tipBefore = await loadTip(db.pool, CHAIN_ID);
      withoutTransactions(primary);
      const liesBefore = primary.stats();
      const paid = await sendAndMine(t.rpc, { from, to: D2, value: 11n });
      const stored = async () =>
        (await canonicalFacts(db.pool, CHAIN_ID)).filter(
          (f) => f.tx_hash === paid.transactionHash.toLowerCase(),
        );
      // Not known yet: the block is refused, never stored without its deposit.
      for (let pass = 1; pass <= 2; pass++)
        await expect(ingestor.syncOnce()).rejects.toThrow(/transactions/);
      expect(liesSince(liesBefore).length).toBeGreaterThan(0);
      expect(await loadTip(db.pool, CHAIN_ID)).toEqual(tipBefore);
      expect(await stored()).toEqual([]);
      const passedOver = (
        await common.metrics.registry.getSingleMetric("custody_rpc_incomplete_answers_total")?.get()
      )?.values.filter((v) => v.labels.field === "transactions");
      expect(passedOver?.map((v) => v.labels.endpoint)).toContain(endpointLabel(primary.url));
      for (const method of LIED_ABOUT) primary.setMethodLie(method, null);
      await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
      expect((await stored()).map((f) => [f.position, f.to_address, f.amount])).toEqual([
        ["tx", D2.toLowerCase(), 11n],
      ]);
      await ingestor.stop();
      await expectCleanIndex(db.pool);
    } finally {
      await ingestor.stop();
      await db.pool.end();
    }
  });

  it("the finalized tag refused by the preferred endpoint: the next endpoint's tag confirms", async () => {
    await ingestThroughLie(
      () =>
        primary.setMethodLie("eth_getBlockByNumber", (real, params) =>
          params[0] === "finalized"
            ? { error: { code: -32000, message: "finalized block not found" } }
            : { result: real.result },
        ),
      { confirmations: { kind: "finalized" } },
      // anvil's finalized block is 64 blocks below its head.
      70,
    );
  });
});
