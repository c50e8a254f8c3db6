/**
 * Traces as a per-chain config switch (issue 12 item 5), on a real anvil: a native deposit sent
 * through a contract (an EOA pays Forwarder, which pays the deposit address in a nested call) is
 * an `internal` fact when the chain has `traces: true` — with either trace method, as chosen by
 * `tracesMethod` — and is not seen at all with `traces: false` (reconciliation's
 * unattributed_inflow is what finds it there).
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChainConfig } from "../chains/index.js";
import { createCommon } from "../foundation/common.js";
import { createLogger } from "../foundation/logger.js";
import { createMetrics } from "../foundation/metrics.js";
import { createTestDatabase } from "../ops/testing/database.js";
import { call, deploy, freshAddress, sendAndMine, syncToHead, watch } from "./testing/chain.js";
import { type IndexerTest, startIndexerTest } from "./testing/indexerTest.js";

const CHAIN_ID = 31337;
const DEPOSIT = freshAddress(201);
const AMOUNT = 123_456_789n;

let t: IndexerTest;
let forwarder: Hex;
let depositTx: Hex;

beforeAll(async () => {
  t = await startIndexerTest();
  const from = t.from;
  forwarder = await deploy(t.rpc, from, "Forwarder");
  const r = await sendAndMine(t.rpc, {
    from,
    to: forwarder,
    value: AMOUNT,
    data: call("Forwarder", "forward", [DEPOSIT]),
  });
  expect(r.status).toBe("0x1");
  depositTx = r.transactionHash;
  // The deposit address really received the value (so "not seen" below is the indexer's blindness).
  expect(BigInt(await t.rpc<Hex>("eth_getBalance", [DEPOSIT, "latest"]))).toBe(AMOUNT);
});

afterAll(async () => {
  await t?.stop();
});

/** Index the chain from block 0 into a fresh database with `overrides`; facts to DEPOSIT + RPC methods used. */
async function indexWith(overrides: Partial<ChainConfig>) {
  const db = await createTestDatabase();
  const metrics = createMetrics({ defaults: false });
  const common = createCommon(t.ctx.config, { logger: createLogger("silent"), metrics });
  try {
    await watch(db.pool, CHAIN_ID, [{ address: DEPOSIT, owner: "carol" }]);
    const ingestor = await t.ingestor({
      common,
      pool: db.pool,
      chain: { ...t.ctx.config.chains[0]!, ...overrides },
    });
    await syncToHead(ingestor, db.pool, t.rpc, CHAIN_ID);
    await ingestor.stop();
    const { rows } = await db.pool.query(
      `SELECT kind, position, tx_hash, from_address, to_address, amount
         FROM chain.transfers WHERE chain_id = $1 AND to_address = $2`,
      [CHAIN_ID, DEPOSIT],
    );
    const requests = await metrics.registry.getSingleMetric("custody_rpc_requests_total")?.get();
    const methods = new Set(
      (requests?.values ?? []).filter((v) => v.value > 0).map((v) => String(v.labels.method)),
    );
    return { facts: rows, methods };
  } finally {
    await common.shutdown.kill("test done").catch(() => {});
    await db.drop();
  }
}

const internalFact = () => ({
  kind: "internal",
  position: "trace:0",
  tx_hash: depositTx.toLowerCase(),
  from_address: forwarder.toLowerCase(),
  to_address: DEPOSIT,
  amount: AMOUNT,
});

describe("traces switch", () => {
  it("traces on, tracesMethod trace_block: the forwarded deposit is an internal fact", async () => {
    const { facts, methods } = await indexWith({ traces: true, tracesMethod: "trace_block" });
    expect(facts).toEqual([internalFact()]);
    expect(methods.has("trace_block")).toBe(true);
    expect(methods.has("debug_traceBlockByHash")).toBe(false);
  });

  // callTracer answers name no block: the block is asked for by its hash, never by its number (an
  // endpoint on a sibling block at that height would answer for its own block).
  it.each([
    "debug_traceBlockByHash",
    "debug_traceBlockByNumber", // earlier configs' name: the same method
  ] as const)(
    "traces on, tracesMethod %s (callTracer, asked by hash): the same fact",
    async (tracesMethod) => {
      const { facts, methods } = await indexWith({ traces: true, tracesMethod });
      expect(facts).toEqual([internalFact()]);
      expect(methods.has("debug_traceBlockByHash")).toBe(true);
      expect(methods.has("debug_traceBlockByNumber")).toBe(false);
      expect(methods.has("trace_block")).toBe(false);
    },
  );

  it("traces off: no trace call and the forwarded deposit is not seen", async () => {
    const { facts, methods } = await indexWith({ traces: false });
    expect(facts).toEqual([]);
    expect(methods.has("trace_block") || methods.has("debug_traceBlockByHash")).toBe(false);
    // It did index the chain (the block with the deposit tx is stored).
    expect(methods.size).toBeGreaterThan(0);
  });
});
