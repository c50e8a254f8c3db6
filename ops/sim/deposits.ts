/**
 * Scenario `deposits`: one anvil behind the lying chain (a flaky primary endpoint and a
 * load-balanced fallback that lags, syncs, withholds receipts or disagrees with itself), the real
 * indexer (in process, or a child process killed with SIGKILL at random instants), the real deposit
 * crediting (the ledger worker's sweep) and reconciliation. A seeded schedule sends native and
 * ERC-20 deposits, mines, changes faults, injects reorgs of depth 1 to finality + 5 that re-mine,
 * drop or replace transactions, and books one phantom credit (an injected break). After the chain
 * settles past finality it checks:
 *  - balances: every customer's available balance = what their deposit addresses hold on the final
 *    chain (plus the injected phantom credit);
 *  - no-double-credit: per deposit transaction, the ledger's net effect on the customer equals the
 *    amount that transaction moved on the final chain (credited once, and not kept when it vanished);
 *  - finality: no block at or below the published finalized height was orphaned without a halt, and
 *    a reorg that replaced such a block halted the chain;
 *  - index: the stored canonical chain is the node's chain, up to the head;
 *  - ledger-check: the ledger's own consistency check finds nothing;
 *  - reconciliation: a full run at the final block reports exactly the injected breaks.
 * In 30% of the seeds (own stream `finality-tag`) finality is the node's `finalized` tag (anvil's
 * head less two epochs, at least as deep as the drawn block rule), answered by each lying endpoint
 * as its view does; the finality invariant is then about the final block the indexer published
 * from that tag.
 */

import type { Hex } from "viem";
import type { ChainConfig } from "../../chains/index.js";
import { adapterPerChain, createEvmAdapter, type EvmAdapter } from "../../chains/index.js";
import { injectReorg, type MinedTx } from "../../chains/testing/lyingChain/reorg.js";
import type { Pool } from "../../foundation/db.js";
import { readFinalized, readHalts } from "../../indexers/index.js";
// Not exported from indexers/index.ts (yet): the CLI's resume, called as the operator would.
import { resumeChain } from "../../indexers/resume.js";
import { anvilRpc, call, deploy, type Rpc, watch } from "../../indexers/testing/chain.js";
import { assetIdOf, createLedger, startCreditingWorker, transferId } from "../../ledger/index.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { sweepReader } from "../../signer/sweeps/sweepReads.js";
import { endpointFaults } from "./faults.js";
import {
  createSimWorld,
  drawTagFinality,
  type ProxiedSimChain,
  parseChain,
  proxiedSimChain,
  type SimRun,
} from "./harness.js";
import { childIngestor, type IngestorHost, inProcessIngestor } from "./ingestorHost.js";
import { createRandom, type Random } from "./random.js";
import type { Scenario, ScenarioOptions, SimResult, Violation } from "./scenario.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const E18 = 10n ** 18n;
const RPC_TIMEOUT_MS = 1000;
/** A hang outlasts the client's timeout. */
const HANG_MS = 1500;

type Deposit = {
  hash: Hex;
  kind: "native" | "erc20";
  owner: string;
  to: Hex;
  amount: bigint;
  from: Hex;
};

type ReorgRecord = {
  step: number;
  depth: number;
  fromBlock: bigint;
  finalizedAtInjection: bigint | null;
  expectHalt: boolean;
};

const hex = (n: bigint) => `0x${n.toString(16)}` as Hex;

/** A deposit address for (seed, customer, index): fresh, never a sender. */
function depositAddress(customer: number, index: number): Hex {
  return `0x5e${customer.toString(16).padStart(2, "0")}${index.toString(16).padStart(2, "0")}${"0".repeat(33)}1` as Hex;
}

/**
 * The operator's `custody-node chains resume <chain>`, refused, then again with `--accept-reorg`
 * naming the common ancestor the refusal showed, through its function.
 */
async function resumeAcceptingReorg(
  pool: Pool,
  chain: ChainConfig,
  adapter: EvmAdapter,
): Promise<string | null> {
  const resume = (acceptReorg: string | null) =>
    resumeChain({
      pool,
      adapter,
      chain,
      by: "sim",
      reason: "simulated deep reorg accepted by the operator",
      acceptReorg,
    });
  const shown = await resume(null);
  const result = shown.kind === "refused" ? await resume(shown.accept) : shown;
  return result.kind === "resumed" ? null : `resumeChain answered ${result.kind}`;
}

export async function runDeposits(
  seed: number,
  run: SimRun,
  options: ScenarioOptions = {},
): Promise<SimResult> {
  const started = performance.now();
  const rng: Random = createRandom(seed);
  const trace = options.trace ?? (() => {});
  const violations: Violation[] = [];
  const notes: string[] = [];
  const fail = (invariant: string, detail: string) => violations.push({ invariant, detail });

  // The seed's shape.
  const confirmations = rng.int(2, 3);
  const finality = confirmations + rng.int(1, 3);
  const customers = rng.int(2, 4);
  const steps = rng.int(25, 40);
  const useChild = rng.chance(0.35);
  // Some seeds reach below finality (the chain must halt and an operator resume it); the others stay
  // above it, where every reorg must be handled automatically.
  const deepReorgs = rng.chance(0.4);
  const batchBlocks = rng.int(2, 8);
  // Half the seeds book one phantom credit (a ledger deposit with no chain fact): an injected break.
  const phantomStep = rng.chance(0.5) ? rng.int(0, steps - 1) : -1;
  const faultStream = rng.fork("primary-faults");
  // Finality by the node's `finalized` tag in 30% of the seeds (harness.ts; its own stream).
  const tag = drawTagFinality(rng, finality);

  let simChain: ProxiedSimChain | undefined;
  const world = await createSimWorld(run, {
    chainId: CHAIN_ID,
    anvilArgs: tag.anvilArgs,
    async chains(anvil) {
      simChain = await proxiedSimChain(anvil, {
        chainId: CHAIN_ID,
        confirmations,
        finality,
        hangMs: HANG_MS,
        extra: { traces: false, ...tag.entry },
      });
      return [parseChain(simChain.entry)];
    },
  });
  const { primary: pA, fallback: pB, entry } = simChain as ProxiedSimChain;
  let chainEntry = entry;
  const anvilUrl = world.anvil.rpcUrl;
  const rpc: Rpc = anvilRpc(anvilUrl);
  const pool = world.db.pool;
  let host: IngestorHost | undefined;
  let worker: Awaited<ReturnType<typeof startCreditingWorker>> | undefined;
  const stats: Record<string, number | string> = {
    steps,
    confirmations,
    finality,
    child: useChild ? 1 : 0,
    deep: deepReorgs ? 1 : 0,
    finality_tag: tag.stat,
    deposits: 0,
    reorgs: 0,
    kills: 0,
    faults: 0,
    sync_errors: 0,
  };
  let failed = false;
  try {
    const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
    const [deployer, , , , , , , , marker, sink] = accounts as Hex[];
    const senders = accounts.slice(1, 7);
    // Setup blocks (token deployed and handed out) are never reorged: the schedule is about deposits.
    await rpc("evm_setAutomine", [true]);
    const token = (
      await deploy(rpc, deployer as Hex, "TestToken", [10n ** 27n])
    ).toLowerCase() as Hex;
    for (const s of senders)
      await rpc("eth_sendTransaction", [
        {
          from: deployer,
          to: token,
          data: call("TestToken", "transfer", [s, 10n ** 24n]),
          gas: hex(100_000n),
        },
      ]);
    await rpc("evm_setAutomine", [false]);
    const setupHead = BigInt(await rpc<Hex>("eth_blockNumber"));

    // The chain as the service sees it, plus the token.
    const chain = parseChain({
      ...chainEntry,
      tokens: [{ address: token, symbol: "TT", decimals: 18 }],
    });
    chainEntry = { ...chainEntry, tokens: [{ address: token, symbol: "TT", decimals: 18 }] };
    const honest = parseChain({ ...chainEntry, rpcUrls: [anvilUrl] });
    const ETH = assetIdOf(CHAIN_ID, ZERO);
    const TT = assetIdOf(CHAIN_ID, token);

    const owners: { owner: string; addresses: Hex[] }[] = [];
    for (let c = 0; c < customers; c++)
      owners.push({
        owner: `sim-${c}`,
        addresses: Array.from({ length: rng.int(1, 2) }, (_, i) => depositAddress(c, i)),
      });
    await watch(
      pool,
      CHAIN_ID,
      owners.flatMap((o) => o.addresses.map((address) => ({ address, owner: o.owner }))),
    );
    const ownerOf = new Map(owners.flatMap((o) => o.addresses.map((a) => [a, o.owner] as const)));

    const ledger = createLedger({ common: world.common, pool });
    worker = await startCreditingWorker({
      common: world.common,
      pool,
      queues: world.queues,
      ledger,
      chains: [chain],
      sweepIntervalMs: 3_600_000,
    });
    const credit = async () => {
      try {
        await worker?.sweepOnce();
      } catch (error) {
        notes.push(`crediting sweep failed: ${(error as Error).message}`);
      }
    };
    const hostArgs = { batchBlocks, rpcTimeoutMs: RPC_TIMEOUT_MS };
    host = useChild
      ? await childIngestor({
          databaseUrl: world.db.url,
          chain: chainEntry,
          logLevel: run.logLevel,
          ...hostArgs,
        })
      : await inProcessIngestor({ common: world.common, pool, chain, ...hostArgs });
    const sync = async () => {
      const outcome = await (host as IngestorHost).sync();
      if (!outcome.ok) {
        stats.sync_errors = Number(stats.sync_errors) + 1;
        trace(`  sync error: ${outcome.error}`);
      }
    };

    const deposits = new Map<Hex, Deposit>();
    const reorgs: ReorgRecord[] = [];
    const phantoms: { owner: string; assetId: string; amount: bigint; txHash: string }[] = [];
    let watermark: bigint | null = null;
    const orphanedSeen = new Set<string>();
    let resumedAccepting = false;

    const readWatermark = async () => (await readFinalized(pool, CHAIN_ID))?.number ?? null;
    /** Orphaned blocks that appeared since the last look, at or below `floor`. */
    const newOrphansAtOrBelow = async (floor: bigint | null) => {
      const { rows } = await pool.query<{ number: string; hash: string }>(
        "SELECT number::text, hash FROM chain.blocks WHERE chain_id = $1 AND NOT canonical",
        [CHAIN_ID],
      );
      const bad: string[] = [];
      for (const r of rows) {
        if (orphanedSeen.has(r.hash)) continue;
        orphanedSeen.add(r.hash);
        if (floor !== null && BigInt(r.number) <= floor) bad.push(r.number);
      }
      return bad;
    };
    const afterStep = async (step: number, floorBefore: bigint | null) => {
      const bad = await newOrphansAtOrBelow(floorBefore);
      const halts = await readHalts(pool, { includeResumed: true, chainId: CHAIN_ID });
      if (bad.length > 0 && !(resumedAccepting && halts.length > 0))
        fail(
          "finality",
          `step ${step}: blocks ${bad.join(", ")} orphaned at or below the published finalized block ${floorBefore} without a halt`,
        );
      const w = await readWatermark();
      if (w !== null && (watermark === null || w > watermark)) watermark = w;
    };

    const sendDeposit = async (): Promise<void> => {
      const o = rng.pick(owners);
      const to = rng.pick(o.addresses);
      const from = rng.pick(senders);
      const kind = rng.chance(0.55) ? "native" : "erc20";
      const amount = rng.bigint(10n ** 14n, 2n * E18);
      const hash =
        kind === "native"
          ? await rpc<Hex>("eth_sendTransaction", [{ from, to, value: hex(amount) }])
          : await rpc<Hex>("eth_sendTransaction", [
              {
                from,
                to: token,
                data: call("TestToken", "transfer", [to, amount]),
                gas: hex(100_000n),
              },
            ]);
      deposits.set(hash, { hash, kind, owner: o.owner, to, amount, from });
      stats.deposits = Number(stats.deposits) + 1;
    };
    const mine = async (n: number) => {
      for (let i = 0; i < n; i++) await rpc("evm_mine");
    };

    const faults = endpointFaults({
      primary: pA,
      fallback: pB,
      anvilUrl,
      rng,
      faultStream,
      finality,
      trace,
      cutLogs: true,
    });
    const changeFaults = () => {
      stats.faults = Number(stats.faults) + 1;
      faults.change();
    };
    const clearFaults = faults.clear;

    const reorg = async (step: number) => {
      const head = BigInt(await rpc<Hex>("eth_blockNumber"));
      const room = Number(head - setupHead);
      if (room < 1) return;
      const depth = Math.min(
        rng.int(1, deepReorgs ? finality + 5 : Math.max(1, finality - 1)),
        room,
      );
      const finalizedAtInjection = await readWatermark();
      const fromBlock = head - BigInt(depth) + 1n;
      const expectHalt = finalizedAtInjection !== null && finalizedAtInjection >= fromBlock;
      const method = rng.chance(0.7) ? "reorg" : "rollback";
      const extend = rng.int(0, 2);
      // Fates are drawn in transaction order: the same seed makes the same choices.
      const fates = new Map<Hex, "same" | "drop" | "replace">();
      const replacements = new Map<Hex, bigint>();
      const outcome = await injectReorg(rpc, {
        depth,
        extend,
        method,
        marker: { from: marker as Hex, to: sink as Hex },
        fate: (tx: MinedTx) => {
          const f = deposits.has(tx.hash) ? rng.weighted({ same: 5, drop: 2, replace: 2 }) : "same";
          fates.set(tx.hash, f);
          return f;
        },
        shift: () => (rng.chance(0.3) ? rng.int(1, 2) : 0),
        replacement: (tx: MinedTx) => {
          const d = deposits.get(tx.hash);
          if (!d) return null;
          const amount = rng.bigint(10n ** 14n, 2n * E18);
          replacements.set(tx.hash, amount);
          return d.kind === "native"
            ? { to: d.to, value: hex(amount) }
            : {
                to: token,
                data: call("TestToken", "transfer", [d.to, amount]),
                gas: hex(100_000n),
              };
        },
      });
      for (const r of outcome.replaced) {
        const d = deposits.get(r.old.hash);
        const amount = replacements.get(r.old.hash);
        if (d && r.replacement && amount !== undefined)
          deposits.set(r.replacement, { ...d, hash: r.replacement, amount });
      }
      reorgs.push({ step, depth: outcome.depth, fromBlock, finalizedAtInjection, expectHalt });
      stats.reorgs = Number(stats.reorgs) + 1;
      trace(
        `  reorg depth ${outcome.depth} (${method}, +${extend}) from ${fromBlock}: kept ${outcome.kept.length}, dropped ${outcome.dropped.length}, replaced ${outcome.replaced.length}; finalized ${finalizedAtInjection}${expectHalt ? " -> expect halt" : ""}`,
      );
    };

    const phantom = async () => {
      const o = rng.pick(owners);
      const amount = rng.bigint(1n, E18);
      const txHash = `0x${"ab".repeat(31)}${(seed % 256).toString(16).padStart(2, "0")}`;
      await ledger.createTransfers([
        {
          id: transferId(`sim:phantom:${seed}`),
          assetId: ETH,
          debit: "custody:deposits",
          credit: `user:${o.owner}`,
          amount,
          kind: "deposit",
          chainRef: { chainId: CHAIN_ID, txHash, position: "tx" },
          memo: "sim: injected phantom credit",
        },
      ]);
      phantoms.push({ owner: o.owner, assetId: ETH, amount, txHash });
      trace(`  phantom credit ${amount} to ${o.owner}`);
    };

    // The schedule.
    for (let step = 0; step < steps; step++) {
      const floorBefore = watermark;
      const action = rng.weighted({
        deposit: 5,
        mine: 2,
        faults: 2,
        reorg: 1.2,
        kill: useChild ? 0.7 : 0,
      });
      trace(`step ${step}: ${action}`);
      switch (action) {
        case "deposit": {
          const n = rng.int(1, 3);
          for (let i = 0; i < n; i++) await sendDeposit();
          await mine(rng.int(1, 2));
          break;
        }
        case "mine":
          await mine(rng.int(1, 3));
          break;
        case "faults":
          changeFaults();
          break;
        case "reorg":
          await reorg(step);
          break;
        case "kill": {
          await mine(1);
          const after = rng.int(0, 300);
          await host.killDuringSync?.(after);
          stats.kills = Number(stats.kills) + 1;
          break;
        }
      }
      if (step === phantomStep) await phantom();
      for (let i = rng.int(1, 2); i > 0; i--) await sync();
      await credit();
      await afterStep(step, floorBefore);
    }

    // Settle: honest endpoints, bury everything past finality, catch up, credit.
    clearFaults();
    await mine(finality + 5);
    const head = await rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
    const expectHalt = reorgs.some((r) => r.expectHalt);
    const deadline = Date.now() + 90_000;
    let caughtUp = false;
    while (Date.now() < deadline) {
      const floorBefore = watermark;
      await sync();
      await credit();
      await afterStep(steps, floorBefore);
      const open = await readHalts(pool, { chainId: CHAIN_ID });
      if (open.length > 0) {
        if (!expectHalt) break;
        const problem = await resumeAcceptingReorg(
          pool,
          chain,
          createEvmAdapter(chain, { common: world.common }, { timeoutMs: RPC_TIMEOUT_MS }),
        );
        if (problem) {
          fail("finality", `the chain halted as expected but cannot be resumed: ${problem}`);
          break;
        }
        resumedAccepting = true;
        continue;
      }
      const tip = await pool.query<{ block_number: string; block_hash: string }>(
        "SELECT block_number::text, block_hash FROM chain.checkpoints WHERE chain_id = $1",
        [CHAIN_ID],
      );
      const t = tip.rows[0];
      if (
        t &&
        BigInt(t.block_number) === BigInt(head.number) &&
        t.block_hash === head.hash.toLowerCase()
      ) {
        caughtUp = true;
        break;
      }
    }
    for (let i = 0; i < 3; i++) await credit();
    if (options.sabotage === "double-credit") {
      const d = [...deposits.values()].find((x) => x.kind === "native");
      if (d)
        await ledger.createTransfers([
          {
            id: transferId(`sim:sabotage:${d.hash}`),
            assetId: ETH,
            debit: "custody:deposits",
            credit: `user:${d.owner}`,
            amount: d.amount,
            kind: "deposit",
            chainRef: { chainId: CHAIN_ID, txHash: d.hash, position: "tx" },
          },
        ]);
    }

    // Invariant: finality.
    const halts = await readHalts(pool, { includeResumed: true, chainId: CHAIN_ID });
    for (const r of reorgs.filter((r) => r.expectHalt))
      if (halts.length === 0)
        fail(
          "finality",
          `step ${r.step}: a depth-${r.depth} reorg replaced block ${r.fromBlock} at or below the published finalized block ${r.finalizedAtInjection}, and the chain did not halt`,
        );
    if (!expectHalt)
      for (const h of halts)
        fail(
          "finality",
          `unexpected halt (no reorg reached a finalized block): ${h.reason} ${JSON.stringify(h.details)}`,
        );
    const stillHalted = (await readHalts(pool, { chainId: CHAIN_ID })).length > 0;
    if (!caughtUp && !stillHalted)
      fail(
        "index",
        `the indexer did not reach the head ${BigInt(head.number)} within 90 s after the faults cleared`,
      );

    if (!stillHalted) {
      // Invariant: index equals the chain.
      const { rows: stored } = await pool.query<{ number: string; hash: string }>(
        "SELECT number::text, hash FROM chain.blocks WHERE chain_id = $1 AND canonical ORDER BY number",
        [CHAIN_ID],
      );
      let mismatches = 0;
      for (const b of stored) {
        const real = await rpc<{ hash: Hex } | null>("eth_getBlockByNumber", [
          hex(BigInt(b.number)),
          false,
        ]);
        if (real?.hash.toLowerCase() !== b.hash && mismatches++ < 3)
          fail(
            "index",
            `stored canonical block ${b.number} ${b.hash} is not the chain's (${real?.hash ?? "none"})`,
          );
      }

      // What the final chain holds, per customer and asset, and per deposit transaction.
      const onchain = new Map<string, bigint>();
      for (const o of owners)
        for (const a of o.addresses) {
          const eth = BigInt(await rpc<Hex>("eth_getBalance", [a, "latest"]));
          const tt = BigInt(
            await rpc<Hex>("eth_call", [
              { to: token, data: call("TestToken", "balanceOf", [a]) },
              "latest",
            ]),
          );
          onchain.set(`${o.owner}|${ETH}`, (onchain.get(`${o.owner}|${ETH}`) ?? 0n) + eth);
          onchain.set(`${o.owner}|${TT}`, (onchain.get(`${o.owner}|${TT}`) ?? 0n) + tt);
        }
      for (const p of phantoms)
        onchain.set(
          `${p.owner}|${p.assetId}`,
          (onchain.get(`${p.owner}|${p.assetId}`) ?? 0n) + p.amount,
        );

      // Invariant: balances.
      for (const o of owners)
        for (const assetId of [ETH, TT]) {
          const expected = onchain.get(`${o.owner}|${assetId}`) ?? 0n;
          const account = await ledger.getAccount({ assetId, name: `user:${o.owner}` });
          const available = account?.available ?? 0n;
          if (available !== expected)
            fail(
              "balances",
              `${o.owner} ${assetId === ETH ? "ETH" : "TT"}: available ${available}, the final chain holds ${expected}${phantoms.some((p) => p.owner === o.owner && p.assetId === assetId) ? " (incl. the injected phantom credit)" : ""}`,
            );
        }

      // Invariant: no double credit, per deposit transaction.
      // A post or void names its pending transfer, not always the chain reference: follow it.
      const { rows: effects } = await pool.query<{
        tx_hash: string;
        owner: string;
        asset_id: string;
        net: bigint;
        credits: number;
      }>(
        `SELECT COALESCE(t.tx_hash, p.tx_hash) AS tx_hash, substr(a.name, 6) AS owner, t.asset_id,
                sum(CASE WHEN t.credit_account_id = a.id THEN t.posted_delta
                         ELSE -(t.posted_delta + t.pending_delta) END) AS net,
                count(*) FILTER (WHERE t.credit_account_id = a.id AND t.kind = 'deposit' AND t.type = 'single')::int AS credits
           FROM ledger.transfers t
           LEFT JOIN ledger.transfers p ON p.id = t.pending_id
           JOIN ledger.accounts a ON a.id IN (t.debit_account_id, t.credit_account_id) AND a.name LIKE 'user:%'
          WHERE COALESCE(t.chain_id, p.chain_id) = $1 AND COALESCE(t.tx_hash, p.tx_hash) IS NOT NULL
          GROUP BY 1, a.name, t.asset_id`,
        [CHAIN_ID],
      );
      const ledgerByTx = new Map(
        effects.map((e) => [`${e.tx_hash.toLowerCase()}|${e.owner}|${e.asset_id}`, e]),
      );
      let reported = 0;
      for (const d of deposits.values()) {
        const receipt = await rpc<{ status: Hex } | null>("eth_getTransactionReceipt", [d.hash]);
        const chainAmount = receipt?.status === "0x1" ? d.amount : 0n;
        const assetId = d.kind === "native" ? ETH : TT;
        const e = ledgerByTx.get(`${d.hash.toLowerCase()}|${ownerOf.get(d.to)}|${assetId}`);
        const net = e ? e.net : 0n;
        if (net !== chainAmount && reported++ < 5)
          fail(
            "no-double-credit",
            `${d.kind} deposit ${d.hash} to ${d.owner}: ledger nets ${net} over ${e?.credits ?? 0} credit(s), the final chain moved ${chainAmount}${net > chainAmount && (e?.credits ?? 0) > 1 ? " (credited twice)" : net > chainAmount ? " (credit kept for a deposit the chain no longer has)" : " (missing credit)"}`,
          );
      }

      // Invariant: the ledger's own check.
      const check = await ledger.check();
      for (const p of check.problems.slice(0, 3))
        fail(
          "ledger-check",
          JSON.stringify(p, (_, v) => (typeof v === "bigint" ? String(v) : v)),
        );

      // Invariant: reconciliation shows exactly the injected breaks.
      const honestAdapter = createEvmAdapter(honest, { common: world.common });
      const reconciler = createReconciler({
        sweeps: sweepReader,
        common: world.common,
        pool,
        chains: adapterPerChain(world.common, () => honestAdapter),
      });
      const summary = await reconciler.run({ chain: honest, full: true });
      // A phantom credit is a ledger transfer without its fact, and liabilities above what custody
      // holds: its own break, plus the balance-level difference (deposits or solvency scope).
      const expected = new Map<string, bigint>();
      let phantomTotal = 0n;
      for (const p of phantoms) {
        expected.set(`${p.txHash}:tx`, p.amount);
        phantomTotal += p.amount;
      }
      const balanceScopes = new Set(["deposits", "solvency"]);
      const seen = new Set<string>();
      for (const b of summary.breaks) {
        seen.add(b.key);
        const want =
          balanceScopes.has(b.key) && phantomTotal > 0n ? phantomTotal : expected.get(b.key);
        if (want === undefined)
          fail(
            "reconciliation",
            `unexpected break ${b.type} ${b.key} (${b.assetId}): chain ${b.chainAmount}, ledger ${b.ledgerAmount}`,
          );
        // A solvency break's difference is signed as assets minus liabilities: compare magnitudes.
        else if ((b.difference < 0n ? -b.difference : b.difference) !== want)
          fail(
            "reconciliation",
            `break ${b.type} ${b.key}: difference ${b.difference}, injected ${want}`,
          );
      }
      for (const [key, amount] of expected)
        if (!seen.has(key))
          fail("reconciliation", `injected break ${key} (${amount}) not reported`);
      if (phantomTotal > 0n && ![...balanceScopes].some((k) => seen.has(k)))
        fail(
          "reconciliation",
          `the phantom credit's balance difference (${phantomTotal}) is reported in no balance scope`,
        );
      stats.breaks = summary.breaks.length;
    }
    stats.halts = halts.length;
    stats.depths = reorgs.map((r) => r.depth).join(",");
    stats.requests = pA.requests() + pB.requests();
    const lies = [pA.stats(), pB.stats()];
    for (const kind of [
      "http500",
      "http429",
      "timeout",
      "drop",
      "lagging",
      "syncing",
      "null_receipts",
    ])
      stats[kind] = lies.reduce((sum, s) => sum + (s[kind] ?? 0), 0);
    // Answers that went through a data lie (blocks without transactions, cut or empty logs).
    stats.bodiless = lies.reduce((sum, s) => sum + (s["lie:eth_getBlockByNumber"] ?? 0), 0);
    stats.cut_logs = lies.reduce((sum, s) => sum + (s["lie:eth_getLogs"] ?? 0), 0);
    stats.dropped_logs = lies.reduce((sum, s) => sum + (s.dropped_logs ?? 0), 0);
  } catch (error) {
    fail("scenario", `the scenario itself failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    failed = violations.length > 0;
    await host?.stop().catch(() => {});
    await worker?.stop().catch(() => {});
    await pA.close();
    await pB.close();
    const keep = failed && options.keepOnFailure === true;
    await world.close({ keep });
    if (keep) notes.push(`database kept: ${world.db.name}`);
  }
  return { seed, violations, stats, notes, ms: performance.now() - started };
}

export const depositsScenario: Scenario = {
  name: "deposits",
  description:
    "indexer + crediting + reconciliation on a lying chain: faults, reorgs (1..finality+5), kill -9",
  run: runDeposits,
};
