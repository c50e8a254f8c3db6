/**
 * Indexer backfill benchmark: a local anvil seeded with ERC-20 Transfer logs (a test token's
 * `spray` emits thousands per transaction), 100,000 watched addresses, a fresh Postgres database;
 * the ingestor backfills from block 0 to the head. Prints logs/s, facts/s, blocks/s, RPC calls.
 * The floor is measured in the same run, on the same data: fetch every block, log and call frame
 * over RPC (same batches and concurrency as the backfill), parse them into facts, COPY the rows into
 * chain.transfers of a second fresh database (same indexes), as three plain steps with nothing else
 * (no checkpoint, no confirmations, no reorg checks); `backfill vs floor` is the ratio. The floor
 * runs the steps one after another (as the issue measured it); the indexer overlaps fetching with
 * writing, so it is also compared with a pipelined floor: the same steps overlapped the same way.
 * Then it follows the head (anvil mining a block a second, each with one listed-token Transfer to a
 * watched address) and prints the RPC calls per block: polling, new heads over WS, and traces on.
 */
import type { Address, Hex } from "viem";
import {
  chainSchema,
  createEvmAdapter,
  type EvmAdapter,
  type RawReceipt,
} from "../chains/index.js";
import { createCommon } from "../foundation/common.js";
import { chainOnlyConfig, envSchema } from "../foundation/config.js";
import { withTransaction } from "../foundation/db.js";
import { figure, machineLine } from "../ops/bench/machine.js";
import { startAnvil } from "../ops/devstack/anvil.js";
import { createTestDatabase } from "../ops/testing/database.js";
import { createIngestor } from "./createIngestor.js";
import { extractFacts, type RangeData, txsNeedingReceipts } from "./extractFacts.js";
import { copyFacts } from "./store.js";
import { anvilRpc, call, deploy, sendTx, syncToHead } from "./testing/chain.js";
import { measureRealtime } from "./testing/realtime.js";

const LOGS_PER_TX = 2_000;
const TXS_PER_BLOCK = 2;
const BLOCKS = 60;
const WATCHED = 100_000;
// Recipients cycle over 150,000 addresses, the first 100,000 of which are watched: 2/3 of the
// logs are custody facts, 1/3 are filtered out in memory.
const RECIPIENTS = 150_000;
const BASE = 0x1000000000n;
const TOTAL_LOGS = LOGS_PER_TX * TXS_PER_BLOCK * BLOCKS;
const REALTIME_BLOCKS = 20;
const BATCH_BLOCKS = 10n;
const CONCURRENCY = 3;

/** Fetch (ranges of BATCH_BLOCKS, CONCURRENCY at a time), parse, COPY: the floor, step by step. */
async function measureFloor(
  adapter: EvmAdapter,
  head: bigint,
  tokens: Address[],
  watched: Set<string>,
): Promise<{
  fetch: number;
  parse: number;
  copy: number;
  total: number;
  pipelined: number;
  rows: number;
}> {
  const copyDb = await createTestDatabase({ poolSize: 2 });
  try {
    const t0 = performance.now();
    const ranges: { from: bigint; to: bigint }[] = [];
    for (let from = 0n; from <= head; from += BATCH_BLOCKS)
      ranges.push({ from, to: from + BATCH_BLOCKS - 1n < head ? from + BATCH_BLOCKS - 1n : head });
    const fetchOne = async (from: bigint, to: bigint): Promise<RangeData> => {
      const numbers: bigint[] = [];
      for (let n = from; n <= to; n++) numbers.push(n);
      const blocks = (await adapter.getBlocks(numbers)).map((b) => b!);
      const perBlock = blocks.map((b) => ({
        number: BigInt(b.number),
        hash: b.hash,
        txCount: b.transactions.length,
        txHashes: b.transactions.map((t) => t.hash),
      }));
      const wanted = txsNeedingReceipts(blocks, watched);
      const [logs, frames, receiptLists] = await Promise.all([
        adapter.getTransferLogs({ fromBlock: from, toBlock: to, tokens }),
        adapter.getCallFrames(perBlock),
        adapter.getBlockReceipts(
          perBlock
            .map((b) => ({ ...b, txHashes: b.txHashes.filter((h) => wanted.has(h)) }))
            .filter((b) => b.txHashes.length > 0),
        ),
      ]);
      const receipts = new Map<string, RawReceipt>();
      for (const r of receiptLists.flat()) receipts.set(r.transactionHash.toLowerCase(), r);
      return { blocks, receipts, logs, frames };
    };
    const fetched: RangeData[] = new Array(ranges.length);
    let next = 0;
    const worker = async () => {
      while (next < ranges.length) {
        const i = next++;
        fetched[i] = await fetchOne(ranges[i]!.from, ranges[i]!.to);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const t1 = performance.now();
    const facts = fetched.flatMap((data) => extractFacts(data, { watched, tokens }));
    const t2 = performance.now();
    await withTransaction(copyDb.pool, (c) =>
      copyFacts(
        c,
        31337,
        facts,
        facts.map(() => "confirmed"),
      ),
    );
    const t3 = performance.now();
    // Pipelined: the same three steps overlapped as the indexer overlaps them (CONCURRENCY ranges
    // fetched ahead, each parsed and COPYed in order, one transaction per range): still nothing
    // but fetch, parse and COPY, into a cleared table.
    await copyDb.pool.query("TRUNCATE chain.transfers");
    const p0 = performance.now();
    const inflight: Promise<RangeData>[] = [];
    let launched = 0;
    const launch = () => {
      while (inflight.length < CONCURRENCY && launched < ranges.length) {
        const data = fetchOne(ranges[launched]!.from, ranges[launched]!.to);
        data.catch(() => {});
        inflight.push(data);
        launched++;
      }
    };
    launch();
    let piped = 0;
    while (inflight.length > 0) {
      const data = await inflight.shift()!;
      launch();
      const rangeFacts = extractFacts(data, { watched, tokens });
      piped += rangeFacts.length;
      await withTransaction(copyDb.pool, (c) =>
        copyFacts(
          c,
          31337,
          rangeFacts,
          rangeFacts.map(() => "confirmed"),
        ),
      );
    }
    const p1 = performance.now();
    if (piped !== facts.length)
      throw new Error(`pipelined floor: ${piped} facts, not ${facts.length}`);
    return {
      fetch: (t1 - t0) / 1000,
      parse: (t2 - t1) / 1000,
      copy: (t3 - t2) / 1000,
      total: (t3 - t0) / 1000,
      pipelined: (p1 - p0) / 1000,
      rows: facts.length,
    };
  } finally {
    await copyDb.drop();
  }
}

console.log(
  `workload: backfill of ${BLOCKS} blocks holding ${TOTAL_LOGS} ERC-20 Transfer logs (${LOGS_PER_TX * TXS_PER_BLOCK} per block) of one listed token, ${WATCHED} watched addresses (${Math.round((WATCHED / RECIPIENTS) * 100)}% of logs are facts), traces on, batches of 10 blocks, 3 ranges fetched ahead, anvil + Postgres on this machine`,
);
console.log(
  `then: following the head for ${REALTIME_BLOCKS} blocks (1 s interval mining, one Transfer of the listed token to a watched address per block), default poll interval, calls counted from the first block stored`,
);
console.log(machineLine());

const anvil = await startAnvil({ chainId: 31337, port: 0, args: ["--gas-limit", "100000000"] });
const db = await createTestDatabase({ poolSize: 8 });
try {
  const rpc = anvilRpc(anvil.rpcUrl);
  const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
  const token = await deploy(rpc, from, "TestToken", [10n ** 24n]);

  const seedStart = performance.now();
  await rpc("evm_setAutomine", [false]);
  let start = 0n;
  for (let b = 0; b < BLOCKS; b++) {
    for (let t = 0; t < TXS_PER_BLOCK; t++) {
      await sendTx(rpc, {
        from,
        to: token,
        data: call("TestToken", "spray", [BASE, start, BigInt(LOGS_PER_TX), BigInt(RECIPIENTS)]),
        gas: 40_000_000n,
      });
      start += BigInt(LOGS_PER_TX);
    }
    await rpc("evm_mine");
  }
  await rpc("evm_setAutomine", [true]);
  const addresses = Array.from(
    { length: WATCHED },
    (_, i) => `0x${(BASE + BigInt(i)).toString(16).padStart(40, "0")}`,
  );
  await db.pool.query(
    `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner)
     SELECT 31337, a, 'deposit', 'bench' FROM unnest($1::text[]) AS a`,
    [addresses],
  );
  const seedSeconds = (performance.now() - seedStart) / 1000;

  const chain = chainSchema.parse({
    key: "bench",
    chainId: 31337,
    name: "bench",
    rpcUrls: [anvil.rpcUrl],
    confirmations: { kind: "blocks", blocks: 3 },
    reorgWindow: 16,
    blockTimeMs: 1000,
    feeModel: "eip1559",
    traces: true,
    tokens: [{ address: token, symbol: "TT", decimals: 18 }],
  });
  const env = envSchema.parse({ DATABASE_URL: db.url, LOG_LEVEL: "silent" });
  const config = chainOnlyConfig(env, chain, "(bench)");
  const common = createCommon(config);
  const adapter = createEvmAdapter(chain, { common }, { timeoutMs: 60_000 });
  const ingestor = await createIngestor({
    common,
    pool: db.pool,
    adapter,
    options: { batchBlocks: Number(BATCH_BLOCKS), concurrency: CONCURRENCY },
  });
  const head = BigInt(await rpc<Hex>("eth_blockNumber"));
  const t0 = performance.now();
  await syncToHead(ingestor, db.pool, rpc, 31337);
  const seconds = (performance.now() - t0) / 1000;
  await ingestor.stop();

  const { rows } = await db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM chain.transfers WHERE kind = 'erc20'",
  );
  const facts = rows[0]!.n;
  const logs = TOTAL_LOGS + 1; // + the token's mint
  const calls = adapter.rpc.callCount();
  if (facts < Math.floor((TOTAL_LOGS * WATCHED) / RECIPIENTS) - LOGS_PER_TX)
    throw new Error(`only ${facts} facts stored`);
  figure("seeding (not measured below)", seedSeconds, "s", 1);
  figure("backfill time", seconds, "s", 2);
  figure("blocks indexed", Number(head) + 1, "blocks");
  figure("Transfer logs scanned", logs / seconds, "logs/s");
  figure("facts stored", facts / seconds, "facts/s");
  figure("facts stored total", facts, "rows");
  figure("blocks", (Number(head) + 1) / seconds, "blocks/s", 1);
  figure("RPC calls", calls, "calls");
  figure("RPC calls per block", calls / (Number(head) + 1), "calls/block", 2);

  const floorAdapter = createEvmAdapter(chain, { common }, { timeoutMs: 60_000 });
  const floor = await measureFloor(floorAdapter, head, [token], new Set(addresses));
  if (floor.rows !== facts)
    throw new Error(`floor parsed ${floor.rows} facts, backfill stored ${facts}`);
  figure("floor fetch (blocks, logs, traces over RPC)", floor.fetch, "s", 2);
  figure("floor parse", floor.parse, "s", 2);
  figure("floor COPY into chain.transfers", floor.copy, "s", 2);
  figure("floor", floor.total, "s", 2);
  figure("backfill vs floor", seconds / floor.total, "x", 2);
  figure("floor pipelined (the same steps overlapped like the indexer)", floor.pipelined, "s", 2);
  figure("backfill vs pipelined floor", seconds / floor.pipelined, "x", 2);

  const realtime = (over: Partial<typeof chain>) =>
    measureRealtime({
      common,
      pool: db.pool,
      chain: { ...chain, blockTimeMs: 1000, ...over },
      from,
      token,
      to: addresses[0] as Hex,
      blocks: REALTIME_BLOCKS,
    });
  figure("realtime", (await realtime({ traces: false })).callsPerBlock, "rpc calls/block", 2);
  figure(
    "realtime over WS newHeads",
    (await realtime({ traces: false, wsUrl: anvil.rpcUrl.replace("http://", "ws://") }))
      .callsPerBlock,
    "rpc calls/block",
    2,
  );
  figure(
    "realtime with traces on (+ trace_block per block)",
    (await realtime({ traces: true })).callsPerBlock,
    "rpc calls/block",
    2,
  );
} finally {
  await db.drop();
  await anvil.stop();
}
