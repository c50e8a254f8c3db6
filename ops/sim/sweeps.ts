/**
 * Scenario `sweeps`: one anvil behind the lying chain, a KMS-emulator hot wallet that deployed the
 * ForwarderFactory (its gas booked by the deploy) and was funded by a real transaction (booked as
 * the operator's `treasury fund`), customers' counterfactual deposit addresses, and the real
 * indexer, deposit crediting, sweeper (planning, settlement from the Swept events, following to
 * finality) and signer (in process, or a child process killed with SIGKILL). A seeded schedule
 * sends native and ERC-20 deposits, mines, changes the endpoints' lies (deposits' set, plus lost
 * sends in half the seeds, own stream), injects reorgs above finality (most of them aimed at a
 * sweep's block) that re-mine or drop transactions, kills the sweeper mid-tick (its Postgres
 * connections terminated: what a kill -9 leaves) and, with a child signer, kills the signer. In
 * half the seeds (own stream) the hot wallet has ceilings, and its excess moves to cold. In 40% of
 * seeds (own stream `l1-price`, l1Price.ts) the chain charges the L1 cost as gas (`l1CostInGas`,
 * Arbitrum) at a price that walks, spikes and sometimes surges: every estimate carries it and the
 * endpoints refuse a sweep, cold move or cancel below intrinsic gas + the price, which the signer
 * re-estimates at the same nonce (signer/broadcaster/regas.ts), or, its re-estimates spent, cancels
 * (the sweep or move fails and is planned again). In 30% of the seeds without an L1 price (own
 * stream `fee-model`) the chain is priced the legacy way (BSC): everything signed at eth_gasPrice.
 * In 30% of seeds (own stream `finality-tag`) finality is the node's `finalized` tag (anvil's head
 * less two epochs, at least as deep as the drawn block rule). In 40% of seeds (own stream
 * `fee-spikes`) a quarter of the steps set the next block's base fee to 1..60 gwei (then it decays).
 * After the faults clear and the chain settles past finality it checks:
 *  - balances: per asset, custody:deposits = what the deposit addresses hold on the final chain,
 *    custody:hot:<hot> and custody:cold:<cold> = what the hot wallet and the cold address hold,
 *    nothing left pending on any;
 *  - credited-value: per asset, what customers were credited = what their addresses still hold
 *    plus what the ledger books as swept (every credited wei is in one place or the other);
 *  - no-double-sweep: per sweep transaction and asset, the standing sweep bookings equal what its
 *    Swept events moved on the final chain, and every Swept event is booked;
 *  - canonical: every booked sweep's transaction is in the final chain, succeeded, and its sweep
 *    is final;
 *  - sweepable: the planner's running sweepable balances agree with history;
 *  - no-revert: no transaction of the hot wallet reverted (its gas spent for nothing);
 *  - nonces: the hot wallet's mined nonces are contiguous with what the signer used (no gap);
 *  - ledger-check, reconciliation (zero breaks at the final block), stop (the signer's stop()
 *    returns within 15 s).
 */

import { CreateKeyCommand } from "@aws-sdk/client-kms";
import {
  type Address,
  getContractAddress,
  type Hex,
  parseEther,
  parseEventLogs,
  toHex,
} from "viem";
import { forwarderFactory } from "../../chains/contracts/index.js";
import { adapterPerChain, createEvmAdapter } from "../../chains/index.js";
import { injectReorg } from "../../chains/testing/lyingChain/reorg.js";
import { createPool } from "../../foundation/db.js";
import { allocateDepositAddress } from "../../indexers/index.js";
import { anvilRpc, call, deploy, type Rpc, receipt, sendTx } from "../../indexers/testing/chain.js";
import {
  assetIdOf,
  bookTreasuryMove,
  createLedger,
  type Ledger,
  startCreditingWorker,
} from "../../ledger/index.js";
import { createReconciler } from "../../ledger/recon/index.js";
import { deployForwarderFactory } from "../../signer/deposit-addresses/index.js";
import {
  createKmsAccount,
  createKmsClient,
  startKmsEmulator,
  startWalletSigner,
} from "../../signer/index.js";
import { getTxOutcomes } from "../../signer/outcomes.js";
import { signerTransactions } from "../../signer/requests.js";
import {
  coldAccount,
  createSweeper,
  hotAccount,
  sweepReader,
  sweepTransfer,
} from "../../signer/sweeps/index.js";
import { sweepableDrift } from "../../signer/sweeps/testing/sweepable.js";
import { endpointFaults } from "./faults.js";
import {
  createSimWorld,
  drawFeeSpikes,
  drawTagFinality,
  type ProxiedSimChain,
  parseChain,
  proxiedSimChain,
  type SimRun,
} from "./harness.js";
import { inProcessIngestor } from "./ingestorHost.js";
import { createL1Price, drawL1Price, type L1Price } from "./l1Price.js";
import { createRandom } from "./random.js";
import type { Scenario, ScenarioOptions, SimResult, Violation } from "./scenario.js";
import { childSigner, type SignerHost } from "./signerHost.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const E18 = 10n ** 18n;
const RPC_TIMEOUT_MS = 1000;
const HANG_MS = 1500;
/** anvil's first dev account deploys the test token at nonce 0: its address is known before. */
const TOKEN_DEPLOYER: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const TOKEN = getContractAddress({ from: TOKEN_DEPLOYER, nonce: 0n }).toLowerCase() as Hex;
const FUNDING = parseEther("100");
/** The chain's cold address: fresh, never a sender. */
const COLD = "0xc01d00000000000000000000000000000000c01d" as Hex;

const hex = (n: bigint) => `0x${n.toString(16)}` as Hex;

/** A debit-normal custody account's posted balance, and what is still pending on it. */
async function custodyBalance(ledger: Ledger, assetId: string, name: string) {
  const a = await ledger.getAccount({ assetId, name });
  return {
    posted: a ? a.debitsPosted - a.creditsPosted : 0n,
    pending: a ? a.debitsPending + a.creditsPending : 0n,
  };
}

type Queryable = { query: ReturnType<typeof createPool>["query"] };

/** A hot-wallet send as the signer stored it: its nonce, purpose, request kind and gas limit. */
async function sendSummary(pool: Queryable, txHash: string): Promise<string> {
  const { rows } = await pool.query<{
    nonce: string;
    purpose: string;
    kind: string;
    gas_limit: string;
  }>(
    `SELECT a.nonce, a.purpose, r.kind, a.gas_limit FROM custody.tx_attempts a
       JOIN custody.tx_requests r ON r.id = a.request_id WHERE a.tx_hash = $1`,
    [txHash.toLowerCase()],
  );
  const a = rows[0];
  return a
    ? `nonce ${a.nonce} ${a.kind} ${a.purpose}, gas limit ${a.gas_limit}`
    : "not the signer's";
}

/** The hot wallet's mined sends two nonces either side of `txHash`'s, for the trace. */
async function sendsAround(
  pool: Queryable,
  rpc: Rpc,
  hot: string,
  txHash: string,
): Promise<string[]> {
  const tx = await rpc<{ nonce: Hex } | null>("eth_getTransactionByHash", [txHash]);
  if (!tx) return [];
  const nonce = BigInt(tx.nonce);
  const { rows } = await pool.query<{ tx_hash: string }>(
    `SELECT tx_hash FROM custody.tx_attempts
      WHERE from_address = $1 AND nonce BETWEEN $2 AND $3 AND status = 'mined' ORDER BY nonce`,
    [hot, (nonce - 2n).toString(), (nonce + 2n).toString()],
  );
  const out: string[] = [];
  for (const { tx_hash } of rows) {
    const r = await rpc<{ status: Hex; gasUsed: Hex; blockNumber: Hex } | null>(
      "eth_getTransactionReceipt",
      [tx_hash],
    );
    out.push(
      `${tx_hash} ${await sendSummary(pool, tx_hash)}: ${r ? `block ${BigInt(r.blockNumber)}, status ${r.status}, gas used ${BigInt(r.gasUsed)}` : "no receipt"}`,
    );
  }
  return out;
}

export async function runSweeps(
  seed: number,
  run: SimRun,
  options: ScenarioOptions = {},
): Promise<SimResult> {
  const started = performance.now();
  const rng = createRandom(seed);
  const trace = options.trace ?? (() => {});
  const violations: Violation[] = [];
  const notes: string[] = [];
  const fail = (invariant: string, detail: string) => violations.push({ invariant, detail });

  const confirmations = rng.int(2, 3);
  const finality = confirmations + rng.int(2, 3);
  const customers = rng.int(3, 6);
  const steps = rng.int(25, 35);
  const useChild = rng.chance(0.35);
  const batchBlocks = rng.int(2, 8);
  const sweepBatchSize = rng.int(1, 4);
  const faultStream = rng.fork("primary-faults");
  const fateStream = rng.fork("reorg-fates");
  // Lost sends (own stream): both endpoints acknowledge a share of raw transactions and never pass
  // them on, until the faults clear; the signer's stall stage must resend the stored bytes.
  const lostStream = rng.fork("lost-sends");
  const lostRate = lostStream.chance(0.5) ? lostStream.int(10, 40) / 100 : 0;
  // Cold moves (own stream): in half the seeds the hot wallet has ceilings a few sweeps exceed,
  // and the excess goes to the chain's cold address through the signer.
  const coldStream = rng.fork("cold-moves");
  const ceilings = coldStream.chance(0.5)
    ? {
        nativeHotCeiling: String(FUNDING + coldStream.bigint(E18, 5n * E18)),
        tokenHotCeiling: String(coldStream.bigint(E18, 5n * E18)),
      }
    : undefined;
  // The L1 price (own stream; l1Price.ts): a chain whose gas carries the L1 cost, in 40% of seeds.
  const l1Plan = drawL1Price(rng.fork("l1-price"), steps);
  // The fee model (own stream, drawn after every other: a seed without it runs as before): in 30%
  // of the seeds without an L1 price the chain is priced the legacy way (BSC's `feeModel`): every
  // sweep, cold move, cancel and replacement signed at eth_gasPrice (ChainView.gasPriceAt).
  const legacyFees = !l1Plan && rng.fork("fee-model").chance(0.3);
  // Finality by the node's `finalized` tag in 30% of the seeds, base-fee spikes in 40% (harness.ts;
  // their own streams): sweeps, cold moves and cancels signed for the old market wait until replaced.
  const tag = drawTagFinality(rng, finality);
  const spikes = drawFeeSpikes(rng);

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
        extra: {
          // Native sweeps are booked against the internal transfer the traces show.
          traces: true,
          tokens: [
            {
              address: TOKEN,
              symbol: "TT",
              decimals: 18,
              sweepThreshold: "1",
              ...(ceilings ? { hotCeiling: ceilings.tokenHotCeiling } : {}),
            },
          ],
          nativeSweepThreshold: "1",
          ...(ceilings ? { coldAddress: COLD, nativeHotCeiling: ceilings.nativeHotCeiling } : {}),
          sweepBatchSize,
          sweepIntervalMs: 200,
          bumpIntervalMs: 2000,
          ...(l1Plan ? { l1CostInGas: true } : {}),
          ...(legacyFees ? { feeModel: "legacy" } : {}),
          ...tag.entry,
        },
      });
      return [parseChain(simChain.entry)];
    },
  });
  const { primary: pA, fallback: pB, entry: chainEntry } = simChain as ProxiedSimChain;
  const anvilUrl = world.anvil.rpcUrl;
  const rpc: Rpc = anvilRpc(anvilUrl);
  const pool = world.db.pool;
  const chain = world.config.chains[0]!;
  const honest = parseChain({ ...chainEntry, rpcUrls: [anvilUrl] });
  const emulator = await startKmsEmulator({});
  let signer: SignerHost | undefined;
  let host: Awaited<ReturnType<typeof inProcessIngestor>> | undefined;
  let crediting: Awaited<ReturnType<typeof startCreditingWorker>> | undefined;
  let ledger: Ledger | undefined;
  const stats: Record<string, number | string> = {
    steps,
    confirmations,
    finality,
    child: useChild ? 1 : 0,
    cold: ceilings ? 1 : 0,
    l1: l1Plan ? 1 : 0,
    legacy: legacyFees ? 1 : 0,
    finality_tag: tag.stat,
    fee_spikes: 0,
    batch: sweepBatchSize,
    lost_rate: lostRate,
    deposits: 0,
    reorgs: 0,
    sweep_reorgs: 0,
    sweeper_kills: 0,
    signer_kills: 0,
    faults: 0,
    tick_errors: 0,
    sync_errors: 0,
  };
  try {
    const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
    const [deployer, , , , , , , funder, marker, sink] = accounts as Hex[];
    const senders = accounts.slice(1, 7);
    const kms = createKmsClient({ region: "us-east-1", endpoint: emulator.url });
    const created = await kms.send(
      new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
    );
    const keyId = created.KeyMetadata?.KeyId as string;
    const account = await createKmsAccount({
      kms,
      keyId,
      registry: world.common.metrics.registry,
    });
    const hot = account.address.toLowerCase() as Hex;

    // Setup, never reorged: the token handed out, the hot wallet funded by a real transaction and
    // the factory deployed from it (honest node: bad days are the schedule's business).
    await rpc("evm_setAutomine", [true]);
    const token = (
      await deploy(rpc, deployer as Hex, "TestToken", [10n ** 27n])
    ).toLowerCase() as Hex;
    if (token !== TOKEN) throw new Error(`token deployed at ${token}, not ${TOKEN}`);
    for (const s of senders)
      await rpc("eth_sendTransaction", [
        {
          from: deployer,
          to: token,
          data: call("TestToken", "transfer", [s, 10n ** 24n]),
          gas: hex(100_000n),
        },
      ]);
    const fundTx = await rpc<Hex>("eth_sendTransaction", [
      { from: funder, to: hot, value: hex(FUNDING) },
    ]);
    const honestAdapter = createEvmAdapter(honest, { common: world.common });
    const { contract: factory } = await deployForwarderFactory({
      common: world.common,
      pool,
      chain: honest,
      client: honestAdapter.client,
      account,
      sendRawTransaction: honestAdapter.sendRawTransaction,
    });
    await rpc("evm_setAutomine", [false]);
    const setupHead = BigInt(await rpc<Hex>("eth_blockNumber"));

    ledger = createLedger({ common: world.common, pool });
    await ledger.ensureAssetsFromConfig([chain]);
    // The operator books the funding (amount given: the indexer has not seen it yet).
    await bookTreasuryMove(
      { common: world.common, pool, ledger, signerTransactions },
      {
        move: "fund",
        chainId: CHAIN_ID,
        txHash: fundTx,
        wallet: hot,
        amount: FUNDING,
        by: "sim",
        reason: "sim: hot wallet float",
      },
    );
    const ETH = assetIdOf(CHAIN_ID, ZERO);
    const TT = assetIdOf(CHAIN_ID, TOKEN);

    const addresses: Hex[] = [];
    for (let c = 0; c < customers; c++) {
      const a = await allocateDepositAddress(
        { common: world.common, pool },
        { chainId: CHAIN_ID, customerId: `sim-${c}` },
      );
      addresses.push(a.address.toLowerCase() as Hex);
    }

    crediting = await startCreditingWorker({
      common: world.common,
      pool,
      queues: world.queues,
      ledger,
      chains: [chain],
      sweepIntervalMs: 3_600_000,
    });
    host = await inProcessIngestor({
      common: world.common,
      pool,
      chain,
      batchBlocks,
      rpcTimeoutMs: RPC_TIMEOUT_MS,
    });
    // The sweeper reads the chain through the same lying endpoints as everything else.
    const adapter = createEvmAdapter(
      chain,
      { common: world.common },
      { timeoutMs: RPC_TIMEOUT_MS },
    );
    const sweeperOn = (p: typeof pool, l: Ledger) =>
      createSweeper({
        common: world.common,
        pool: p,
        ledger: l,
        chains: [chain],
        // As the signer role's config names it: the simulated hot wallet is served.
        hotWallets: [{ chain: chain.key, kmsKeyId: keyId, address: account.address }],
        adapterFor: () => adapter,
        failedRetryAfterMs: 500,
        emptyRetryAfterMs: 500,
        // Not grown: a run converges in seconds, and no simulated token blacklists an address.
        emptyRetryMaxMs: 500,
      });
    const sweeper = sweeperOn(pool, ledger);

    signer = useChild
      ? await childSigner({
          world,
          seed,
          chainEntry,
          keyId,
          kmsUrl: emulator.url,
          logLevel: run.logLevel,
        })
      : (() => {
          const s = startWalletSigner({
            common: world.common,
            pool,
            queues: world.queues,
            chain,
            account: async () => account,
            databaseUrl: world.db.url,
            pollMs: 50,
          });
          return { stop: () => s.stop() };
        })();
    if (lostRate > 0) for (const p of [pA, pB]) p.setSendDrop(() => lostStream.next() < lostRate);
    // The L1 price's lies at both endpoints (one chain, one price).
    const l1: L1Price | undefined = l1Plan ? createL1Price(l1Plan, hot, trace) : undefined;
    if (l1)
      for (const p of [pA, pB]) {
        p.setSendIntercept(l1.intercept);
        p.setMethodLie("eth_estimateGas", l1.estimate);
      }

    const mine = async (n: number) => {
      for (let i = 0; i < n; i++) await rpc("evm_mine");
    };
    const sync = async () => {
      const outcome = await (host as NonNullable<typeof host>).sync();
      if (!outcome.ok) {
        stats.sync_errors = Number(stats.sync_errors) + 1;
        trace(`  sync error: ${outcome.error}`);
      }
    };
    const credit = async () => {
      try {
        await crediting?.sweepOnce();
      } catch (error) {
        notes.push(`crediting sweep failed: ${(error as Error).message}`);
      }
    };
    // A tick meets the lying endpoints: an error is a bad day, and the next tick owes the rest.
    const tick = async () => {
      try {
        const r = await sweeper.tick(CHAIN_ID);
        if (r.started.length > 0) trace(`  sweeps requested: ${r.started.length}`);
      } catch (error) {
        stats.tick_errors = Number(stats.tick_errors) + 1;
        trace(`  sweep tick error: ${(error as Error).message.slice(0, 160)}`);
      }
    };
    // The signer works asynchronously: a moment to act on what changed (the end polls with deadlines).
    const settleTick = () => new Promise((r) => setTimeout(r, rng.int(50, 250)));
    const faults = endpointFaults({
      primary: pA,
      fallback: pB,
      anvilUrl,
      rng,
      faultStream,
      finality,
      trace,
    });

    const deposit = async () => {
      const to = rng.pick(addresses);
      const from = rng.pick(senders);
      const kind = rng.chance(0.55) ? "native" : "erc20";
      const amount = rng.bigint(10n ** 14n, 2n * E18);
      await rpc<Hex>(
        "eth_sendTransaction",
        kind === "native"
          ? [{ from, to, value: hex(amount) }]
          : [
              {
                from,
                to: token,
                data: call("TestToken", "transfer", [to, amount]),
                gas: hex(100_000n),
              },
            ],
      );
      stats.deposits = Number(stats.deposits) + 1;
    };

    /**
     * The block a reorg aims at: a booked sweep's not final yet (its booking must be reversed),
     * else the newest above finality holding one of the hot wallet's transactions.
     */
    const sweepBlock = async (head: bigint): Promise<bigint | undefined> => {
      const lowest = head - BigInt(finality - 1) + 1n;
      const { rows } = await pool.query<{ tx_hash: string }>(
        "SELECT tx_hash FROM custody.sweeps WHERE status = 'booked' AND final_at IS NULL ORDER BY settled_at DESC",
      );
      for (const r of rows) {
        const receipt = await rpc<{ blockNumber: Hex } | null>("eth_getTransactionReceipt", [
          r.tx_hash,
        ]);
        if (
          receipt &&
          BigInt(receipt.blockNumber) >= lowest &&
          BigInt(receipt.blockNumber) > setupHead
        )
          return BigInt(receipt.blockNumber);
      }
      for (let n = head; n >= lowest && n > setupHead; n--) {
        const block = await rpc<{ transactions: { from: string }[] }>("eth_getBlockByNumber", [
          hex(n),
          true,
        ]);
        if (block.transactions.some((t) => t.from.toLowerCase() === hot)) return n;
      }
      return undefined;
    };
    const reorg = async () => {
      const head = BigInt(await rpc<Hex>("eth_blockNumber"));
      const room = Number(head - setupHead);
      if (room < 1) return;
      // Above finality only (a reorg of a final block halts the chain: the deposits scenario's case).
      const most = Math.min(Math.max(1, finality - 1), room);
      let depth = rng.int(1, most);
      const aimed = rng.chance(0.7) ? await sweepBlock(head) : undefined;
      if (aimed !== undefined) depth = Math.max(depth, Number(head - aimed) + 1);
      depth = Math.min(depth, most);
      const outcome = await injectReorg(rpc, {
        depth,
        extend: rng.int(0, 2),
        method: rng.chance(0.7) ? "reorg" : "rollback",
        marker: { from: marker as Hex, to: sink as Hex },
        // The hot wallet's transactions can only be re-mined as they are or dropped (no key here).
        // Drawn from their own stream: how many of the signer's transactions a range holds depends
        // on its timing, and must not shift the schedule.
        fate: () => (fateStream.chance(0.6) ? "same" : "drop"),
      });
      stats.reorgs = Number(stats.reorgs) + 1;
      if (aimed !== undefined) stats.sweep_reorgs = Number(stats.sweep_reorgs) + 1;
      trace(
        `  reorg depth ${outcome.depth}${aimed !== undefined ? ` (aimed at the hot wallet's block ${aimed})` : ""}: kept ${outcome.kept.length}, dropped ${outcome.dropped.length}`,
      );
    };
    // kill -9 of a sweeper mid-tick: a second sweeper on its own connections, which are terminated
    // at a random instant of its tick (what Postgres sees of a killed process: every open
    // transaction rolled back).
    const killSweeper = async () => {
      const name = `${world.db.name}_doomed_sweeper`;
      const doomedPool = createPool(world.db.url, { max: 4, applicationName: name });
      const doomedLedger = createLedger({ common: world.common, pool: doomedPool });
      const after = rng.int(0, 150);
      const ticking = sweeperOn(doomedPool, doomedLedger)
        .tick(CHAIN_ID)
        .then(
          () => "finished",
          (error: Error) => `died: ${error.message.slice(0, 80)}`,
        );
      await new Promise((r) => setTimeout(r, after));
      await pool.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        [name],
      );
      const ended = await ticking;
      await doomedLedger.close().catch(() => {});
      await doomedPool.end().catch(() => {});
      stats.sweeper_kills = Number(stats.sweeper_kills) + 1;
      trace(`  sweeper killed after ${after} ms: its tick ${ended}`);
    };

    for (let step = 0; step < steps; step++) {
      l1?.atStep(step);
      if (await spikes.atStep(rpc, step, trace)) stats.fee_spikes = Number(stats.fee_spikes) + 1;
      const action = rng.weighted({
        deposit: 5,
        mine: 3,
        faults: 2,
        reorg: 1.5,
        killSweeper: 0.8,
        killSigner: useChild ? 0.6 : 0,
      });
      trace(`step ${step}: ${action}`);
      switch (action) {
        case "deposit":
          for (let i = rng.int(1, 3); i > 0; i--) await deposit();
          await mine(rng.int(1, 2));
          break;
        case "mine":
          await mine(rng.int(1, 3));
          break;
        case "faults":
          stats.faults = Number(stats.faults) + 1;
          faults.change();
          break;
        case "reorg":
          await reorg();
          break;
        case "killSweeper":
          await killSweeper();
          break;
        case "killSigner":
          await settleTick();
          await signer.kill?.();
          stats.signer_kills = Number(stats.signer_kills) + 1;
          break;
      }
      for (let i = rng.int(1, 2); i > 0; i--) await sync();
      await credit();
      await tick();
      await settleTick();
    }

    // Settle: honest endpoints; mine until indexed to the head, every deposit credited, and no
    // sweep open or booked but not final.
    faults.clear();
    for (const p of [pA, pB]) p.setSendDrop(null);
    // The L1 price settles below its peak and stays: the chain still charges it as gas.
    l1?.settle();
    await mine(finality + 2);
    const deadline = Date.now() + 120_000;
    let settled = false;
    while (Date.now() < deadline) {
      await mine(1);
      await sync();
      await credit();
      await tick();
      await new Promise((r) => setTimeout(r, 100));
      const head = await rpc<{ number: Hex; hash: Hex }>("eth_getBlockByNumber", ["latest", false]);
      const { rows } = await pool.query<{ tip: string | null; hash: string | null; owed: number }>(
        `SELECT (SELECT block_number::text FROM chain.checkpoints WHERE chain_id = $1) AS tip,
                (SELECT block_hash FROM chain.checkpoints WHERE chain_id = $1) AS hash,
                (SELECT count(*)::int FROM custody.sweeps
                  WHERE chain_id = $1 AND (status = 'open' OR (status = 'booked' AND final_at IS NULL)))
                + (SELECT count(*)::int FROM custody.cold_moves
                  WHERE chain_id = $1 AND (status = 'open' OR (status = 'booked' AND final_at IS NULL))) AS owed`,
        [CHAIN_ID],
      );
      const r = rows[0];
      if (
        r?.tip !== null &&
        r?.tip !== undefined &&
        BigInt(r.tip) === BigInt(head.number) &&
        r.hash === head.hash.toLowerCase() &&
        r.owed === 0
      ) {
        settled = true;
        break;
      }
    }
    if (!settled) {
      const { rows } = await pool.query<{ status: string; final: boolean; n: number }>(
        `SELECT status, final_at IS NOT NULL AS final, count(*)::int AS n FROM custody.sweeps
          GROUP BY 1, 2 ORDER BY 1, 2`,
      );
      // The owed sweeps' requests as the signer left them, and their history, for the replay.
      const { rows: owed } = await pool.query<{
        id: string;
        status: string;
        review_reason: string | null;
        nonce: string | null;
      }>(
        `SELECT r.id, r.status, r.review_reason, r.nonce::text FROM custody.tx_requests r
           JOIN custody.sweeps s ON s.id = r.id
          WHERE s.status = 'open' OR (s.status = 'booked' AND s.final_at IS NULL)`,
      );
      fail(
        "settle",
        `120 s after the faults cleared, sweeps are still owed or the index is behind: ${JSON.stringify(rows)}; requests ${JSON.stringify(owed)}`,
      );
      for (const r of owed) {
        const { rows: events } = await pool.query<{
          at: string;
          event: string;
          to: string;
          reason: string | null;
          details: unknown;
        }>(
          `SELECT to_char(created_at, 'HH24:MI:SS.MS') AS at, event, to_status AS to, reason, details
             FROM custody.tx_request_events WHERE request_id = $1 ORDER BY id`,
          [r.id],
        );
        for (const e of events)
          trace(
            `  ${r.id} ${e.at} ${e.event} -> ${e.to}${e.reason ? ` (${e.reason})` : ""} ${JSON.stringify(e.details)}`,
          );
        const { rows: attempts } = await pool.query<{
          nonce: string;
          status: string;
          hash: string;
          purpose: string;
        }>(
          "SELECT nonce::text, status, tx_hash AS hash, purpose FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
          [r.id],
        );
        for (const a of attempts)
          trace(`  ${r.id} attempt nonce ${a.nonce} ${a.purpose} ${a.status} ${a.hash}`);
      }
    }
    // Bury what settled so the reconciliation block is past it, and credit what that confirms.
    await mine(finality + 1);
    await sync();
    await credit();

    // Invariant: stop() returns.
    let stopTimer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      signer.stop().then(() => true),
      new Promise<false>((r) => {
        stopTimer = setTimeout(() => r(false), 15_000);
      }),
    ]).finally(() => clearTimeout(stopTimer));
    signer = undefined;
    if (!stopped) fail("stop", "the signer's stop() did not return within 15 s");

    if (options.sabotage === "double-sweep") {
      // A second booking of one booked sweep's (address, asset), under another id.
      const { rows } = await pool.query<{
        sweep_id: string;
        hot_wallet: string;
        address: string;
        asset: string;
        swept: bigint;
      }>(
        `SELECT i.sweep_id, s.hot_wallet, i.address, i.asset, i.swept
           FROM custody.sweep_items i JOIN custody.sweeps s ON s.id = i.sweep_id
          WHERE s.status = 'booked' AND i.swept > 0 ORDER BY s.settled_at LIMIT 1`,
      );
      const item = rows[0];
      if (item)
        await ledger.createTransfers([
          sweepTransfer({
            chainId: CHAIN_ID,
            sweepId: item.sweep_id,
            hotWallet: item.hot_wallet,
            address: item.address,
            asset: item.asset,
            amount: item.swept,
            chainRef: undefined,
            generation: 99,
          }),
        ]);
    }

    if (options.sabotage === "reverted-send") {
      // A send of the hot wallet the factory refuses (no such function): mined, reverted, its gas
      // spent.
      await rpc("anvil_impersonateAccount", [hot]);
      const hash = await sendTx(rpc, {
        from: hot,
        to: factory.address,
        data: "0xdeadbeef",
        gas: 100_000n,
      });
      await rpc("evm_mine");
      await receipt(rpc, hash);
      await rpc("anvil_stopImpersonatingAccount", [hot]);
    }

    // What the final chain holds.
    const tokenBalance = async (holder: Hex) =>
      BigInt(
        await rpc<Hex>("eth_call", [
          { to: token, data: call("TestToken", "balanceOf", [holder]) },
          "latest",
        ]),
      );
    const nativeBalance = async (holder: Hex) =>
      BigInt(await rpc<Hex>("eth_getBalance", [holder, "latest"]));
    const onDeposits = new Map<string, bigint>([
      [ETH, 0n],
      [TT, 0n],
    ]);
    for (const a of addresses) {
      onDeposits.set(ETH, (onDeposits.get(ETH) ?? 0n) + (await nativeBalance(a)));
      onDeposits.set(TT, (onDeposits.get(TT) ?? 0n) + (await tokenBalance(a)));
    }
    const onHot = new Map([
      [ETH, await nativeBalance(hot)],
      [TT, await tokenBalance(hot)],
    ]);
    const onCold = new Map([
      [ETH, await nativeBalance(COLD)],
      [TT, await tokenBalance(COLD)],
    ]);

    // Standing sweep bookings (not reversed), per sweep transaction and asset. A booking names its
    // fact when it found one; its memo always names its sweep, whose row has the transaction.
    const { rows: standing } = await pool.query<{
      tx_hash: string | null;
      asset_id: string;
      amount: bigint;
    }>(
      `SELECT coalesce(t.tx_hash, s.tx_hash) AS tx_hash, t.asset_id, sum(t.amount) AS amount
         FROM ledger.transfers t
         LEFT JOIN custody.sweeps s ON s.id = substring(t.memo from '^sweep (\\S+) from ')
        WHERE t.kind = 'sweep'
          AND NOT EXISTS (SELECT 1 FROM ledger.transfers r WHERE r.reverses_id = t.id)
        GROUP BY 1, 2`,
    );
    const swept = new Map<string, bigint>();
    for (const s of standing) swept.set(s.asset_id, (swept.get(s.asset_id) ?? 0n) + s.amount);
    stats.swept_eth = String(swept.get(ETH) ?? 0n);
    stats.swept_tt = String(swept.get(TT) ?? 0n);
    stats.cold_eth = String(onCold.get(ETH) ?? 0n);
    stats.cold_tt = String(onCold.get(TT) ?? 0n);

    // Invariants: balances and credited-value.
    for (const [assetId, label] of [
      [ETH, "ETH"],
      [TT, "TT"],
    ] as const) {
      const deposits = await custodyBalance(ledger, assetId, "custody:deposits");
      const hotBooked = await custodyBalance(ledger, assetId, hotAccount(hot));
      if (deposits.posted !== onDeposits.get(assetId))
        fail(
          "balances",
          `${label}: custody:deposits is ${deposits.posted}, the deposit addresses hold ${onDeposits.get(assetId)}`,
        );
      if (hotBooked.posted !== onHot.get(assetId))
        fail(
          "balances",
          `${label}: ${hotAccount(hot)} is ${hotBooked.posted}, the hot wallet holds ${onHot.get(assetId)}`,
        );
      const coldBooked = await custodyBalance(ledger, assetId, coldAccount(COLD));
      if (coldBooked.posted !== onCold.get(assetId))
        fail(
          "balances",
          `${label}: ${coldAccount(COLD)} is ${coldBooked.posted}, the cold address holds ${onCold.get(assetId)}`,
        );
      if (deposits.pending !== 0n || hotBooked.pending !== 0n || coldBooked.pending !== 0n)
        fail(
          "balances",
          `${label}: pending left after finality (deposits ${deposits.pending}, hot ${hotBooked.pending}, cold ${coldBooked.pending})`,
        );
      let credited = 0n;
      for (let c = 0; c < customers; c++)
        credited += (await ledger.getAccount({ assetId, name: `user:sim-${c}` }))?.available ?? 0n;
      const held = (onDeposits.get(assetId) ?? 0n) + (swept.get(assetId) ?? 0n);
      if (credited !== held)
        fail(
          "credited-value",
          `${label}: customers hold ${credited}, their addresses hold ${onDeposits.get(assetId)} and the ledger booked ${swept.get(assetId) ?? 0n} swept`,
        );
    }

    // Invariant: no-revert (and the count, reverted_sends). Nothing in the scenario makes a send
    // of the hot wallet revert: one that did spent its gas for nothing. A gas limit estimated on a
    // syncing node's old state made sweeps revert every pass (before af29067: seeds 424002,
    // 424008); a sweep whose address received a token between its estimate and its inclusion ran
    // out of gas under the 20% margin (before f6d1543: seed 444005, now and then, when it was a
    // count only).
    stats.reverted_sends = 0;
    for (let n = 0n; n <= BigInt(await rpc<Hex>("eth_blockNumber")); n++) {
      const receipts = await rpc<{ from: Hex; status: Hex; transactionHash: Hex; gasUsed: Hex }[]>(
        "eth_getBlockReceipts",
        [toHex(n)],
      );
      for (const r of receipts ?? [])
        if (r.from.toLowerCase() === hot && r.status !== "0x1") {
          stats.reverted_sends = Number(stats.reverted_sends) + 1;
          const send = await sendSummary(pool, r.transactionHash);
          fail("no-revert", `the hot wallet's ${r.transactionHash} (block ${n}, ${send}) reverted`);
          trace(
            `  reverted: the hot wallet's ${r.transactionHash} (block ${n}, ${send}, gas used ${BigInt(r.gasUsed)}); its sends around it:`,
          );
          for (const line of await sendsAround(pool, rpc, hot, r.transactionHash))
            trace(`    ${line}`);
        }
    }

    // Invariants: no-double-sweep and canonical, against the Swept events of the final chain.
    const { rows: booked } = await pool.query<{ id: string; tx_hash: string; final: boolean }>(
      `SELECT id, tx_hash, final_at IS NOT NULL AS final FROM custody.sweeps
        WHERE chain_id = $1 AND status = 'booked'`,
      [CHAIN_ID],
    );
    const bookedTxs = new Map<string, string>();
    for (const b of booked) {
      const other = bookedTxs.get(b.tx_hash);
      if (other)
        fail("no-double-sweep", `sweeps ${other} and ${b.id} are booked on one tx ${b.tx_hash}`);
      bookedTxs.set(b.tx_hash, b.id);
      if (!b.final) fail("canonical", `sweep ${b.id} is booked but not final`);
      const receipt = await rpc<{ status: Hex; blockNumber: Hex; blockHash: Hex } | null>(
        "eth_getTransactionReceipt",
        [b.tx_hash],
      );
      const block = receipt
        ? await rpc<{ hash: Hex } | null>("eth_getBlockByNumber", [receipt.blockNumber, false])
        : null;
      if (!receipt || block?.hash !== receipt.blockHash || receipt.status !== "0x1")
        fail(
          "canonical",
          `sweep ${b.id} is booked on ${b.tx_hash}, which the final chain ${receipt ? `has ${receipt.status === "0x1" ? "in another block" : "reverted"}` : "does not have"}`,
        );
    }
    const head = await rpc<Hex>("eth_blockNumber");
    const logs = await rpc<Parameters<typeof parseEventLogs>[0]["logs"]>("eth_getLogs", [
      { address: factory.address, fromBlock: "0x0", toBlock: head },
    ]);
    const events = parseEventLogs({
      abi: forwarderFactory.abi,
      logs,
      eventName: "Swept",
    }) as unknown as {
      transactionHash: Hex;
      args: { token: Address; amount: bigint };
    }[];
    const onChainSwept = new Map<string, bigint>();
    for (const e of events) {
      // What the hot wallet received: the Swept amount (a plain token takes no fee on transfer).
      const key: string = `${e.transactionHash.toLowerCase()}|${assetIdOf(CHAIN_ID, e.args.token)}`;
      onChainSwept.set(key, (onChainSwept.get(key) ?? 0n) + e.args.amount);
    }
    const bookedSwept = new Map<string, bigint>(
      standing.map((s) => [
        `${s.tx_hash?.toLowerCase() ?? "(no transaction)"}|${s.asset_id}`,
        s.amount,
      ]),
    );
    for (const key of new Set([...onChainSwept.keys(), ...bookedSwept.keys()])) {
      const chainAmount = onChainSwept.get(key) ?? 0n;
      const ledgerAmount = bookedSwept.get(key) ?? 0n;
      if (chainAmount !== ledgerAmount)
        fail(
          "no-double-sweep",
          `sweep tx|asset ${key}: the final chain's Swept events moved ${chainAmount}, the ledger books ${ledgerAmount}${ledgerAmount > chainAmount ? (chainAmount === 0n ? " (booked, not on the chain)" : " (booked twice)") : " (not booked)"}`,
        );
    }
    stats.sweeps_booked = booked.length;
    // How often the schedule really took a booked sweep out (its booking reversed) or a sent one.
    const { rows: unbooked } = await pool.query<{ n: number }>(
      "SELECT count(DISTINCT reverses_id)::int AS n FROM ledger.transfers WHERE kind = 'compensation' AND memo LIKE 'sweep %'",
    );
    stats.sweeps_unbooked = unbooked[0]?.n ?? 0;
    stats.sweep_txs_on_chain = new Set(events.map((e) => e.transactionHash)).size;
    if (l1) {
      const l1Stats = l1.stats();
      stats.l1_peak = String(l1Stats.peak);
      stats.l1_refused = l1Stats.refusedPayments;
      stats.l1_cancels_refused = l1Stats.refusedCancels;
      stats.surge = l1Stats.surge;
    }

    // Invariant: the planner's running balances agree with history.
    const { drift } = await sweepableDrift(pool);
    for (const d of drift.slice(0, 3))
      fail("sweepable", `${d.address} ${d.asset}: running ${d.running}, history ${d.history}`);

    // Invariant: nonces contiguous (the factory deploy took one outside the signer).
    const mined = BigInt(await rpc<Hex>("eth_getTransactionCount", [hot, "latest"]));
    const { rows: nonceRows } = await pool.query<{ max: string | null }>(
      "SELECT max(nonce)::text AS max FROM custody.tx_attempts WHERE chain_id = $1 AND lower(from_address) = $2",
      [CHAIN_ID, hot],
    );
    const deployNonce = 0n;
    const highest =
      nonceRows[0]?.max === null || nonceRows[0]?.max === undefined
        ? deployNonce
        : BigInt(nonceRows[0].max);
    if (highest + 1n !== mined)
      fail(
        "nonces",
        `the signer used nonces up to ${highest}, the chain consumed ${mined}: ${highest + 1n > mined ? "a gap the wallet cannot pass" : "nonces used outside the signer"}`,
      );
    const outcomes = await getTxOutcomes(pool, {
      requestIds: (await pool.query<{ id: string }>("SELECT id FROM custody.sweeps")).rows.map(
        (r) => r.id,
      ),
    });
    const byStatus = new Map<string, number>();
    for (const o of outcomes) byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
    stats.sweep_txs_reorged = outcomes.filter((o) => o.reorgs > 0).length;
    stats.outcomes = [...byStatus].map(([s, n]) => `${s}:${n}`).join(",");

    // Invariant: the ledger's own check.
    const check = await ledger.check();
    for (const p of check.problems.slice(0, 3))
      fail(
        "ledger-check",
        JSON.stringify(p, (_, v) => (typeof v === "bigint" ? String(v) : v)),
      );

    // Invariant: reconciliation at the final block reports nothing.
    const reconciler = createReconciler({
      sweeps: sweepReader,
      common: world.common,
      pool,
      chains: adapterPerChain(world.common, () => honestAdapter),
    });
    const summary = await reconciler.run({ chain: honest, full: true });
    for (const b of summary.breaks.slice(0, 5))
      fail(
        "reconciliation",
        `break ${b.type} ${b.key} (${b.assetId}): chain ${b.chainAmount}, ledger ${b.ledgerAmount}`,
      );
    stats.breaks = summary.breaks.length;
    stats.requests = pA.requests() + pB.requests();
    stats.sends_lost = (pA.stats().send_dropped ?? 0) + (pB.stats().send_dropped ?? 0);
    stats.receipts_withheld = (pA.stats().null_receipts ?? 0) + (pB.stats().null_receipts ?? 0);
  } catch (error) {
    fail("scenario", `the scenario itself failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await signer?.stop().catch(() => {});
    await host?.stop().catch(() => {});
    await crediting?.stop().catch(() => {});
    await ledger?.close().catch(() => {});
    await pA.close();
    await pB.close();
    await emulator.stop().catch(() => {});
    const keep = violations.length > 0 && options.keepOnFailure === true;
    await world.close({ keep });
    if (keep) notes.push(`database kept: ${world.db.name}`);
  }
  return { seed, violations, stats, notes, ms: performance.now() - started };
}

export const sweepsScenario: Scenario = {
  name: "sweeps",
  description:
    "deposits credited and swept through the signer on a lying chain: faults, lost sends, reorgs of sweeps, kill -9 of sweeper and signer",
  run: runSweeps,
};
