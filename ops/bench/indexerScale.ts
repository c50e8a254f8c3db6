/**
 * Two indexer figures for the scale benchmark (ops/bench/scale.ts prints them): how long an
 * allocation burst stalls a running indexer, and how far behind it falls following a fast chain.
 * Each starts its own anvil and database, runs the real ingestor loop (`start`, not `syncOnce`)
 * with 100,000 watched addresses, and cleans up. Anvil mines on our clock (automine off, one
 * `evm_mine` every block time, one listed-token Transfer to a watched address in each block), so
 * block times below anvil's 1 s interval mining are possible.
 *
 * Lag is measured as a chain's operator sees it: the chain's head is the block the miner has
 * just mined (known the instant `evm_mine` returns, no RPC round trip in between), the stored
 * tip is what the ingestor has committed, and both are sampled every 10 ms. A miner that falls
 * behind its schedule (a loaded machine) mines the late block at once and keeps its cadence from
 * there, rather than catching up with a burst of blocks no real chain produces; `blocks` says how
 * many were mined. Allocations run in another thread with their own pool: the API allocates in
 * another process, and an indexer sharing its event loop or its connections with the burst would
 * measure the rig, not itself.
 */
import { Worker } from "node:worker_threads";
import type { Hex } from "viem";
import { type ChainConfig, chainSchema, createEvmAdapter } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { chainOnlyConfig, envSchema } from "../../foundation/config.js";
import { createIngestor, type Ingestor } from "../../indexers/index.js";
import type { AllocationBurst } from "../../indexers/testing/allocationBurst.js";
import { anvilRpc, call, deploy, type Rpc, syncToHead } from "../../indexers/testing/chain.js";
import { startAnvil } from "../devstack/anvil.js";
import { createTestDatabase, type TestDatabase } from "../testing/database.js";

const CHAIN_ID = 31337;
const BASE = 0x5ca1e00000n;
const addressAt = (i: number) => `0x${(BASE + BigInt(i)).toString(16).padStart(40, "0")}`;

type Rig = {
  rpc: Rpc;
  db: TestDatabase;
  ingestor: Ingestor;
  /** Mine one block (with one watched Transfer) every blockTimeMs until stopped. */
  mine: () => { stop: () => Promise<number> };
  /**
   * Every 10 ms: lag (mined head - stored tip); the times (performance.now) at which the stored
   * tip moved; and for each block stored, how long after it was mined (ms).
   */
  watch: () => { stop: () => { moves: number[]; lags: number[]; delays: number[] } };
  cleanup: () => Promise<void>;
};

async function rig(watched: number, blockTimeMs: number): Promise<Rig> {
  const anvil = await startAnvil({ chainId: CHAIN_ID, port: 0 });
  const db = await createTestDatabase({ poolSize: 8 });
  let ingestor: Ingestor | undefined;
  try {
    const rpc = anvilRpc(anvil.rpcUrl);
    const from = (await rpc<Hex[]>("eth_accounts"))[0]!;
    const token = await deploy(rpc, from, "TestToken", [10n ** 24n]);
    await db.pool.query(
      // Allocated over the past day, not all at once just now.
      `INSERT INTO chain.custody_addresses (chain_id, address, kind, owner, created_at)
       SELECT $1, a, 'deposit', 'scale', now() - interval '1 day' + o * interval '1 second'
         FROM unnest($2::text[]) WITH ORDINALITY AS x(a, o)`,
      [CHAIN_ID, Array.from({ length: watched }, (_, i) => addressAt(i))],
    );
    const chain: ChainConfig = chainSchema.parse({
      key: "scale",
      chainId: CHAIN_ID,
      name: "scale",
      rpcUrls: [anvil.rpcUrl],
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 16,
      blockTimeMs,
      feeModel: "eip1559",
      tokens: [{ address: token, symbol: "TT", decimals: 18 }],
    });
    const config = chainOnlyConfig(
      envSchema.parse({ DATABASE_URL: db.url, LOG_LEVEL: "silent" }),
      chain,
      "(scale)",
    );
    const common = createCommon(config);
    const adapter = createEvmAdapter(chain, { common });
    ingestor = await createIngestor({ common, pool: db.pool, adapter });
    const ing = ingestor;
    await syncToHead(ing, db.pool, rpc, CHAIN_ID);
    await rpc("evm_setAutomine", [false]);
    let head = BigInt(await rpc<Hex>("eth_blockNumber"));
    const minedAt = new Map<bigint, number>();
    ing.start();
    let sent = 0;
    return {
      rpc,
      db,
      ingestor: ing,
      mine() {
        let stopped = false;
        let mined = 0;
        const run = (async () => {
          let next = performance.now();
          while (!stopped) {
            await rpc("eth_sendTransaction", [
              {
                from,
                to: token,
                data: call("TestToken", "transfer", [addressAt(sent++ % watched), 1n]),
                gas: "0x30000",
              },
            ]);
            await rpc("evm_mine");
            const now = performance.now();
            head++;
            minedAt.set(head, now);
            mined++;
            // Late (the machine is loaded): keep the cadence from now, no catch-up burst.
            next = Math.max(next + blockTimeMs, now);
            if (next > now) await sleep(next - now);
          }
        })();
        return {
          async stop() {
            stopped = true;
            await run;
            return mined;
          },
        };
      },
      watch() {
        const moves: number[] = [];
        const lags: number[] = [];
        const delays: number[] = [];
        let last = ing.status().indexed ?? 0n;
        const sampler = setInterval(() => {
          const indexed = ing.status().indexed ?? 0n;
          if (indexed !== last) {
            const now = performance.now();
            moves.push(now);
            for (let b = last + 1n; b <= indexed; b++) {
              const at = minedAt.get(b);
              if (at !== undefined) delays.push(now - at);
            }
            last = indexed;
          }
          lags.push(Math.max(0, Number(head - indexed)));
        }, 10);
        return {
          stop() {
            clearInterval(sampler);
            return { moves, lags, delays };
          },
        };
      },
      async cleanup() {
        await ing.stop();
        await db.drop();
        await anvil.stop();
      },
    };
  } catch (err) {
    await ingestor?.stop().catch(() => {});
    await db.drop().catch(() => {});
    await anvil.stop().catch(() => {});
    throw err;
  }
}

/** Runs indexers/testing/allocationBurst.ts in a worker thread; resolves when it is done. */
function allocateInAnotherThread(burst: AllocationBurst): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(
      new URL("../../indexers/testing/allocationBurst.ts", import.meta.url),
      {
        workerData: burst,
      },
    );
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error("allocation burst: no answer within 10 minutes"));
    }, 600_000);
    worker.once("message", (m: { ms?: number; error?: string }) => {
      clearTimeout(timer);
      void worker.terminate();
      if (m.error !== undefined) reject(new Error(`allocation burst failed: ${m.error}`));
      else resolve(m.ms!);
    });
    worker.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * While the indexer follows a chain of `blockTimeMs` blocks, `addresses` allocations commit (one
 * transaction each, 8 at a time: insert + notification, as allocation does; `notify: "chain"` is
 * the chain-only notification older callers send). stallMs: the longest gap between two moves of
 * the stored tip from the burst's start until 2 s after its end, minus one block time (0 when
 * never late). maxLagBlocks over the same window; maxStoreDelayMs: the longest any block waited
 * from being mined to being stored in that window (poll wait included).
 */
export async function measureAllocationStall(
  opts: {
    addresses?: number;
    watched?: number;
    blockTimeMs?: number;
    notify?: "address" | "chain";
  } = {},
): Promise<{
  stallMs: number;
  blockTimeMs: number;
  maxLagBlocks: number;
  allocateMs: number;
  maxStoreDelayMs: number;
}> {
  const addresses = opts.addresses ?? 1000;
  const watched = opts.watched ?? 100_000;
  const blockTimeMs = opts.blockTimeMs ?? 250;
  const r = await rig(watched, blockTimeMs);
  try {
    const mining = r.mine();
    await sleep(2000); // steady state first
    const seen = r.watch();
    const t0 = performance.now();
    const allocateMs = await allocateInAnotherThread({
      url: r.db.url,
      chainId: CHAIN_ID,
      addresses: Array.from({ length: addresses }, (_, i) => addressAt(watched + i)),
      concurrency: 8,
      notify: opts.notify ?? "address",
    });
    await sleep(2000);
    const { moves, lags, delays } = seen.stop();
    await mining.stop();
    if (moves.length < 4) throw new Error(`the indexer stored only ${moves.length} blocks`);
    if (r.ingestor.watched.size() !== watched + addresses)
      throw new Error(`watched set holds ${r.ingestor.watched.size()}, not ${watched + addresses}`);
    let gap = moves[0]! - t0;
    for (let i = 1; i < moves.length; i++) gap = Math.max(gap, moves[i]! - moves[i - 1]!);
    return {
      stallMs: Math.max(0, gap - blockTimeMs),
      blockTimeMs,
      maxLagBlocks: Math.max(...lags),
      allocateMs,
      maxStoreDelayMs: Math.max(0, ...delays),
    };
  } finally {
    await r.cleanup();
  }
}

/**
 * Follow a chain at `blocksPerSecond` for `seconds`: lag (mined head - stored tip, in blocks)
 * sampled every 10 ms, and each block's store delay (mined to stored, ms).
 */
export async function measureFollow(
  opts: { blocksPerSecond?: number; seconds?: number; watched?: number } = {},
): Promise<{
  maxLagBlocks: number;
  p99LagBlocks: number;
  p50LagBlocks: number;
  blocks: number;
  seconds: number;
  storeDelayMs: { p50: number; p99: number; max: number };
}> {
  const bps = opts.blocksPerSecond ?? 4;
  const seconds = opts.seconds ?? 60;
  const r = await rig(opts.watched ?? 100_000, Math.round(1000 / bps));
  try {
    const mining = r.mine();
    await sleep(1000);
    const seen = r.watch();
    await sleep(seconds * 1000);
    const { lags, delays } = seen.stop();
    const blocks = await mining.stop();
    return {
      maxLagBlocks: Math.max(...lags),
      p99LagBlocks: percentile(lags, 99),
      p50LagBlocks: percentile(lags, 50),
      blocks,
      seconds,
      storeDelayMs: {
        p50: percentile(delays, 50),
        p99: percentile(delays, 99),
        max: Math.max(0, ...delays),
      },
    };
  } finally {
    await r.cleanup();
  }
}
