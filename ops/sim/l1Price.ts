/**
 * The withdrawals simulation's L1 price fault: a chain whose gas carries the L1 cost
 * (`l1CostInGas`, Arbitrum), played at the lying chain's endpoints. The L1 cost of a transaction,
 * in gas (`l1Gas`), follows a seeded schedule: a random walk with occasional spikes, one price per
 * step of the scenario, and in some seeds a surge. Every eth_estimateGas answer carries it
 * (+ l1Gas), and a payment or cancel whose gas limit is below its intrinsic gas (21,000 +
 * calldata) + l1Gas is refused "intrinsic gas too low", as Arbitrum's node refuses it: a send
 * whose estimate was made before the price rose is refused, and the signer re-estimates it at the
 * same nonce (signer/broadcaster/regas.ts).
 *
 * A surge is the L1 price outrunning every estimate: while it lasts, each payment's bytes find the
 * price risen past their limit as they arrive, so they are refused, and so is each re-estimate of
 * them. It ends once one nonce has had MAX_REGAS + 1 payments refused (the signer then cancels
 * that nonce: the withdrawal fails CANCELLED, legitimately), or after a bounded number of
 * refusals or steps; then the price settles to the walk's, below the surge's peak, and every other
 * nonce's next re-estimate covers it. Cancels never drive a surge (only the price of the moment
 * refuses them): a cancel refused again and again is the unsendable dead withdrawal's case.
 *
 * A contract creation (the CLI's deploy, sent again by the signer's gap stage or the command's
 * follower, and its replacements) is held to the price of the moment too, with a creation's
 * intrinsic gas (53,000 + calldata + 2 per word of init code): a deploy signed before the price rose
 * past its execution's gas is refused, and is re-signed with a fresh estimate
 * (signer/storedDeploy.ts replaceStoredDeploy's `regas`). Creations never drive a surge. The
 * schedule is drawn up front, from its own stream, so the sends the signer makes (their number
 * depends on timing) draw nothing from it.
 */
import { type Hex, keccak256, parseTransaction, toHex } from "viem";
import type { MethodLie } from "../../chains/testing/lyingChain/proxy.js";
import { MAX_REGAS } from "../../signer/broadcaster/regas.js";
import { intrinsicGas } from "../../signer/gas.js";
import type { Random } from "./random.js";

/** The walk's bounds (gas): the price of a step, a spike included, stays within them. */
export const L1_GAS_MAX = 40_000;
/** How far a surge raises the price past the limit of the payment it refuses (gas). */
const SURGE_OVERSHOOT = 1_000n;
/** A surge ends after this many refused payments even if no nonce ran out of re-estimates. */
const SURGE_MAX_REFUSALS = 4 * (MAX_REGAS + 1);
/** ... or after this many steps. */
const SURGE_MAX_STEPS = 4;

export type L1PricePlan = {
  /** The L1 cost in gas at each step of the schedule (index = step). */
  byStep: readonly number[];
  /** The price once the faults clear (the walk's last, without a spike): below its peak. */
  settled: number;
  /** The step a surge starts at; null: none in this seed. */
  surgeStep: number | null;
};

/** Draw a seed's L1 price schedule for `steps` steps, or undefined (the fault is off). */
export function drawL1Price(stream: Random, steps: number): L1PricePlan | undefined {
  if (!stream.chance(0.4)) return undefined;
  let walk = stream.int(0, 8_000);
  let spike = 0;
  let spikeLeft = 0;
  const byStep: number[] = [];
  for (let step = 0; step < steps; step++) {
    walk = Math.min(L1_GAS_MAX, Math.max(0, walk + stream.int(-2_500, 2_500)));
    if (spikeLeft === 0 && stream.chance(0.15)) {
      spike = stream.int(8_000, 25_000);
      spikeLeft = stream.int(1, 3);
    }
    byStep.push(Math.min(L1_GAS_MAX, walk + (spikeLeft > 0 ? spike : 0)));
    if (spikeLeft > 0) spikeLeft--;
  }
  const surgeStep = stream.chance(0.5) ? stream.int(2, Math.max(2, steps - 5)) : null;
  return { byStep, settled: walk, surgeStep };
}

export type L1PriceStats = {
  /** The highest price of the run (gas), surges included. */
  peak: bigint;
  /** Sends refused "intrinsic gas too low" for the price: payments, cancels, contract creations. */
  refusedPayments: number;
  refusedCancels: number;
  refusedCreations: number;
  /** How the surge went: none drawn, not started yet, running, or why it ended. */
  surge: "none" | "drawn" | "running" | "exhausted" | "cap" | "steps" | "settled";
};

export type L1Price = {
  plan: L1PricePlan;
  /** The price now (gas). */
  now: () => bigint;
  /** Step `step` begins: its price from the plan; a surge starts or ends. */
  atStep: (step: number) => void;
  /** The faults clear: the price settles (below its peak) and stays; a surge still running ends. */
  settle: () => void;
  /** The send intercept (lying proxy `setSendIntercept`): a refusal's message, or undefined. */
  intercept: (raw: string) => string | undefined;
  /** The eth_estimateGas lie (lying proxy `setMethodLie`): the real estimate + the price. */
  estimate: MethodLie;
  /**
   * What the node required of each transaction it accepted (intrinsic gas + the price then), by
   * hash, at its latest acceptance: a mined one's gas limit must cover it.
   */
  accepted: ReadonlyMap<Hex, { need: bigint; l1Gas: bigint }>;
  stats: () => L1PriceStats;
};

/**
 * The fault's state for one seed; `hot` is the wallet whose 0-value transfers to itself are
 * cancels; `trace` hears each price change and refusal.
 */
export function createL1Price(
  plan: L1PricePlan,
  hot: Hex,
  trace: (line: string) => void = () => {},
): L1Price {
  const self = hot.toLowerCase();
  let price = BigInt(plan.byStep[0] ?? plan.settled);
  let peak = price;
  let step = 0;
  let surge: L1PriceStats["surge"] = plan.surgeStep === null ? "none" : "drawn";
  /** During a surge: the distinct payments refused, per nonce, and in all. */
  const surgeRefused = new Map<bigint, Set<Hex>>();
  let surgeRefusals = 0;
  let refusedPayments = 0;
  let refusedCancels = 0;
  let refusedCreations = 0;
  const accepted = new Map<Hex, { need: bigint; l1Gas: bigint }>();
  const setPrice = (p: bigint) => {
    if (p !== price) trace(`  l1: price ${price} -> ${p}${surge === "running" ? " (surge)" : ""}`);
    price = p;
    if (p > peak) peak = p;
  };
  const endSurge = (why: "exhausted" | "cap" | "steps" | "settled") => {
    surge = why;
    trace(`  l1: the surge ends (${why})`);
    setPrice(BigInt(plan.byStep[step] ?? plan.settled));
  };
  return {
    plan,
    now: () => price,
    atStep(s) {
      step = s;
      if (surge === "running" && plan.surgeStep !== null && s >= plan.surgeStep + SURGE_MAX_STEPS)
        return endSurge("steps");
      if (surge === "drawn" && s === plan.surgeStep) {
        surge = "running";
        trace("  l1: a surge starts: the price outruns every payment's estimate");
      }
      if (surge !== "running") setPrice(BigInt(plan.byStep[s] ?? plan.settled));
    },
    settle() {
      if (surge === "running") surge = "settled";
      if (surge === "drawn") surge = "none";
      setPrice(BigInt(plan.settled));
    },
    intercept(raw) {
      let tx: ReturnType<typeof parseTransaction>;
      try {
        tx = parseTransaction(raw as Hex);
      } catch {
        return undefined;
      }
      if (tx.gas === undefined) return undefined;
      const creation = !tx.to;
      const cancel = tx.to?.toLowerCase() === self && (tx.value ?? 0n) === 0n;
      const intrinsic = creation ? creationIntrinsicGas(tx.data) : intrinsicGas(tx.data);
      const hash = keccak256(raw as Hex);
      if (surge === "running" && !cancel && !creation) {
        // The price outruns the estimate these bytes were signed with.
        const past = tx.gas - intrinsic + SURGE_OVERSHOOT;
        if (past > price) setPrice(past);
        const nonce = BigInt(tx.nonce ?? 0);
        const refused = surgeRefused.get(nonce) ?? new Set<Hex>();
        refused.add(hash);
        surgeRefused.set(nonce, refused);
        surgeRefusals++;
      }
      const need = intrinsic + price;
      if (tx.gas < need) {
        if (creation) refusedCreations++;
        else if (cancel) refusedCancels++;
        else refusedPayments++;
        const message = `intrinsic gas too low: gas ${tx.gas}, minimum needed ${need}`;
        const what = creation ? "creation" : cancel ? "cancel" : "payment";
        trace(`  l1: refused the ${what} at nonce ${tx.nonce}: ${message}`);
        // The price settles once a nonce has run out of re-estimates (the signer cancels it next).
        if (surge === "running") {
          if ([...surgeRefused.values()].some((s) => s.size > MAX_REGAS)) endSurge("exhausted");
          else if (surgeRefusals >= SURGE_MAX_REFUSALS) endSurge("cap");
        }
        return message;
      }
      accepted.set(hash, { need, l1Gas: price });
      return undefined;
    },
    estimate(real) {
      if (real.error) return { error: real.error };
      if (typeof real.result !== "string") return { result: real.result };
      return { result: toHex(BigInt(real.result) + price) };
    },
    accepted,
    stats: () => ({ peak, refusedPayments, refusedCancels, refusedCreations, surge }),
  };
}

/** A contract creation's intrinsic gas (EIP-2, EIP-3860): a call's + 32,000 + 2 per word of init code. */
function creationIntrinsicGas(data: Hex = "0x"): bigint {
  const bytes = BigInt((data.length - 2) / 2);
  return intrinsicGas(data) + 32_000n + 2n * ((bytes + 31n) / 32n);
}
