/**
 * Scenario `withdrawals`: the withdrawal service (api/withdrawals: policy, holds, outcomes) and the
 * real signer (KMS emulator behind a KMS fault proxy, in process or a child process killed with
 * SIGKILL) on one anvil behind the lying chain. A seeded schedule creates native withdrawals,
 * mines, withholds receipts on one or both endpoints, makes load-balanced backends disagree, lags
 * the primary or the fallback endpoint, loses
 * acknowledged sends (half the seeds, own random stream), fails KMS signing calls, injects reorgs
 * above finality that re-mine or drop the hot wallet's transactions (a confirmed withdrawal
 * reorged out), and kills the signer. After the faults clear
 * and the chain settles past finality it checks:
 *  - paid-once: every accepted withdrawal paid exactly once on the final chain (its destination is
 *    fresh and holds exactly its amount), and it ends `finalized`;
 *  - nonces: the hot wallet's mined nonces are contiguous and the signer used no nonce the chain
 *    did not consume (no gap that wedges the wallet);
 *  - holds: no hold released while its tx could still mine: each customer's available balance =
 *    funding - what the final chain paid them out;
 *  - keeps-sending: a withdrawal created after every fault confirms and finalizes;
 *  - stop: the signer's stop() returns within 15 s;
 *  - dead (30% of seeds, own random stream): one withdrawal every endpoint refuses for good, and
 *    either its first cancel's KMS Sign fails once (heals by backoff) or every cancel is refused
 *    (needs_review, then the sim fails it as the operator, who first checks on the chain that
 *    none of its attempts mined: operator.ts): it is paid 0 times, ends `failed`
 *    (by the operator only when unsendable), exactly one of its cancels is in a final block, and
 *    its hold stands until it has failed (the operator's failure is a cancel: the withdrawal goes
 *    back to `broadcast`, hold standing, until the cancel's block is final);
 *  - late-send (half the unsendable seeds): right after the operator's failure, one of the dead
 *    withdrawal's refused sends mines after all (a node passed the bytes on); the service must
 *    follow it: paid exactly once, `finalized`, hold posted (never released), no cancel final,
 *    and an `operator_fail_overridden` event on its request.
 *  - deploy (40% of seeds, own random stream `deploy`; not with an unsendable dead withdrawal, whose
 *    nonce keeps the wallet busy until the operator): at a seeded step the operator waits until the
 *    wallet has nothing unmined, stops the signer, runs the CLI's deploy sender
 *    (signer/storedDeploy.ts) for a tiny contract from the hot wallet and kills it after storing
 *    its bytes (`after_commit`) or after sending them (`after_send`: the node then drops them once
 *    the signer is back), and starts the signer again while withdrawals keep coming. The deploy's
 *    stored transaction (or its replacement at the nonce, re-signed by the signer when priced out:
 *    refused as underpriced, or unmined past the bump interval) must be in a final block, its contract at getContractAddress(hot, nonce),
 *    and no withdrawal request or attempt may hold its nonce (signer/broadcaster/gaps.ts).
 *  - tokens (half the seeds, own random stream `tokens`): a listed ERC-20 is withdrawn too, from
 *    the fourth withdrawal on; half its destinations hold a little of it first, and each of those
 *    may send that on (mined at once, before what the signer has waiting) while its withdrawal
 *    waits: the withdrawal then writes its recipient's balance from 0 (17,100 gas more than its
 *    estimate saw; before f6d1543 it ran out of gas and failed). paid-once and holds count the
 *    token as they count the native asset (paid = what the destination holds less what it kept).
 *  - l1-gas (40% of seeds, own random stream `l1-price`): the chain charges the L1 cost as gas
 *    (`l1CostInGas`), at a price that walks, spikes and, in half of those seeds, surges past every
 *    estimate until a nonce has run out of re-estimates (l1Price.ts: every estimate carries it, and
 *    the endpoints refuse a payment or cancel below intrinsic gas + the price "intrinsic gas too
 *    low"). A withdrawal fails for gas only after MAX_REGAS + 1 of its payments were refused so,
 *    all before its first cancel (then: paid 0 times, failed CANCELLED by one final cancel, hold
 *    released); within one bump interval a nonce signs at most MAX_REGAS + 1 payments refused for
 *    gas; every mined payment or cancel covered intrinsic gas + the price it was accepted at.
 *  - tag finality (30% of the seeds, own random stream `finality-tag`): the chain's finality rule
 *    is the node's `finalized` tag (anvil's head less two epochs, at least as deep as the drawn
 *    block rule), which each lying endpoint answers as its view does.
 *  - fee spikes (40% of the seeds, own random stream `fee-spikes`): a quarter of the steps set the
 *    next block's base fee to 1..60 gwei (then it decays): sends signed for the old market wait
 *    until replaced at the new one; every invariant above holds.
 *  - legacy fees (30% of the seeds without an L1 price, own random stream `fee-model`): the chain
 *    is priced the legacy way (BSC): every payment, cancel, replacement and the CLI deploy is signed
 *    at eth_gasPrice, which a lagging endpoint answers from its own old blocks; every invariant
 *    above holds as on an EIP-1559 chain.
 */

import { CreateKeyCommand } from "@aws-sdk/client-kms";
import {
  createPublicClient,
  encodeDeployData,
  encodeFunctionData,
  getAddress,
  getContractAddress,
  type Hex,
  http,
  keccak256,
  parseEther,
  parseTransaction,
  serializeTransaction,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createApiKey } from "../../api/apiKeys.js";
import { withdrawalTransferIds } from "../../api/withdrawals/holds.js";
import { createWithdrawals } from "../../api/withdrawals/service.js";
import { getWithdrawal } from "../../api/withdrawals/store.js";
import { testToken } from "../../chains/contracts/index.js";
import { injectReorg } from "../../chains/testing/lyingChain/reorg.js";
import { withTransaction } from "../../foundation/db.js";
import { BaseError } from "../../foundation/errors.js";
import { anvilRpc, type Rpc, watch } from "../../indexers/testing/chain.js";
import { assetIdOf, createLedger, transferId } from "../../ledger/index.js";
import { MAX_REGAS } from "../../signer/broadcaster/regas.js";
import {
  createKmsAccount,
  createKmsClient,
  type KmsAccount,
  startKmsEmulator,
  startWalletSigner,
  type WalletSigner,
} from "../../signer/index.js";
import { killedDeploy, TINY_CONTRACT } from "../../signer/testing/killedDeploy.js";
import { type KmsProxy, startKmsProxy } from "../../signer/testing/kmsProxy.js";
import {
  createSimWorld,
  drawFeeSpikes,
  drawTagFinality,
  type ProxiedSimChain,
  parseChain,
  proxiedSimChain,
  type SimRun,
} from "./harness.js";
import { createL1Price, drawL1Price, type L1Price } from "./l1Price.js";
import { minedOnChain } from "./operator.js";
import { createRandom } from "./random.js";
import {
  type Scenario,
  type ScenarioOptions,
  type SimResult,
  type Violation,
  waitFor,
} from "./scenario.js";
import { childSigner, type SignerHost } from "./signerHost.js";

const CHAIN_ID = 31337;
const ZERO = "0x0000000000000000000000000000000000000000";
const HANG_MS = 1500;

type Accepted = {
  id: string;
  /** Its place among the scenario's withdrawals (its destination's). */
  index: number;
  owner: string;
  to: Hex;
  amount: bigint;
  /** A token withdrawal's plan (token seeds); native otherwise. */
  token?: TokenPlan;
};

/**
 * A token withdrawal's destination (token seeds): some hold a little of the token before it (the
 * estimate writes their balance from non-zero) and may be emptied while it waits unmined (an
 * exchange's deposit address swept): written from 0 at inclusion, 17,100 more gas.
 */
type TokenPlan = { prefund: bigint; drained: boolean; drainTx?: Hex };

/** The sim's listed token: a fresh deployer's first contract, so its address is known up front. */
const TOKEN_DEPLOYER = "0x7e57000000000000000000000000000000000d01" as Hex;
const SIM_TOKEN = getContractAddress({ from: TOKEN_DEPLOYER, nonce: 0n }).toLowerCase() as Hex;
/** What a token seed's prefunded destination holds before its withdrawal. */
const PREFUND = 1_000n;
const tokenCall = (functionName: "mint" | "transfer" | "balanceOf", args: unknown[]): Hex =>
  encodeFunctionData({ abi: testToken.abi, functionName, args } as Parameters<
    typeof encodeFunctionData
  >[0]);

/** A fresh destination per withdrawal, so "paid exactly once" is its balance. */
function destination(seed: number, i: number): Hex {
  return `0xd0${(seed % 0xffff).toString(16).padStart(4, "0")}${i.toString(16).padStart(4, "0")}${"0".repeat(29)}1` as Hex;
}

/** A token seed's prefunded destination: a key of the sim's, so it can empty itself. */
function drainable(seed: number, i: number) {
  return privateKeyToAccount(keccak256(toHex(`sim-withdrawals-drain-${seed}-${i}`)));
}

export async function runWithdrawals(
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
  const finality = confirmations + rng.int(1, 3);
  const customers = rng.int(2, 3);
  const steps = rng.int(20, 30);
  const useChild = rng.chance(0.35);
  const faultStream = rng.fork("primary-faults");
  const sendStream = rng.fork("send-faults");
  const fateStream = rng.fork("reorg-fates");
  // A dead withdrawal (its own stream: the main schedule and the other faults stay as they were).
  // One withdrawal's every send is refused for good by both endpoints (a class the signer treats
  // as dead: it cancels the nonce); then either the first cancel's KMS Sign fails once (it must
  // heal by backoff: the withdrawal fails once the cancel is final) or every cancel is refused
  // too (unsendable: needs_review after a bounded number of cancels, then the operator fails it).
  const deadStream = rng.fork("dead-withdrawal");
  const dead: "none" | "cancel_kms" | "cancel_unsendable" = deadStream.chance(0.3)
    ? deadStream.chance(0.5)
      ? "cancel_kms"
      : "cancel_unsendable"
    : "none";
  const deadIndex = deadStream.int(0, 2);
  // Lost sends (their own stream, so the schedule above stays as it was): in half the seeds both
  // endpoints answer a share of eth_sendRawTransaction with the hash and never pass it on, from
  // the start until the faults clear. The lowest lost nonce freezes the wallet until the stall
  // stage resends its bytes (well before the bump interval).
  const lostStream = rng.fork("lost-sends");
  const lostRate = lostStream.chance(0.5) ? lostStream.int(10, 40) / 100 : 0;
  const deadMessages = ["intrinsic gas too low", "exceeds block gas limit", "execution reverted"];
  const deadMessage = deadStream.pick(deadMessages);
  const cancelMessage = deadStream.pick(deadMessages);
  // After the operator fails it, one of its refused sends mines first (its bytes passed on).
  const lateSend = dead === "cancel_unsendable" && deadStream.chance(0.5);
  // A CLI deploy from the hot wallet killed mid-way (its own stream, drawn after every other: the
  // schedule and the faults above stay as they were; a seed without it runs exactly as before).
  // Not beside an unsendable dead withdrawal: its nonce stays unmined until the operator fails it
  // in the settle, and the CLI refuses to deploy while a signer transaction is unmined.
  const deployStream = rng.fork("deploy");
  const drawnDeploy = deployStream.chance(0.4)
    ? deployStream.pick(["after_commit", "after_send"] as const)
    : "none";
  const deployStep = deployStream.int(2, steps - 6);
  const deploy = dead === "cancel_unsendable" ? "none" : drawnDeploy;
  // Token withdrawals (their own stream, drawn after every other: a seed without them runs as
  // before): in half the seeds a listed ERC-20 is withdrawn too, from the fourth withdrawal on
  // (the dead one and the sabotaged one stay native). Half their destinations hold a little of
  // it first, and each of those may be emptied while its withdrawal waits (after any step).
  const tokenStream = rng.fork("tokens");
  const withTokens = tokenStream.chance(0.5);
  const tokenPlans: (TokenPlan | undefined)[] = Array.from({ length: 200 }, (_, i) =>
    withTokens && i > 2 && tokenStream.chance(0.5)
      ? { prefund: tokenStream.chance(0.5) ? PREFUND : 0n, drained: false }
      : undefined,
  );
  // The L1 price (its own stream, drawn after every other: the schedule and the faults above stay
  // as they were; a seed without it runs exactly as before): in 40% of seeds the chain charges the
  // L1 cost as gas (`l1CostInGas`, Arbitrum), at a price that walks, spikes and sometimes surges
  // past every estimate (l1Price.ts). The dead withdrawal keeps its drawn refusal there too: an
  // "intrinsic gas too low" refusal of it is then re-estimated MAX_REGAS times (every version
  // refused again) before its nonce is cancelled, and the dead invariants count those refusals.
  const l1Plan = drawL1Price(rng.fork("l1-price"), steps);
  // The fee model (its own stream, drawn after every other: a seed without it runs as before): in
  // 30% of the seeds without an L1 price the chain is priced the legacy way (BSC's `feeModel`):
  // every payment, cancel, replacement and the CLI deploy signed at eth_gasPrice, which names no
  // block (a lagging endpoint answers from its own old blocks: ChainView.gasPriceAt).
  const legacyFees = !l1Plan && rng.fork("fee-model").chance(0.3);
  // Finality by the node's `finalized` tag in 30% of the seeds, base-fee spikes in 40% (harness.ts;
  // their own streams): cancels must outbid a send and the new market both.
  const tag = drawTagFinality(rng, finality);
  const spikes = drawFeeSpikes(rng);

  let simChain: ProxiedSimChain | undefined;
  const world = await createSimWorld(run, {
    chainId: CHAIN_ID,
    anvilArgs: tag.anvilArgs,
    // Every withdrawal is approved automatically: approvals are not what this scenario is about.
    policies: {
      withdrawals: {
        limits: {
          [`${CHAIN_ID}:${ZERO}`]: {
            perTransaction: parseEther("1000").toString(),
            rolling24h: parseEther("100000").toString(),
            approvalThreshold: parseEther("1000").toString(),
          },
          ...(withTokens
            ? {
                [`${CHAIN_ID}:${SIM_TOKEN}`]: {
                  perTransaction: parseEther("1000").toString(),
                  rolling24h: parseEther("100000").toString(),
                  approvalThreshold: parseEther("1000").toString(),
                },
              }
            : {}),
        },
      },
    },
    async chains(anvil) {
      simChain = await proxiedSimChain(anvil, {
        chainId: CHAIN_ID,
        confirmations,
        finality,
        hangMs: HANG_MS,
        extra: {
          bumpIntervalMs: 2000,
          ...(withTokens ? { tokens: [{ address: SIM_TOKEN, symbol: "TT", decimals: 18 }] } : {}),
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
  const tokenOf = async (holder: Hex) =>
    BigInt(
      await rpc<Hex>("eth_call", [
        { to: SIM_TOKEN, data: tokenCall("balanceOf", [holder]) },
        "latest",
      ]),
    );
  const pool = world.db.pool;
  const chain = world.config.chains[0]!;
  const emulator = await startKmsEmulator({});
  let kmsProxy: KmsProxy | undefined;
  let signer: SignerHost | undefined;
  const stats: Record<string, number | string> = {
    steps,
    confirmations,
    finality,
    child: useChild ? 1 : 0,
    withdrawals: 0,
    reorgs: 0,
    kills: 0,
    faults: 0,
    dead,
    lost_rate: lostRate,
    cancels: 0,
    needs_review: 0,
    dead_reviews: "none",
    deploy,
    tokens: withTokens ? 1 : 0,
    token_withdrawals: 0,
    drains: 0,
    l1: l1Plan ? 1 : 0,
    legacy: legacyFees ? 1 : 0,
    finality_tag: tag.stat,
    fee_spikes: 0,
  };
  try {
    kmsProxy = await startKmsProxy(emulator.url);
    const kms = createKmsClient({ region: "us-east-1", endpoint: kmsProxy.url });
    const created = await kms.send(
      new CreateKeyCommand({ KeySpec: "ECC_SECG_P256K1", KeyUsage: "SIGN_VERIFY" }),
    );
    const keyId = created.KeyMetadata?.KeyId as string;
    const account: KmsAccount = await createKmsAccount({
      kms,
      keyId,
      registry: world.common.metrics.registry,
    });
    const hot = account.address.toLowerCase() as Hex;

    // The dead withdrawal's lies: its sends (every attempt, both endpoints), and in the
    // unsendable case its nonce's cancels until the operator has failed it.
    const deadTo = destination(seed, deadIndex).toLowerCase();
    let deadNonce: bigint | undefined;
    let refuseCancels = dead === "cancel_unsendable";
    let cancelKmsArmed = false;
    /** The dead withdrawal's newest refused send, as signed (for the late-send case). */
    let deadRaw: Hex | undefined;
    // The L1 price's lies (l1Price.ts), at both endpoints: one chain, one price.
    const l1: L1Price | undefined = l1Plan ? createL1Price(l1Plan, hot, trace) : undefined;
    /**
     * Whether the dead withdrawal's refusals are re-estimated: on a chain whose gas carries the L1
     * cost, "intrinsic gas too low" may mean "not at this price" (signer/broadcaster/regas.ts), so
     * MAX_REGAS re-estimates of it are refused too before its nonce is cancelled.
     */
    const deadRegassed = l1 !== undefined && deadMessage === "intrinsic gas too low";
    /** The dead withdrawal's distinct sends refused (its cancel follows the last one it is given). */
    const deadRefused = new Set<Hex>();
    let deadIntercept: ((raw: string) => string | undefined) | undefined;
    if (dead !== "none") {
      deadIntercept = (raw: string): string | undefined => {
        let tx: ReturnType<typeof parseTransaction>;
        try {
          tx = parseTransaction(raw as Hex);
        } catch {
          return undefined;
        }
        const to = tx.to?.toLowerCase();
        if (to === deadTo) {
          deadNonce ??= BigInt(tx.nonce ?? 0);
          deadRaw = raw as Hex;
          deadRefused.add(keccak256(raw as Hex));
          if (
            dead === "cancel_kms" &&
            useChild &&
            !cancelKmsArmed &&
            deadRefused.size >= (deadRegassed ? MAX_REGAS + 1 : 1)
          ) {
            // The child's signatures cannot be told apart here: fail the next Sign, which is
            // usually the cancel's (the in-process signer aims at the cancel's digest exactly);
            // where its refusals are re-estimated, after the last re-estimate's refusal.
            cancelKmsArmed = true;
            kmsProxy?.failNext("Sign", 1);
          }
          return deadMessage;
        }
        if (
          refuseCancels &&
          to === hot &&
          (tx.value ?? 0n) === 0n &&
          deadNonce !== undefined &&
          BigInt(tx.nonce ?? -1) === deadNonce
        )
          return cancelMessage;
        return undefined;
      };
    }
    // The dead withdrawal's refusals first (its bytes are refused whatever the price), then the
    // L1 price's. A seed with neither sets no intercept, as before.
    const intercepts = [deadIntercept, l1?.intercept].filter((f) => f !== undefined);
    if (intercepts.length > 0) {
      const intercept = (raw: string): string | undefined => {
        for (const decide of intercepts) {
          const refusal = decide(raw);
          if (refusal !== undefined) return refusal;
        }
        return undefined;
      };
      pA.setSendIntercept(intercept);
      pB.setSendIntercept(intercept);
    }
    if (l1) for (const p of [pA, pB]) p.setMethodLie("eth_estimateGas", l1.estimate);
    if (lostRate > 0) for (const p of [pA, pB]) p.setSendDrop(() => lostStream.next() < lostRate);
    // In process, the first cancel of the dead nonce has its own KMS Sign fail (by its digest).
    const signingAccount: KmsAccount =
      dead === "cancel_kms"
        ? {
            ...account,
            async signTransaction(tx, opts) {
              if (
                !cancelKmsArmed &&
                deadNonce !== undefined &&
                tx.to?.toLowerCase() === hot &&
                (tx.value ?? 0n) === 0n &&
                BigInt(tx.nonce ?? -1) === deadNonce
              ) {
                cancelKmsArmed = true;
                kmsProxy?.failDigest(keccak256(serializeTransaction(tx)));
              }
              return account.signTransaction(tx, opts);
            },
          }
        : account;
    await rpc("anvil_setBalance", [hot, toHex(parseEther("1000"))]);
    await rpc("evm_mine");
    await watch(pool, CHAIN_ID, [{ address: hot, kind: "hot", owner: "custody" }]);
    const accounts = (await rpc<Hex[]>("eth_accounts")).map((a) => a.toLowerCase() as Hex);
    const [, , , , , , , , marker, sink] = accounts as Hex[];
    if (withTokens) {
      // The token, the hot wallet's supply of it, and the prefunded destinations' bit: below
      // setupHead, where no reorg reaches (the deployer's transaction is impersonated: its bytes
      // could not be sent again).
      await rpc("anvil_impersonateAccount", [TOKEN_DEPLOYER]);
      await rpc("anvil_setBalance", [TOKEN_DEPLOYER, toHex(parseEther("10"))]);
      await rpc("eth_sendTransaction", [
        {
          from: TOKEN_DEPLOYER,
          data: encodeDeployData({ abi: testToken.abi, bytecode: testToken.bytecode }),
        },
      ]);
      await rpc("anvil_stopImpersonatingAccount", [TOKEN_DEPLOYER]);
      await rpc("evm_mine");
      const mints: [Hex, bigint][] = [[hot, parseEther("100000")]];
      tokenPlans.forEach((plan, i) => {
        if (plan?.prefund) mints.push([drainable(seed, i).address, plan.prefund]);
      });
      // Their gas for emptying themselves, set where no reorg undoes it.
      for (const [to] of mints.slice(1))
        await rpc("anvil_setBalance", [to, toHex(parseEther("1"))]);
      for (const [to, amount] of mints)
        await rpc("eth_sendTransaction", [
          { from: accounts[2], to: SIM_TOKEN, data: tokenCall("mint", [to, amount]) },
        ]);
      await rpc("evm_mine");
      if ((await tokenOf(hot)) !== parseEther("100000"))
        throw new Error("the sim token was not deployed where expected");
    }
    const setupHead = BigInt(await rpc<Hex>("eth_blockNumber"));

    const ledger = createLedger({ common: world.common, pool });
    await ledger.ensureAssetsFromConfig([chain]);
    const ETH = assetIdOf(CHAIN_ID, ZERO);
    const TT = assetIdOf(CHAIN_ID, SIM_TOKEN);
    const owners = Array.from({ length: customers }, (_, c) => `sim-${c}`);
    const funding = parseEther("50");
    // Customers start with a balance as if they had deposited it (the deposits scenario's part),
    // of the token too in token seeds.
    const funded: [assetId: string, label: string][] = [
      [ETH, ""],
      ...(withTokens ? [[TT, "tt:"] as [string, string]] : []),
    ];
    for (const owner of owners)
      for (const [assetId, label] of funded) {
        const [result] = await ledger.createTransfers([
          {
            id: transferId(`sim:funding:${label}${owner}`),
            assetId,
            debit: "custody:deposits",
            credit: `user:${owner}`,
            amount: funding,
            kind: "manual",
            memo: `sim: customer funding${label ? " (token)" : ""}`,
          },
        ]);
        if (result?.status !== "created")
          throw new Error(`funding ${label}${owner}: ${JSON.stringify(result)}`);
      }
    const withdrawals = createWithdrawals({ common: world.common, pool, ledger });
    const { key: apiKey } = await createApiKey(pool, { owner: "sim", scopes: ["admin"] });

    const startSigner = async (): Promise<SignerHost> => {
      if (!useChild) {
        const s: WalletSigner = startWalletSigner({
          common: world.common,
          pool,
          queues: world.queues,
          chain,
          account: async () => signingAccount,
          databaseUrl: world.db.url,
          pollMs: 50,
        });
        return { stop: () => s.stop() };
      }
      return childSigner({
        world,
        seed,
        chainEntry,
        keyId,
        kmsUrl: (kmsProxy as KmsProxy).url,
        logLevel: run.logLevel,
      });
    };
    signer = await startSigner();

    const accepted: Accepted[] = [];
    let n = 0;
    const mine = async (k: number) => {
      for (let i = 0; i < k; i++) await rpc("evm_mine");
    };
    // The signer works asynchronously: give it a moment to act on what changed (not a proof of
    // anything; the checks at the end poll with deadlines).
    const settleTick = () => new Promise((r) => setTimeout(r, rng.int(50, 250)));
    const syncOutcomes = async () => {
      try {
        await withdrawals.syncOutcomes();
      } catch (error) {
        notes.push(`syncOutcomes failed: ${(error as Error).message}`);
      }
    };
    const withdraw = async () => {
      const owner = rng.pick(owners);
      const index = n++;
      const token = tokenPlans[index];
      const to = (
        token?.prefund ? drainable(seed, index).address.toLowerCase() : destination(seed, index)
      ) as Hex;
      const amount = rng.bigint(parseEther("0.001"), parseEther("2"));
      // A policy refusal is an answer, not a scenario failure.
      const w = await withdrawals.create(
        apiKey,
        {
          customerId: owner,
          chain: "sim",
          asset: token ? getAddress(SIM_TOKEN) : "native",
          to: getAddress(to),
          amount: amount.toString(),
        },
        `sim-${seed}-${n}`,
      );
      if (!["rejected", "failed", "cancelled", "pending_approval"].includes(w.status))
        accepted.push({ id: w.id, index, owner, to, amount, ...(token ? { token } : {}) });
      else notes.push(`withdrawal ${w.id} ${w.status}`);
      stats.withdrawals = Number(stats.withdrawals) + 1;
      if (token) stats.token_withdrawals = Number(stats.token_withdrawals) + 1;
    };
    /**
     * Token seeds, after each step: each prefunded destination of an accepted token withdrawal
     * not yet emptied is emptied with even odds (its whole balance sent on, tipping far above the
     * signer so it is mined first in the next block: while the withdrawal waits, its recipient's
     * balance goes to 0).
     */
    const drain = async () => {
      let emptying = false;
      for (const a of accepted) {
        if (!a.token?.prefund || a.token.drained || !tokenStream.chance(0.5)) continue;
        // Only what it held before: a withdrawal already mined stays paid (and then its
        // recipient's balance is not 0: no race, nothing lost).
        const held = a.token.prefund;
        a.token.drained = true;
        stats.drains = Number(stats.drains) + 1;
        const raw = await drainable(seed, a.index).signTransaction({
          chainId: CHAIN_ID,
          nonce: 0,
          to: SIM_TOKEN,
          data: tokenCall("transfer", [sink, held]),
          gas: 100_000n,
          maxFeePerGas: parseEther("0.000001"),
          maxPriorityFeePerGas: parseEther("0.0000005"),
        });
        a.token.drainTx = await rpc<Hex>("eth_sendRawTransaction", [raw]);
        trace(`  drain: ${a.to} (withdrawal ${a.id}) sends the ${held} it held on`);
        emptying = true;
      }
      // Mined at once, before whatever of the signer's waits in the pool (a reorg would clear
      // the pool first: anvil_reorg empties it, and the signer sends its own again).
      if (emptying) await mine(1);
    };
    const deadWithdrawal = () =>
      dead === "none" ? undefined : accepted.find((a) => a.to.toLowerCase() === deadTo);
    /** The dead withdrawal's hold is released (its epoch-0 void exists). */
    const deadReleased = async (id: string) =>
      (await ledger.getTransfer(withdrawalTransferIds(id, 0).void)) !== undefined;
    let operatorFailed = false;
    /** The late send was mined (the dead withdrawal is paid after all). */
    let lateSendMined = false;
    /** The operator found one of the dead withdrawal's attempts mined and left it in needs_review. */
    let operatorWaited = false;
    let carelessTried = false;
    let releasedEarly = false;
    /** While the dead withdrawal is not failed, its hold must stand. */
    let sabotaged = false;
    const checkDeadHold = async (status: string | undefined) => {
      const d = deadWithdrawal();
      if (!d || status === "failed" || releasedEarly) return;
      if (options.sabotage === "release-early" && !sabotaged && status !== undefined) {
        sabotaged = true;
        const ids = withdrawalTransferIds(d.id, 0);
        await ledger.voidPending({ id: ids.void, pendingId: ids.hold });
      }
      if (await deadReleased(d.id)) {
        releasedEarly = true;
        fail("holds", `dead withdrawal ${d.id} (${status}): hold released before it failed`);
      }
    };
    /** `hash`'s receipt is in a block final as the signer counts it (tag.finalDepth below the head). */
    const finalReceipt = async (hash: Hex) => {
      const receipt = await rpc<{ blockNumber: Hex } | null>("eth_getTransactionReceipt", [hash]);
      const head = BigInt(await rpc<Hex>("eth_blockNumber"));
      return !!receipt && BigInt(receipt.blockNumber) <= head - tag.finalDepth;
    };
    /** How many of a request's cancels are in a block final as the signer counts it. */
    const finalCancelsOf = async (requestId: string) => {
      const { rows } = await pool.query<{ hash: Hex }>(
        "SELECT tx_hash AS hash FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel'",
        [requestId],
      );
      let n = 0;
      for (const c of rows) if (await finalReceipt(c.hash)) n++;
      return n;
    };
    /**
     * The killed deploy's hash that mined (its stored bytes, or a replacement the signer signed at
     * its nonce when they were priced out: gaps.ts), with its receipt; else its newest hash.
     */
    const deployMined = async (stored: {
      nonce: bigint;
      hash: Hex;
    }): Promise<{ hash: Hex; receipt: { blockNumber: Hex; status: Hex } | null }> => {
      const { rows } = await pool.query<{ tx_hash: Hex; earlier_tx_hashes: Hex[] }>(
        "SELECT tx_hash, earlier_tx_hashes FROM custody.hot_wallet_deploys WHERE chain_id = $1 AND from_address = $2 AND nonce = $3",
        [CHAIN_ID, hot, stored.nonce.toString()],
      );
      const hashes = rows[0] ? [rows[0].tx_hash, ...rows[0].earlier_tx_hashes] : [stored.hash];
      for (const hash of hashes) {
        const receipt = await rpc<{ blockNumber: Hex; status: Hex } | null>(
          "eth_getTransactionReceipt",
          [hash],
        );
        if (receipt) return { hash, receipt };
      }
      return { hash: hashes[0]!, receipt: null };
    };
    const clearFaults = () => {
      for (const p of [pA, pB]) {
        p.setFault("none");
        p.setFaultRates(null);
        p.setSendFault(null);
        p.setBackends([{ url: anvilUrl }]);
      }
    };

    /** The CLI deploy killed mid-way, once it happened: its stored nonce and transaction. */
    let stored: { nonce: bigint; hash: Hex } | undefined;
    const directClient = createPublicClient({ transport: http(anvilUrl) });
    /** What the CLI asks before it deploys, and no request still waiting for the signer. */
    const walletIdle = async () => {
      const { rows } = await pool.query<{ max: string | null; waiting: number }>(
        `SELECT max(nonce)::text AS max, count(*) FILTER (WHERE status = 'pending')::int AS waiting
           FROM custody.tx_requests WHERE chain_id = $1 AND from_address = $2`,
        [CHAIN_ID, hot],
      );
      const storedNext = rows[0]?.max ? BigInt(rows[0].max) + 1n : 0n;
      const latest = BigInt(await rpc<Hex>("eth_getTransactionCount", [hot, "latest"]));
      const pending = BigInt(await rpc<Hex>("eth_getTransactionCount", [hot, "pending"]));
      return rows[0]?.waiting === 0 && storedNext <= latest && pending === latest;
    };
    /**
     * The operator's deploy: wait (signer running, blocks mined) until the wallet has nothing
     * unmined, stop the signer, run the CLI's deploy sender and kill it at `deploy`'s point, start
     * the signer again; `after_send`: a moment after the signer holds the lease again (its resync
     * then normally counts the deploy pending), the node drops the deploy. False when the wallet
     * did not go idle in time or the CLI refused (the operator tries again at the next step).
     */
    const deployKilled = async (at: string): Promise<boolean> => {
      if (deploy === "none" || !signer) return false;
      const idleBy = Date.now() + 20_000;
      while (!(await walletIdle())) {
        if (Date.now() > idleBy) {
          trace(`  deploy (${at}): the wallet has transactions unmined; trying again later`);
          return false;
        }
        await mine(1);
        await new Promise((r) => setTimeout(r, 150));
      }
      await signer.stop();
      signer = undefined;
      const point = deploy === "after_commit" ? "deploy_after_commit" : "deploy_after_send";
      try {
        await killedDeploy({
          common: world.common,
          databaseUrl: world.db.url,
          chain,
          client: directClient,
          account,
          name: `SimDeploy${seed}`,
          point,
        });
      } catch (error) {
        const message = (error as Error).message;
        notes.push(`deploy (${at}) refused: ${message.slice(0, 160)}`);
        trace(`  deploy (${at}) refused: ${message.slice(0, 160)}`);
      }
      const { rows } = await pool.query<{ nonce: string; hash: Hex; status: string }>(
        "SELECT nonce::text, tx_hash AS hash, status FROM custody.hot_wallet_deploys WHERE chain_id = $1 AND from_address = $2 AND status IN ('signed', 'broadcast')",
        [CHAIN_ID, hot],
      );
      signer = await startSigner();
      const row = rows[0];
      if (!row) return false;
      stored = { nonce: BigInt(row.nonce), hash: row.hash };
      stats.deploy_at = at;
      stats.deploy_nonce = row.nonce;
      trace(`  deploy (${at}) killed at ${point}: nonce ${row.nonce}, ${row.status}, ${row.hash}`);
      if (deploy === "after_send") {
        // The signer resyncs once it holds the wallet's lease (a Postgres advisory lock).
        await waitFor(
          "the signer's lease after the deploy",
          async () =>
            (
              await pool.query(
                `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
                    AND a.application_name LIKE '%signer%'`,
              )
            ).rows.length,
          (n) => n > 0,
          15_000,
        );
        await new Promise((r) => setTimeout(r, 500));
        // Every version of its bytes: the signer replaces a deploy its node holds unmined past
        // the bump interval (gaps.ts), and may do so between a read of the row and the drop.
        let pending = stored.nonce + 1n;
        for (let round = 0; round < 5 && pending !== stored.nonce; round++) {
          const { rows: versions } = await pool.query<{ tx_hash: Hex; earlier_tx_hashes: Hex[] }>(
            "SELECT tx_hash, earlier_tx_hashes FROM custody.hot_wallet_deploys WHERE chain_id = $1 AND from_address = $2 AND nonce = $3",
            [CHAIN_ID, hot, row.nonce],
          );
          for (const h of versions.flatMap((v) => [v.tx_hash, ...v.earlier_tx_hashes]))
            await rpc("anvil_dropTransaction", [h]);
          pending = BigInt(await rpc<Hex>("eth_getTransactionCount", [hot, "pending"]));
        }
        if (pending !== stored.nonce)
          fail(
            "deploy",
            `the node still holds something at nonce ${stored.nonce} after the drop (pending count ${pending})`,
          );
        trace("  deploy: the node dropped it");
      }
      return true;
    };

    for (let step = 0; step < steps; step++) {
      l1?.atStep(step);
      if (await spikes.atStep(rpc, step, trace)) stats.fee_spikes = Number(stats.fee_spikes) + 1;
      if (deploy !== "none" && !stored && step >= deployStep) await deployKilled(`step ${step}`);
      const action = rng.weighted({
        withdraw: 4,
        mine: 3,
        faults: 2,
        kms: 0.6,
        reorg: 1,
        kill: useChild ? 0.6 : 0,
      });
      trace(`step ${step}: ${action}`);
      switch (action) {
        case "withdraw":
          for (let i = rng.int(1, 2); i > 0; i--) await withdraw();
          break;
        case "mine":
          await mine(rng.int(1, 3));
          break;
        case "faults": {
          stats.faults = Number(stats.faults) + 1;
          const what = rng.weighted({
            nullReceiptsBoth: 2,
            nullReceiptsPrimary: 1,
            disagree: 2,
            primaryFlaky: 2,
            fallbackLagging: 1,
            primaryLagging: 1,
            primarySyncing: 1,
            sendsRejectedButMined: 1,
            sendsRejected: 1,
            clear: 2,
          });
          const lag = rng.int(1, finality + 4);
          trace(`  faults: ${what} (lag ${lag})`);
          if (what === "nullReceiptsBoth")
            for (const p of [pA, pB]) p.setBackends([{ url: anvilUrl, nullReceipts: true }]);
          else if (what === "nullReceiptsPrimary")
            pA.setBackends([{ url: anvilUrl, nullReceipts: true }]);
          else if (what === "disagree") pB.setBackends([{ url: anvilUrl }, { url: anvilUrl, lag }]);
          else if (what === "primaryFlaky")
            pA.setFaultRates(
              {
                http500: rng.int(5, 25) / 100,
                http429: rng.int(0, 10) / 100,
                timeout: rng.int(0, 3) / 100,
              },
              faultStream.next,
            );
          else if (what === "fallbackLagging") pB.setBackends([{ url: anvilUrl, lag }]);
          else if (what === "primaryLagging") pA.setBackends([{ url: anvilUrl, lag }]);
          else if (what === "primarySyncing") pA.setBackends([{ url: anvilUrl, lag: "syncing" }]);
          else if (what === "sendsRejectedButMined")
            // One backend refuses what another accepted: the tx mines although the send failed.
            pA.setSendFault(
              {
                rate: rng.int(30, 100) / 100,
                forward: true,
                message: rng.pick(["transaction underpriced", "internal error", "already known"]),
              },
              sendStream.next,
            );
          else if (what === "sendsRejected")
            pA.setSendFault(
              { rate: rng.int(30, 100) / 100, forward: false, message: "internal error" },
              sendStream.next,
            );
          else clearFaults();
          break;
        }
        case "kms": {
          const k = rng.int(1, 3);
          kmsProxy.failNext("Sign", k);
          trace(`  kms: the next ${k} Sign call(s) fail`);
          break;
        }
        case "reorg": {
          const head = BigInt(await rpc<Hex>("eth_blockNumber"));
          const room = Number(head - setupHead);
          if (room < 1) break;
          // Above finality: the signer re-sends what a reorg removed (deep reorgs are the
          // deposits scenario's halt case).
          const depth = Math.min(rng.int(1, Math.max(1, finality - 1)), room);
          const outcome = await injectReorg(rpc, {
            depth,
            extend: rng.int(0, 1),
            method: rng.chance(0.7) ? "reorg" : "rollback",
            marker: { from: marker as Hex, to: sink as Hex },
            // The hot wallet's txs can only be re-mined as they are or dropped (no key here).
            // Their own stream: how many hot-wallet transactions the reorged blocks hold depends
            // on the signer's timing, and one draw each from the schedule's stream shifted every
            // later step (seed 5 lost its kill on a loaded CI machine).
            fate: () => (fateStream.chance(0.5) ? "same" : "drop"),
          });
          stats.reorgs = Number(stats.reorgs) + 1;
          trace(
            `  reorg depth ${outcome.depth}: kept ${outcome.kept.length}, dropped ${outcome.dropped.length}`,
          );
          break;
        }
        case "kill":
          await settleTick();
          await signer.kill?.();
          stats.kills = Number(stats.kills) + 1;
          break;
      }
      if (withTokens) await drain();
      await settleTick();
      await syncOutcomes();
      const d = deadWithdrawal();
      if (d) await checkDeadHold((await getWithdrawal(pool, d.id))?.status);
    }

    // Settle: honest endpoints, working KMS; mine until every accepted withdrawal is final.
    clearFaults();
    for (const p of [pA, pB]) p.setSendDrop(null);
    // The L1 price settles below its peak and stays: the chain still charges it as gas.
    l1?.settle();
    trace(`settle: faults cleared at ${new Date().toISOString().slice(11, 23)}`);
    // A deploy the wallet was never idle for during the steps is run now, before the last
    // withdrawal: it must happen in every seed that drew it, or the seed would pass without it.
    if (deploy !== "none" && !stored && !(await deployKilled("settle")))
      fail(
        "deploy",
        "the CLI deploy could not run: the wallet never went idle, or the CLI refused",
      );
    const probeIndex = accepted.length;
    await withdraw(); // keeps-sending: created after every fault
    const probe = accepted[probeIndex];
    const deadline = Date.now() + 120_000;
    const terminal = new Set(["finalized", "failed", "needs_review"]);
    let statuses = new Map<string, string>();
    while (Date.now() < deadline) {
      await mine(1);
      await new Promise((r) => setTimeout(r, 100));
      await syncOutcomes();
      statuses = new Map();
      await withTransaction(pool, async (c) => {
        for (const a of accepted)
          statuses.set(a.id, (await getWithdrawal(c, a.id))?.status ?? "missing");
      });
      const d = deadWithdrawal();
      if (d) {
        const status = statuses.get(d.id);
        await checkDeadHold(status);
        if (status === "needs_review" && !operatorFailed) {
          // The operator checks the chain first (operator.ts): if one of its attempts mined (the
          // endpoints withheld its receipt: NONCE_CONSUMED_NO_KNOWN_ATTEMPT), the signer finds it
          // once they answer again, and the cancel's final block fails it: leave it.
          const { rows: req } = await pool.query<{ review_reason: string | null }>(
            "SELECT review_reason FROM custody.tx_requests WHERE id = $1",
            [`withdrawal:${d.id}`],
          );
          const { rows: attempts } = await pool.query<{ hash: Hex }>(
            "SELECT tx_hash AS hash FROM custody.tx_attempts WHERE request_id = $1 ORDER BY id",
            [`withdrawal:${d.id}`],
          );
          const onChain = await minedOnChain(
            rpc,
            attempts.map((a) => a.hash),
          );
          if (onChain) {
            if (!operatorWaited)
              trace(
                `  operator at ${new Date().toISOString().slice(11, 23)}: dead withdrawal in needs_review (${req[0]?.review_reason}), but its ${onChain.hash} is in block ${onChain.blockNumber}: not failing it`,
              );
            operatorWaited = true;
            // An operator who fails it without looking: the service checks the chain itself and
            // must refuse (the attempt used the nonce), or wait when the endpoints cannot tell.
            if (!carelessTried) {
              carelessTried = true;
              try {
                await withdrawals.failByOperator(d.id, {
                  by: "sim-careless-operator",
                  reason: `sim seed ${seed}: failed without checking the chain`,
                });
                fail(
                  "operator-chain-check",
                  `the service failed dead withdrawal ${d.id} although its ${onChain.hash} is in block ${onChain.blockNumber}`,
                );
              } catch (error) {
                const code = error instanceof BaseError ? error.code : undefined;
                const moved =
                  code === "SIGNER_REQUEST_NOT_REVIEWABLE" || code === "WITHDRAWAL_INVALID_STATE";
                if (
                  !(error instanceof BaseError) ||
                  !(error.retryable || moved || code === "SIGNER_REQUEST_MINED_ON_CHAIN")
                )
                  throw error;
                stats.careless_operator = code ?? "refused";
                trace(`  careless operator refused: ${code}`);
              }
            }
            continue;
          }
          trace(
            `  operator at ${new Date().toISOString().slice(11, 23)}: dead withdrawal in needs_review (${req[0]?.review_reason}), none of its attempts mined: failing it`,
          );
          // The chain shows the nonce unused by any attempt of ours: fail it. The service asks
          // the chain again itself, through the lying endpoints: when they cannot tell (or show
          // the nonce used in a block not final yet) it refuses and the operator tries again.
          try {
            await withdrawals.failByOperator(d.id, {
              by: "sim-operator",
              reason: `sim seed ${seed}: every send and cancel of nonce ${deadNonce} refused by every endpoint`,
            });
          } catch (error) {
            if (!(error instanceof BaseError && error.retryable)) throw error;
            stats.operator_retries = Number(stats.operator_retries ?? 0) + 1;
            trace(`  operator: the service refused for now (${error.code}); trying again`);
            continue;
          }
          operatorFailed = true;
          if (lateSend) {
            // A node that refused the bytes to us had passed them on: they mine before any cancel
            // (cancels are still refused until then).
            try {
              if (!deadRaw) throw new Error("none of its sends was seen");
              await rpc("eth_sendRawTransaction", [deadRaw]);
              await mine(1);
              lateSendMined = true;
              trace(
                "  late send: one of the dead withdrawal's refused sends mined after the operator's failure",
              );
            } catch (error) {
              // The case this seed is for did not happen: say so rather than pass without it.
              fail(
                "late-send",
                `anvil refused the late send: ${(error as Error).message.slice(0, 120)}`,
              );
            }
          }
          // The nodes accept cancels again: the signer's cancel consumes the nonce.
          refuseCancels = false;
          continue;
        }
      }
      if (
        [...statuses.values()].every((s) => terminal.has(s)) &&
        (!d || statuses.get(d.id) !== "needs_review") &&
        (!stored || (await finalReceipt((await deployMined(stored)).hash)))
      )
        break;
    }

    // Invariant: stop() returns.
    const stopStarted = Date.now();
    let stopTimer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      signer.stop().then(() => true),
      new Promise<false>((r) => {
        stopTimer = setTimeout(() => r(false), 15_000);
      }),
    ]).finally(() => clearTimeout(stopTimer));
    signer = undefined;
    if (!stopped) fail("stop", "the signer's stop() did not return within 15 s");
    stats.stop_ms = Date.now() - stopStarted;

    // Invariant: the killed deploy mined from its stored bytes at its stored nonce, in a final
    // block, and no withdrawal was given that nonce (signer/broadcaster/gaps.ts).
    if (stored) {
      const { nonce } = stored;
      // Its stored bytes, or a replacement of them at the same nonce (the signer re-signs a
      // deploy priced out: gaps.ts): whichever mined (one at most, one nonce).
      const { hash, receipt } = await deployMined(stored);
      if (!receipt)
        fail("deploy", `the stored deploy ${hash} (nonce ${nonce}) is not on the final chain`);
      else if (receipt.status !== "0x1")
        fail("deploy", `the stored deploy ${hash} (nonce ${nonce}) reverted`);
      else if (!(await finalReceipt(hash)))
        fail(
          "deploy",
          `the stored deploy ${hash} (block ${BigInt(receipt.blockNumber)}) is not final`,
        );
      const address = getContractAddress({ from: hot, nonce });
      const code = await rpc<Hex>("eth_getCode", [address, "latest"]);
      if (code !== TINY_CONTRACT.runtime)
        fail("deploy", `no contract at ${address} (the deploy's nonce ${nonce}): code ${code}`);
      const { rows: holders } = await pool.query<{ id: string; attempts: number }>(
        `SELECT r.id, (SELECT count(*)::int FROM custody.tx_attempts a WHERE a.request_id = r.id) AS attempts
           FROM custody.tx_requests r WHERE r.chain_id = $1 AND r.from_address = $2 AND r.nonce = $3`,
        [CHAIN_ID, hot, nonce.toString()],
      );
      const { rows: attemptsAt } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM custody.tx_attempts WHERE chain_id = $1 AND lower(from_address) = $2 AND nonce = $3",
        [CHAIN_ID, hot, nonce.toString()],
      );
      if (holders.length > 0 || (attemptsAt[0]?.n ?? 0) > 0)
        fail(
          "deploy",
          `the deploy's nonce ${nonce} was given to ${holders.map((h) => `${h.id} (${h.attempts} attempts)`).join(", ") || "no request"}; ${attemptsAt[0]?.n ?? 0} attempts signed at it`,
        );
    }

    const victim = accepted[0];
    if (options.sabotage === "double-pay" && victim) {
      await rpc("eth_sendTransaction", [
        { from: accounts[1], to: victim.to, value: toHex(victim.amount) },
      ]);
      await mine(1);
    }

    const deadOne = deadWithdrawal();
    // Invariants of the L1 price (l1Price.ts), on a chain whose gas carries the L1 cost:
    //  - re-estimated first: a withdrawal failed for gas (a payment refused "intrinsic gas too
    //    low") only once its nonce had MAX_REGAS + 1 payments refused so, all before its first
    //    cancel; it is then paid 0 times, `failed` CANCELLED, by exactly one cancel in a final block
    //    (the holds invariant below checks its hold was released);
    //  - bounded: within one bump interval a nonce signs at most MAX_REGAS + 1 payments refused for
    //    gas (a refused one and its MAX_REGAS re-estimates); more is the signer signing, again and
    //    again, payments the node refuses for gas;
    //  - covered: every mined payment or cancel covered its intrinsic gas + the L1 price at which
    //    the node accepted it (none reached the chain around the endpoints' rule), the dead
    //    withdrawal's late send aside (the sim sends it itself, as a node that refused it to us
    //    had passed it on).
    /** Withdrawals that failed, legitimately, after their nonce ran out of re-estimates. */
    const regasFailed = new Set<string>();
    if (l1) {
      const { rows: gasRows } = await pool.query<{
        request_id: string;
        nonce: string;
        sends: number;
        refused: number;
        refused_before_cancel: number;
        burst: number;
        burst_at: string | null;
      }>(
        `WITH s AS (
           SELECT a.id, a.request_id, a.nonce, a.created_at,
                  a.last_error_class = 'intrinsic_gas_too_low' AS refused
             FROM custody.tx_attempts a WHERE a.chain_id = $1 AND a.purpose = 'send'),
         b AS (
           SELECT x.request_id, x.nonce, x.created_at,
                  (SELECT count(*) FROM s y
                    WHERE y.request_id = x.request_id AND y.nonce = x.nonce AND y.refused
                      AND y.created_at >= x.created_at
                      AND y.created_at < x.created_at + $2 * interval '1 millisecond')::int AS n
             FROM s x WHERE x.refused)
         SELECT s.request_id, s.nonce::text,
                count(*)::int AS sends,
                count(*) FILTER (WHERE s.refused)::int AS refused,
                count(*) FILTER (WHERE s.refused
                  AND s.id < COALESCE((SELECT min(c.id) FROM custody.tx_attempts c
                                        WHERE c.request_id = s.request_id AND c.nonce = s.nonce
                                          AND c.purpose = 'cancel'), s.id + 1))::int AS refused_before_cancel,
                COALESCE((SELECT max(b.n) FROM b WHERE b.request_id = s.request_id AND b.nonce = s.nonce), 0) AS burst,
                (SELECT to_char(b.created_at, 'HH24:MI:SS.MS') FROM b
                  WHERE b.request_id = s.request_id AND b.nonce = s.nonce ORDER BY b.n DESC, b.created_at LIMIT 1) AS burst_at
           FROM s GROUP BY s.request_id, s.nonce`,
        [CHAIN_ID, chain.bumpIntervalMs],
      );
      const byRequest = new Map(gasRows.map((r) => [r.request_id, r]));
      let exhausted = 0;
      for (const r of gasRows) {
        if (r.refused > MAX_REGAS) exhausted++;
        if (r.burst > MAX_REGAS + 1)
          fail(
            "l1-gas",
            `${r.request_id}: nonce ${r.nonce} signed ${r.burst} payments refused for gas within one bump interval (${chain.bumpIntervalMs} ms) from ${r.burst_at} (${r.refused} in all), more than MAX_REGAS + 1 = ${MAX_REGAS + 1}`,
          );
      }
      stats.l1_refused_sends = gasRows.reduce((n, r) => n + r.refused, 0);
      stats.regas_exhausted = exhausted;
      // Re-estimates signed (in-process signer only: a child process has its own registry).
      const signed = await world.common.metrics.registry
        .getSingleMetric("custody_signer_attempts_total")
        ?.get();
      stats.regas = useChild
        ? "n/a"
        : (signed?.values ?? [])
            .filter((v) => v.labels.kind === "regas")
            .reduce((sum, v) => sum + v.value, 0);
      for (const a of accepted) {
        const status = statuses.get(a.id) ?? "unknown";
        const g = byRequest.get(`withdrawal:${a.id}`);
        if (a === deadOne) {
          // Its every send refused by every node: re-estimated MAX_REGAS times first where its
          // refusal is "intrinsic gas too low", never otherwise.
          const expected = deadRegassed ? MAX_REGAS + 1 : 1;
          if (g?.sends !== expected || g.refused_before_cancel !== (deadRegassed ? expected : 0))
            fail(
              "l1-gas",
              `dead withdrawal ${a.id} (refused "${deadMessage}"): ${g?.sends ?? 0} payments signed, ${g?.refused_before_cancel ?? 0} refused for gas before its first cancel; expected ${expected}${deadRegassed ? " (MAX_REGAS re-estimates)" : " (no re-estimate)"}`,
            );
          continue;
        }
        if (status !== "failed" || !g || g.refused === 0) continue;
        // Failed for gas: only once re-estimates ran out, before the nonce was cancelled.
        if (g.refused_before_cancel <= MAX_REGAS) {
          fail(
            "l1-gas",
            `withdrawal ${a.id} failed for gas after ${g.refused_before_cancel} payments refused before its first cancel (${g.refused} in all), not MAX_REGAS + 1 = ${MAX_REGAS + 1}: not re-estimated first`,
          );
          continue;
        }
        regasFailed.add(a.id);
        const w = await getWithdrawal(pool, a.id);
        if (w?.failureReason !== "CANCELLED")
          fail(
            "l1-gas",
            `withdrawal ${a.id} failed after its re-estimates ran out as ${w?.failureReason}, not CANCELLED`,
          );
        const finalCancels = await finalCancelsOf(`withdrawal:${a.id}`);
        if (finalCancels !== 1)
          fail(
            "l1-gas",
            `withdrawal ${a.id} failed after its re-estimates ran out: ${finalCancels} of its cancels in a final block, not 1`,
          );
      }
      stats.l1_failed = regasFailed.size;
      // Covered: every mined attempt met the endpoints' rule when they accepted it.
      const lateHash = lateSendMined && deadRaw ? keccak256(deadRaw) : undefined;
      const { rows: sent } = await pool.query<{ hash: Hex; purpose: string; request_id: string }>(
        "SELECT tx_hash AS hash, purpose, request_id FROM custody.tx_attempts WHERE chain_id = $1",
        [CHAIN_ID],
      );
      let covered = 0;
      for (const t of sent) {
        const receipt = await rpc<{ blockNumber: Hex } | null>("eth_getTransactionReceipt", [
          t.hash,
        ]);
        if (!receipt || t.hash.toLowerCase() === lateHash) continue;
        const onChain = await rpc<{ gas: Hex } | null>("eth_getTransactionByHash", [t.hash]);
        const took = l1.accepted.get(t.hash.toLowerCase() as Hex);
        if (!took)
          fail(
            "l1-gas",
            `${t.request_id}: its ${t.purpose} ${t.hash} mined, but no endpoint accepted it at an L1 price`,
          );
        else if (!onChain || BigInt(onChain.gas) < took.need)
          fail(
            "l1-gas",
            `${t.request_id}: its ${t.purpose} ${t.hash} mined with gas ${onChain ? BigInt(onChain.gas) : "?"}, below the ${took.need} (L1 ${took.l1Gas}) the node required when it accepted it`,
          );
        else covered++;
      }
      stats.l1_covered = covered;
      const l1Stats = l1.stats();
      stats.l1_peak = String(l1Stats.peak);
      stats.l1_refused = l1Stats.refusedPayments;
      stats.l1_cancels_refused = l1Stats.refusedCancels;
      stats.l1_creations_refused = l1Stats.refusedCreations;
      stats.surge = l1Stats.surge;
    }

    // Invariant: paid exactly once, finalized.
    const paidTotal = new Map<string, bigint>();
    const paidTokens = new Map<string, bigint>();
    for (const a of accepted) {
      const status = statuses.get(a.id) ?? "unknown";
      // Failed after its re-estimates ran out (checked above): paid 0 times.
      const expectedPaid = regasFailed.has(a.id) ? 0n : a.amount;
      if (a.token) {
        // What the withdrawal paid: the destination's token balance less what it held and kept
        // (its emptying is in the final chain, or a reorg dropped it and it kept the bit).
        const emptied =
          !!a.token.drainTx &&
          (await rpc<{ status: Hex } | null>("eth_getTransactionReceipt", [a.token.drainTx]))
            ?.status === "0x1";
        const kept = emptied ? 0n : a.token.prefund;
        const paid = (await tokenOf(a.to)) - kept;
        paidTokens.set(a.owner, (paidTokens.get(a.owner) ?? 0n) + paid);
        if (paid !== expectedPaid)
          fail(
            "paid-once",
            `token withdrawal ${a.id} (${status}) of ${a.amount}${regasFailed.has(a.id) ? ", failed after its re-estimates ran out" : ""}${a.token.prefund ? ` to a destination that held ${a.token.prefund}${emptied ? ", emptied while it waited" : ""}` : ""}: it was paid ${paid}${paid > a.amount ? " (more than once)" : ""}`,
          );
        if (status !== "finalized" && !regasFailed.has(a.id))
          fail("paid-once", `token withdrawal ${a.id} ended ${status}, not finalized`);
        continue;
      }
      const balance = BigInt(await rpc<Hex>("eth_getBalance", [a.to, "latest"]));
      paidTotal.set(a.owner, (paidTotal.get(a.owner) ?? 0n) + balance);
      if (a === deadOne && !lateSendMined) {
        // Refused by every node: paid 0 times, failed (by the cancel's final block, or by the
        // operator after needs_review), its hold released.
        if (balance !== 0n)
          fail("dead", `dead withdrawal ${a.id} (${status}): the destination holds ${balance}`);
        if (status !== "failed")
          fail("dead", `dead withdrawal ${a.id} ended ${status}, not failed`);
        continue;
      }
      if (balance !== expectedPaid)
        fail(
          "paid-once",
          `withdrawal ${a.id} (${status}) of ${a.amount}${regasFailed.has(a.id) ? ", failed after its re-estimates ran out" : ""}: the destination holds ${balance}${balance > a.amount ? " (paid more than once)" : ""}`,
        );
      if (status !== "finalized" && !regasFailed.has(a.id))
        fail("paid-once", `withdrawal ${a.id} ended ${status}, not finalized`);
    }
    if (probe && statuses.get(probe.id) !== "finalized")
      fail(
        "keeps-sending",
        `the withdrawal created after the faults ended ${statuses.get(probe.id)}`,
      );

    // Invariant: nonces contiguous and none wasted.
    const mined = BigInt(await rpc<Hex>("eth_getTransactionCount", [hot, "latest"]));
    const { rows } = await pool.query<{ max: string | null }>(
      "SELECT max(nonce)::text AS max FROM custody.tx_attempts WHERE chain_id = $1 AND lower(from_address) = $2",
      [CHAIN_ID, hot],
    );
    let highest = rows[0]?.max === null || rows[0]?.max === undefined ? -1n : BigInt(rows[0].max);
    // The killed deploy's nonce is the wallet's too (the deploy invariant checks who used it).
    if (stored && stored.nonce > highest) highest = stored.nonce;
    if (highest + 1n !== mined)
      fail(
        "nonces",
        `the signer used nonces up to ${highest}, the chain consumed ${mined}: ${highest + 1n > mined ? "a gap the wallet cannot pass" : "nonces used outside the signer"}`,
      );

    // Invariant: holds follow the chain: available = funding - paid out on the final chain.
    for (const owner of owners) {
      const account = await ledger.getAccount({ assetId: ETH, name: `user:${owner}` });
      const expected = funding - (paidTotal.get(owner) ?? 0n);
      if ((account?.available ?? 0n) !== expected)
        fail(
          "holds",
          `${owner}: available ${account?.available ?? 0n}, funding minus what the chain paid out is ${expected}`,
        );
      if (!withTokens) continue;
      const tokens = await ledger.getAccount({ assetId: TT, name: `user:${owner}` });
      const expectedTokens = funding - (paidTokens.get(owner) ?? 0n);
      if ((tokens?.available ?? 0n) !== expectedTokens)
        fail(
          "holds",
          `${owner}: available ${tokens?.available ?? 0n} of the token, funding minus what the chain paid out is ${expectedTokens}`,
        );
    }
    // The dead withdrawal's path: how its nonce was consumed and who failed it.
    if (deadOne) {
      const w = await getWithdrawal(pool, deadOne.id);
      // The operator's failure was a cancel (its nonce unused): the withdrawal says so, for good.
      if (operatorFailed && w?.failRequested?.by !== "sim-operator")
        fail(
          "dead",
          `dead withdrawal ${deadOne.id}: the operator's failure by cancel is not on the withdrawal (failRequested ${JSON.stringify(w?.failRequested)})`,
        );
      const { rows: cancels } = await pool.query<{ status: string; hash: string }>(
        "SELECT status, tx_hash AS hash FROM custody.tx_attempts WHERE request_id = $1 AND purpose = 'cancel' ORDER BY id",
        [`withdrawal:${deadOne.id}`],
      );
      // Its nonce is consumed by exactly one of its cancels, in a final block (the signer stops
      // tracking a request an operator failed, so the chain says which one mined).
      const head = BigInt(await rpc<Hex>("eth_blockNumber"));
      let finalCancels = 0;
      for (const c of cancels) {
        const receipt = await rpc<{ blockNumber: Hex } | null>("eth_getTransactionReceipt", [
          c.hash,
        ]);
        trace(
          `  dead cancel ${c.hash} (${c.status}): ${receipt ? `block ${BigInt(receipt.blockNumber)}` : "no receipt"}, head ${head}`,
        );
        // Final as the signer counts it: tag.finalDepth below the head.
        if (receipt && BigInt(receipt.blockNumber) <= head - tag.finalDepth) finalCancels++;
      }
      // Its history, for the trace (why it went where it went; times to compare with the settle).
      const { rows: events } = await pool.query<{
        at: string;
        event: string;
        from: string | null;
        to: string;
        reason: string | null;
        details: unknown;
      }>(
        `SELECT to_char(created_at, 'HH24:MI:SS.MS') AS at, event, from_status AS from, to_status AS to, reason, details
           FROM custody.tx_request_events WHERE request_id = $1 ORDER BY id`,
        [`withdrawal:${deadOne.id}`],
      );
      if (options.trace)
        for (const e of events)
          trace(
            `  dead request ${e.at} ${e.event}: ${e.from} -> ${e.to}${e.reason ? ` (${e.reason})` : ""} ${JSON.stringify(e.details)}`,
          );
      stats.dead_reviews =
        events
          .filter((e) => e.event === "needs_review")
          .map((e) => e.reason ?? "?")
          .join(",") || "none";
      if (lateSendMined) {
        // The operator's failure was a cancel, and the send it raced mined first: the service
        // followed the chain (paid once and finalized: checked with the others above), posted the
        // hold instead of releasing it, and recorded the override.
        stats.late_send = "mined";
        // Cancels the signer signed once it had recorded the send mined (the operator's own cancel
        // may go out in the moment before it sees the send mined: a race, not a fault).
        const mined = events.findIndex((e) => e.event === "operator_fail_overridden");
        // No override event at all is not "none after it": the stat says so, and the test fails.
        stats.cancels_after_mined =
          mined < 0
            ? "no override event"
            : events.slice(mined + 1).filter((e) => e.event === "cancel_signed").length;
        if (finalCancels !== 0)
          fail(
            "late-send",
            `dead withdrawal ${deadOne.id}: a cancel is final although its send mined`,
          );
        if (await deadReleased(deadOne.id))
          fail("late-send", `dead withdrawal ${deadOne.id} was paid but its hold was released`);
        if (!events.some((e) => e.event === "operator_fail_overridden"))
          fail(
            "late-send",
            `dead withdrawal ${deadOne.id}: paid after the operator's failure, not recorded as overridden`,
          );
      } else {
        if (finalCancels !== 1)
          fail(
            "dead",
            `dead withdrawal ${deadOne.id}: ${finalCancels} of its ${cancels.length} cancels (${cancels.map((c) => c.status).join(",")}) mined in a final block, not 1`,
          );
        if (dead === "cancel_unsendable") {
          if (!operatorFailed)
            fail("dead", `dead withdrawal ${deadOne.id} never reached needs_review`);
          if (!(w?.failureReason ?? "").startsWith("OPERATOR_FAILED"))
            fail(
              "dead",
              `dead withdrawal ${deadOne.id} failed as ${w?.failureReason}, not by the operator`,
            );
        } else if (operatorFailed)
          fail("dead", `dead withdrawal ${deadOne.id}: a healable cancel ended in needs_review`);
        if (!(await deadReleased(deadOne.id)))
          fail("holds", `dead withdrawal ${deadOne.id} failed but its hold is not released`);
      }
      if (dead === "cancel_kms" && !useChild && kmsProxy.digestFailures() !== 1)
        fail(
          "dead",
          `the first cancel's KMS Sign failed ${kmsProxy.digestFailures()} times, not once`,
        );
    }
    const { rows: cancelRows } = await pool.query<{ n: number; review: number }>(
      `SELECT (SELECT count(*)::int FROM custody.tx_attempts WHERE chain_id = $1 AND purpose = 'cancel') AS n,
              (SELECT count(*)::int FROM custody.tx_request_events WHERE event = 'needs_review') AS review`,
      [CHAIN_ID],
    );
    stats.cancels = cancelRows[0]?.n ?? 0;
    // Every request's needs_review events: with receipts withheld, a request whose cancel or send
    // mined can go to needs_review (NONCE_CONSUMED_NO_KNOWN_ATTEMPT) and heal once the receipt is
    // back, more often on a loaded machine. The dead withdrawal's own reviews (by reason, in order)
    // are what its scenario decides: none when its cancel heals, CANCEL_UNSENDABLE once when not.
    // (stats.dead_reviews is set from the dead request's history above.)
    stats.needs_review = cancelRows[0]?.review ?? 0;
    stats.dead_sent = deadOne ? 1 : 0;
    // The endpoints' intercepted sends, less the L1 price's refusals (the same intercept).
    stats.dead_sends_refused =
      (pA.stats().send_intercepted ?? 0) +
      (pB.stats().send_intercepted ?? 0) -
      (l1
        ? l1.stats().refusedPayments + l1.stats().refusedCancels + l1.stats().refusedCreations
        : 0);
    stats.cancel_kms_failed = kmsProxy.digestFailures();
    stats.kms_failed = kmsProxy.failed();
    stats.requests = pA.requests() + pB.requests();
    stats.sends_refused = pA.stats().send_rejected ?? 0;
    stats.sends_refused_but_mined = pA.stats().send_rejected_but_forwarded ?? 0;
    stats.sends_lost = (pA.stats().send_dropped ?? 0) + (pB.stats().send_dropped ?? 0);
    // The stall stage's heals (in-process signer only: a child process has its own registry).
    const heals = await world.common.metrics.registry
      .getSingleMetric("custody_signer_stall_heals_total")
      ?.get();
    for (const action of ["resend", "bump"])
      stats[`stall_${action}s`] = useChild
        ? "n/a"
        : (heals?.values ?? [])
            .filter((v) => v.labels.action === action)
            .reduce((sum, v) => sum + v.value, 0);
    stats.receipts_withheld = (pA.stats().null_receipts ?? 0) + (pB.stats().null_receipts ?? 0);
    // Attempts that replaced another of their request's at its nonce (fee bumps, re-estimates):
    // what the fee spikes make the signer do.
    const { rows: replacedRows } = await pool.query<{ n: number }>(
      `SELECT (count(*) - count(DISTINCT (request_id, purpose)))::int AS n FROM custody.tx_attempts`,
    );
    stats.replaced = replacedRows[0]?.n ?? 0;
  } catch (error) {
    fail("scenario", `the scenario itself failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    await signer?.stop().catch(() => {});
    await pA.close();
    await pB.close();
    await kmsProxy?.close().catch(() => {});
    await emulator.stop().catch(() => {});
    const keep = violations.length > 0 && options.keepOnFailure === true;
    await world.close({ keep });
    if (keep) notes.push(`database kept: ${world.db.name}`);
  }
  return { seed, violations, stats, notes, ms: performance.now() - started };
}

export const withdrawalsScenario: Scenario = {
  name: "withdrawals",
  description:
    "withdrawal service + signer on a lying chain: null receipts, disagreeing backends, KMS failures, reorgs, kill -9",
  run: runWithdrawals,
};
