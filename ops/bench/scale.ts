/**
 * `npm run bench -- scale`: production volumes (issue 15). Seeds (or reuses) 10M chain facts and
 * 10M ledger transfers over 6 chains, 1M customers and 100k deposit addresses per chain
 * (scaleSeed.ts), then measures the periodic passes at that size and prints one figure per line.
 * A figure whose measurement does not exist yet is printed as `not measured: <label> (reason)`.
 * SCALE_ONLY=name,… runs only the named measurements (MEASUREMENTS below; `seed` alone: none).
 *
 * The full reconciliation runs in a child process of its own, so its peak RSS is its own.
 */

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import {
  adapterPerChain,
  type ChainConfig,
  chainSchema,
  createEvmAdapter,
} from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { type Config, envSchema, makeFileConfigSchema, repoRoot } from "../../foundation/config.js";
import { createPool, type Pool } from "../../foundation/db.js";
import { createLogger } from "../../foundation/logger.js";
import { createMetrics } from "../../foundation/metrics.js";
import { anvilRpc } from "../../indexers/testing/chain.js";
import { createLedger } from "../../ledger/createLedger.js";
import { measureCreditBlock } from "../../ledger/crediting.scale.js";
import { createReconciler } from "../../ledger/recon/reconcile.js";
import { deployMulticall3 } from "../../ledger/recon/testing/multicall3.js";
import { transferId } from "../../ledger/transferId.js";
import type { NewTransfer } from "../../ledger/types.js";
import { measureSweepPlanning } from "../../signer/sweeps/planning.scale.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { startAnvil } from "../devstack/anvil.js";
import { tsNodeArgs } from "../testing/process.js";
import { measureAllocationStall, measureFollow } from "./indexerScale.js";
import { busyness, figure, machineLine } from "./machine.js";
import { measureReconFloor } from "./reconFloor.js";
import {
  depositAddress,
  ensureSeed,
  ownerOf,
  resetToSeed,
  SCALE_WORKLOAD,
  type ScaleWorkload,
  SENDER,
  scaleDatabaseUrl,
  txHashOf,
  vacuumDeadRows,
  workloadKey,
  ZERO,
} from "./scaleSeed.js";

const W = SCALE_WORKLOAD;
/** The median of the figures (of an even number, the upper middle one). */
const middle = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const NEW_BLOCK = 10_000;

/** The measurements by name, in the order they run; SCALE_ONLY picks some of them. */
const MEASUREMENTS = [
  "crediting",
  "sweep-planning",
  "recon-full",
  "recon-incremental",
  "indexer-stall",
  "indexer-follow",
] as const;
type MeasurementName = (typeof MEASUREMENTS)[number];

/**
 * SCALE_ONLY=crediting,recon-incremental: only these measurements (the seed is made or reused as
 * always); SCALE_ONLY=seed: none. Unset: all of them.
 */
function wantedMeasurements(value: string | undefined): Set<MeasurementName> {
  if (value === undefined || value.trim() === "") return new Set(MEASUREMENTS);
  const names = value
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
  const unknown = names.filter(
    (x) => x !== "seed" && !(MEASUREMENTS as readonly string[]).includes(x),
  );
  if (unknown.length > 0)
    throw new Error(
      `SCALE_ONLY: unknown measurement(s) ${unknown.join(", ")}; known: seed, ${MEASUREMENTS.join(", ")}`,
    );
  return new Set(names.filter((x): x is MeasurementName => x !== "seed"));
}
const ONLY = wantedMeasurements(process.env.SCALE_ONLY);
const fmt = (n: number) => n.toLocaleString("en");

/**
 * Each seeded chain's node: an anvil of its own, started with the chain's id (the RPC client asks
 * every endpoint its `eth_chainId` before a read and sets aside one of another chain), with
 * Multicall3 deployed there.
 */
type ScaleNode = { chainId: number; rpcUrl: string; multicall3: string };

function chainConfigs(nodes: readonly ScaleNode[]): ChainConfig[] {
  return scaleFile(nodes).chains;
}

function scaleFile(nodes: readonly ScaleNode[]) {
  return makeFileConfigSchema(chainSchema).parse({
    chains: nodes.map(({ chainId, rpcUrl, multicall3 }) => ({
      key: `scale-${chainId}`,
      chainId,
      name: `scale chain ${chainId}`,
      rpcUrls: [rpcUrl],
      confirmations: { kind: "blocks", blocks: 0 },
      reorgWindow: 8,
      blockTimeMs: 250,
      feeModel: "eip1559",
      recon: { batchSize: 250, requestsPerSecond: 1_000, multicall3 },
    })),
  });
}

function scaleCommon(nodes: readonly ScaleNode[]) {
  const file = scaleFile(nodes);
  const env = envSchema.parse({
    DATABASE_URL: scaleDatabaseUrl(),
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "silent",
  });
  const config: Config = Object.freeze({
    env,
    chains: file.chains,
    hotWallets: [],
    policies: file.policies,
    webhooks: [],
    webhookSecrets: {},
    configPath: "(scale bench)",
  });
  return createCommon(config, {
    logger: createLogger(env.LOG_LEVEL),
    metrics: createMetrics({ defaults: false }),
  });
}

/** Child: full reconciliation of every chain, one after another; prints one JSON line. */
async function fullReconChild(nodes: readonly ScaleNode[]) {
  const chains = chainConfigs(nodes);
  const common = scaleCommon(nodes);
  const pool = createPool(scaleDatabaseUrl(), { max: 4, applicationName: "scale-bench-full" });
  try {
    // Anvil on this shared machine can take longer than the default 10 s to answer a call.
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common,
      pool,
      chains: adapterPerChain(common, (chain) =>
        createEvmAdapter(chain, { common }, { timeoutMs: 120_000 }),
      ),
    });
    let facts = 0;
    let entries = 0;
    let breaks = 0;
    const perChainMs: number[] = [];
    const t0 = performance.now();
    for (const chain of chains) {
      const t = performance.now();
      const run = await reconciler.run({ chain, full: true });
      perChainMs.push(performance.now() - t);
      facts += run.factsExamined;
      entries += run.entriesExamined;
      breaks += run.breaks.length;
    }
    const ms = performance.now() - t0;
    const maxRssKb = process.resourceUsage().maxRSS;
    console.log(JSON.stringify({ ms, maxRssKb, facts, entries, breaks, perChainMs }));
  } finally {
    await pool.end();
    await common.shutdown.kill("done");
  }
}

/**
 * Our stored canonical block at `block` made the node's (its hash and parent hash, as the indexer
 * stores what it follows): a reconciliation run reads the balances at that hash (EIP-1898), which
 * a seeded hash is not, so the node would refuse the read ("Resource not found"). resetToSeed
 * puts the seeded tip back.
 */
async function storeNodeBlock(pool: Pool, node: ScaleNode, block: number): Promise<string> {
  const result = await anvilRpc(node.rpcUrl)<{
    hash: string;
    parentHash: string;
    timestamp: string;
  } | null>("eth_getBlockByNumber", [`0x${block.toString(16)}`, false]);
  if (!result) throw new Error(`chain ${node.chainId}: the node has no block ${block}`);
  await pool.query("DELETE FROM chain.blocks WHERE chain_id = $1 AND number = $2", [
    node.chainId,
    block,
  ]);
  await pool.query(
    `INSERT INTO chain.blocks (chain_id, number, hash, parent_hash, timestamp)
     VALUES ($1, $2, $3, $4, to_timestamp($5))`,
    [node.chainId, block, result.hash, result.parentHash, Number(BigInt(result.timestamp))],
  );
  return result.hash;
}

type Measure = { name: MeasurementName; label: string; run: () => Promise<void> };

/** The indexer measurements (./indexerScale.ts): an allocation burst's stall; following a fast chain. */
function indexerMeasures(): Measure[] {
  const stallLabel = "allocating 1,000 addresses while the indexer runs (indexer stall)";
  const followLabel = "following a chain at 4 blocks/s for 60 s (lag)";
  return [
    {
      name: "indexer-stall",
      label: stallLabel,
      run: async () => {
        const r = await measureAllocationStall({
          addresses: 1_000,
          watched: 100_000,
          blockTimeMs: 250,
        });
        figure(`${stallLabel}, block time ${r.blockTimeMs} ms`, r.stallMs, "ms");
        figure("allocation burst: max indexer lag", r.maxLagBlocks, "blocks");
        figure("allocation burst: 1,000 allocations took", r.allocateMs, "ms");
        if (r.maxStoreDelayMs !== undefined)
          figure(
            "allocation burst: max delay from a block's mining to its store",
            r.maxStoreDelayMs,
            "ms",
          );
      },
    },
    {
      name: "indexer-follow",
      label: followLabel,
      run: async () => {
        const r = await measureFollow({ blocksPerSecond: 4, seconds: 60, watched: 100_000 });
        figure(`${followLabel}, max`, r.maxLagBlocks, "blocks");
        figure(`${followLabel}, p99`, r.p99LagBlocks, "blocks");
        if (r.p50LagBlocks !== undefined) figure(`${followLabel}, p50`, r.p50LagBlocks, "blocks");
        console.log(`following: ${fmt(r.blocks)} blocks in ${r.seconds.toFixed(0)} s`);
        if (r.storeDelayMs)
          figure(
            "following: delay from a block's mining to its store, p50 / p99 / max",
            r.storeDelayMs.p50,
            `ms / ${r.storeDelayMs.p99.toFixed(0)} ms / ${r.storeDelayMs.max.toFixed(0)} ms`,
          );
      },
    },
  ];
}

const firstLine = (error: unknown) => String((error as Error)?.message ?? error).split("\n")[0];

function notMeasured(label: string, reason: string) {
  console.log(`not measured: ${label} (${reason})`);
}

async function main() {
  const total = W.factsPerChain * W.chains.length;
  console.log(
    `workload: ${fmt(total)} chain facts and ${fmt(total)} ledger transfers over ${W.chains.length} chains, ${fmt(W.customers)} customers, ${fmt(W.depositAddressesPerChain)} deposit (watched) addresses per chain, blocks of ${fmt(W.factsPerBlock)} facts; seeded inside Postgres (INSERT … SELECT generate_series) into database ${scaleDatabaseUrl().split("/").pop()} (${workloadKey(W)})`,
  );
  console.log(machineLine());
  if (ONLY.size < MEASUREMENTS.length)
    console.log(
      `measurements: only ${ONLY.size > 0 ? [...ONLY].join(", ") : "none (seed)"} (SCALE_ONLY)`,
    );
  const seeded = await ensureSeed(W, (line) => console.log(line));
  if (seeded.seededMs === null)
    console.log("seed: reused (marker bench.seeds matches the workload)");
  else figure("seeding (rows, keys and indexes, VACUUM ANALYZE)", seeded.seededMs / 1000, "s");
  const info = seeded.info;
  await resetToSeed(info, W);
  // Dead rows earlier runs' resets left (this server runs without autovacuum), before measuring.
  if (seeded.seededMs === null) await vacuumDeadRows((line) => console.log(line));

  const needsAnvil = ["crediting", "sweep-planning", "recon-full", "recon-incremental"].some((x) =>
    ONLY.has(x as MeasurementName),
  );
  const anvils = needsAnvil
    ? await Promise.all(W.chains.map((chainId) => startAnvil({ chainId, port: 0 })))
    : null;
  if (anvils)
    try {
      const nodes: ScaleNode[] = [];
      for (const [i, anvil] of anvils.entries()) {
        const multicall3 = await deployMulticall3(anvil.rpcUrl);
        await anvilRpc(anvil.rpcUrl)("anvil_mine", [`0x${(info.tipBlock + 20).toString(16)}`]);
        nodes.push({ chainId: W.chains[i]!, rpcUrl: anvil.rpcUrl, multicall3 });
      }
      const chains = chainConfigs(nodes);

      // Crediting and sweep planning (H15c's measurements) on the first chain.
      if (ONLY.has("crediting") || ONLY.has("sweep-planning")) {
        const common = scaleCommon(nodes);
        const pool = createPool(scaleDatabaseUrl(), { max: 8, applicationName: "scale-bench" });
        try {
          const chainId = chains[0]!.chainId;
          if (ONLY.has("crediting"))
            try {
              const c = await measureCreditBlock({
                common,
                pool,
                chainId,
                deposits: 1_000,
                runs: 5,
              });
              if (c.credited.some((n) => n !== c.deposits))
                throw new Error(`credited ${c.credited.join(", ")} of ${c.deposits} per run`);
              console.log(
                `crediting: ${fmt(c.facts)} confirmed facts on the chain; runs ${c.runsMs.map((x) => x.toFixed(0)).join(", ")} ms, of them waiting for Postgres ${c.postgresMs.map((x) => x.toFixed(0)).join(", ")} ms; the ledger's own write of 1,000 transfers ${c.ledgerWriteMs.toFixed(0)} ms; periodic pass with nothing new ${c.idleMs.toFixed(0)} ms`,
              );
              figure("crediting a new block of 1,000 deposits (median of 5)", c.ms, "ms");
              figure(
                "crediting a new block: its statements' time in Postgres (median of 5)",
                c.postgresMedianMs,
                "ms",
              );
              console.log(
                `crediting floor: each block's rows (transfers, balances, credits, events) written again by one statement, no reads or checks, right after its run: ${c.floorMs.map((x) => x.toFixed(0)).join(", ")} ms`,
              );
              figure(
                "crediting floor: a block's rows written alone (median of 5)",
                c.floorMedianMs,
                "ms",
              );
              figure("crediting vs floor (median of 5 pairs)", c.vsFloor, "x", 2);
            } catch (error) {
              notMeasured("crediting a new block of 1,000 deposits", `failed: ${firstLine(error)}`);
            }
          if (ONLY.has("sweep-planning"))
            try {
              const p = await measureSweepPlanning({
                pool,
                chainId,
                pending: 5_000,
                batchSize: 50,
                runs: 5,
              });
              console.log(
                `sweep planning: ${fmt(p.addresses)} forwarders, ${fmt(p.candidates)} sweepable, ${p.sweeps} sweeps planned; runs ${p.runsMs.map((x) => x.toFixed(0)).join(", ")} ms`,
              );
              figure("sweep planning pass (median of 5)", p.ms, "ms");
            } catch (error) {
              notMeasured("sweep planning pass", `failed: ${firstLine(error)}`);
            }
        } finally {
          await pool.end();
          await common.shutdown.kill("done");
        }
        await resetToSeed(info, W);
      }

      // Full reconciliation in a child process: its peak RSS is the run's.
      const fullLabel = `full reconciliation of ${fmt(W.factsPerChain * W.chains.length)} facts`;
      let fullDone = false;
      if (ONLY.has("recon-full"))
        try {
          const pool = createPool(scaleDatabaseUrl(), { max: 1, applicationName: "scale-bench" });
          try {
            for (const node of nodes) await storeNodeBlock(pool, node, info.tipBlock);
          } finally {
            await pool.end();
          }
          const child = spawnSync(
            process.execPath,
            tsNodeArgs("ops/bench/scale.ts", ["--full-recon-child", JSON.stringify(nodes)]),
            { cwd: repoRoot, encoding: "utf8", maxBuffer: 1 << 24 },
          );
          const line = child.stdout.trim().split("\n").pop() ?? "";
          if (child.status !== 0 || !line.startsWith("{")) {
            // The whole stderr is kept for reading; the line names the error, not Node's trailer.
            const log = `/tmp/scale-full-recon-${process.pid}.stderr`;
            writeFileSync(log, child.stderr);
            const lines = child.stderr.split("\n").filter((x) => x.trim() !== "");
            const error = lines.find((x) => /\b\w*Error\b|error:/.test(x)) ?? lines.at(-1) ?? "";
            throw new Error(
              `child exited ${child.status ?? child.signal}: ${error.trim()} (stderr in ${log})`,
            );
          }
          const full = JSON.parse(line) as {
            ms: number;
            maxRssKb: number;
            facts: number;
            entries: number;
            breaks: number;
            perChainMs: number[];
          };
          console.log(
            `full reconciliation: ${fmt(full.facts)} facts and ${fmt(full.entries)} entries examined, ${full.breaks} breaks (synthetic facts: on-chain balances differ), per chain ${full.perChainMs.map((x) => (x / 1000).toFixed(1)).join(", ")} s`,
          );
          figure(
            `full reconciliation of ${fmt(full.facts)} facts (${W.chains.length} chains, one after another)`,
            full.ms / 1000,
            "s",
            1,
          );
          figure("full reconciliation peak RSS", full.maxRssKb / 1024, "MB");
          fullDone = true;
        } catch (error) {
          notMeasured(fullLabel, `failed: ${firstLine(error)}`);
          notMeasured("full reconciliation peak RSS", "the run did not finish");
        }

      // Incremental reconciliation of one new block of 10,000 transfers on the first chain, after a
      // full run of it (the full measurement's; when that was not run or failed, one unmeasured full
      // run of that chain).
      if (ONLY.has("recon-incremental")) {
        const common = scaleCommon(nodes);
        const pool = createPool(scaleDatabaseUrl(), { max: 8, applicationName: "scale-bench" });
        try {
          const chain = chains[0]!;
          const ledger = createLedger({ common, pool });
          const reconciler = createReconciler({
            sweeps: sweepReader,
            common,
            pool,
            chains: adapterPerChain(common),
          });
          if (!fullDone) {
            await storeNodeBlock(pool, nodes[0]!, info.tipBlock);
            const base = await reconciler.run({ chain, full: true });
            console.log(
              `incremental reconciliation: first a full run of chain ${chain.chainId} (not measured): ${fmt(base.factsExamined)} facts`,
            );
          }
          const times: number[] = [];
          const onchain: number[] = [];
          const floors: number[] = [];
          let last: Awaited<ReturnType<typeof reconciler.run>> | undefined;
          for (let round = 0; round < 3; round++) {
            const block = info.tipBlock + 1 + round;
            const { rows: seqRows } = await pool.query<{ seq: string }>(
              "SELECT coalesce(max(seq), 0)::text AS seq FROM ledger.transfers",
            );
            await writeBlock(pool, ledger, nodes[0]!, block, W, round);
            const t0 = performance.now();
            last = await reconciler.run({ chain });
            times.push(performance.now() - t0);
            onchain.push(last.timingsMs.onchain);
            floors.push(
              await measureReconFloor(pool, {
                chainId: chain.chainId,
                block,
                afterSeq: seqRows[0]!.seq,
              }),
            );
            if (last.mode !== "incremental" || last.factsExamined < NEW_BLOCK)
              throw new Error(
                `expected an incremental run over the new block, got ${last.mode} over ${last.factsExamined} facts`,
              );
          }
          const s = last!.timingsMs;
          console.log(
            `last incremental run: ${last!.factsExamined} facts, ${last!.entriesExamined} entries, ${last!.matched} matched; load ${s.load.toFixed(0)} ms, match ${s.match.toFixed(0)} ms, balances ${s.balances.toFixed(0)} ms, store ${s.store.toFixed(0)} ms; the on-chain read of its balances alone ${s.onchain.toFixed(0)} ms`,
          );
          figure(
            "incremental reconciliation of one block of 10,000 transfers (best of 3)",
            Math.min(...times),
            "ms",
          );
          figure(
            "incremental reconciliation of one block of 10,000 transfers (median of 3)",
            middle(times),
            "ms",
          );
          // The read the run cannot skip: every active deposit address's balance at the block.
          figure(
            "incremental reconciliation: the on-chain read of the block's balances alone (median of 3)",
            middle(onchain),
            "ms",
          );
          console.log(
            `incremental reconciliation floor: each block's facts and new ledger entries read, and the two running tables moved by its rows, by plain statements rolled back, right after its run: ${floors.map((x) => x.toFixed(0)).join(", ")} ms`,
          );
          figure(
            "incremental reconciliation floor: a block's rows read and written alone, on-chain read not included (median of 3)",
            middle(floors),
            "ms",
          );
        } catch (error) {
          notMeasured(
            "incremental reconciliation of one block of 10,000 transfers",
            `failed: ${firstLine(error)}`,
          );
        } finally {
          await pool.end();
          await common.shutdown.kill("done");
        }
      }
    } finally {
      await Promise.all(anvils.map((anvil) => anvil.stop()));
      await resetToSeed(info, W);
    }

  for (const m of indexerMeasures()) {
    if (!ONLY.has(m.name)) continue;
    try {
      await m.run();
    } catch (error) {
      notMeasured(m.label, `failed: ${firstLine(error)}`);
    }
  }
  console.log(`machine load at the end: ${busyness()}`);
}

/** A new block as the indexer and deposit crediting write it: facts, then their ledger credits. */
async function writeBlock(
  pool: Pool,
  ledger: ReturnType<typeof createLedger>,
  node: ScaleNode,
  block: number,
  w: ScaleWorkload,
  round: number,
) {
  const { chainId } = node;
  const hash = await storeNodeBlock(pool, node, block);
  const k = w.chains.indexOf(chainId);
  const base = w.factsPerChain + round * NEW_BLOCK;
  const txs = Array.from({ length: NEW_BLOCK }, (_, i) => txHashOf(k, base + i));
  const js = Array.from({ length: NEW_BLOCK }, (_, i) => (base + i) % w.depositAddressesPerChain);
  await pool.query(
    `INSERT INTO chain.transfers (chain_id, block_number, block_hash, tx_hash, tx_index, position,
       kind, asset, from_address, to_address, amount, status)
     SELECT $1, $2, $3, t, i::int - 1, 'tx', 'native', $4, $5, a, 1000 + i, 'confirmed'
     FROM unnest($6::text[], $7::text[]) WITH ORDINALITY AS x(t, a, i)`,
    [chainId, block, hash, ZERO, SENDER, txs, js.map((j) => depositAddress(k, j))],
  );
  await pool.query(
    "UPDATE chain.checkpoints SET block_number = $2, block_hash = $3 WHERE chain_id = $1",
    [chainId, block, hash],
  );
  const transfers: NewTransfer[] = txs.map((t, i) => ({
    id: transferId(`deposit:${chainId}:${t}:tx`),
    assetId: `${chainId}:${ZERO}`,
    debit: "custody:deposits",
    credit: `user:c${ownerOf(k, js[i]!, w)}`,
    amount: BigInt(1001 + i),
    kind: "deposit",
    chainRef: { chainId, txHash: t, position: "tx" },
  }));
  for (let i = 0; i < transfers.length; i += 4096)
    await ledger.createTransfers(transfers.slice(i, i + 4096));
}

if (process.argv[2] === "--full-recon-child") {
  await fullReconChild(JSON.parse(process.argv[3]!) as ScaleNode[]);
} else {
  await main();
}
