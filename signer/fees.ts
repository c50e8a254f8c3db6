/**
 * Fees: EIP-1559 from eth_feeHistory percentiles (legacy gas price where the chain has no 1559),
 * always clamped to the chain's cap, the replacement rule for a stuck transaction, and the fee
 * fields of a payload to sign (`withFees`) or of signed bytes (`feesOf`).
 */
import type { Address, Hex, PublicClient, TransactionSerializable } from "viem";

export type Fees =
  | { type: "eip1559"; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }
  | { type: "legacy"; gasPrice: bigint };

/** Geth-style pools need both fee fields raised by at least 10% to replace a pooled tx. */
export const REPLACEMENT_BUMP_PERCENT = 10n;
/** Some chains report a zero tip (anvil, idle L2s); a tiny floor keeps blocks including us. */
export const MIN_PRIORITY_FEE = 1_000_000n;

const raise = (v: bigint) => (v * (100n + REPLACEMENT_BUMP_PERCENT) + 99n) / 100n + 1n;
const max = (a: bigint, b: bigint) => (a > b ? a : b);
const min = (a: bigint, b: bigint) => (a < b ? a : b);

function median(values: bigint[]): bigint {
  if (values.length === 0) return 0n;
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Market fees: tip = median of the last blocks' median rewards; max fee = 2 x next base fee + tip
 * (survives six full blocks of base-fee growth). Both are clamped to the cap.
 *
 * With `at`, the history ends at that block (the head of the node the caller read the wallet
 * from), asked only of a node at or past it: `latest` is the answering node's, and a syncing node's
 * is a block from long ago, whose base fee may be a fraction of today's (every send signed on it
 * waits for bump after bump). A legacy gas price (`eth_gasPrice`) names no block: with `at`, it
 * is asked of a node at or past it through `gasPriceAt` (ChainView's), as a node behind prices gas
 * from its own old blocks too (the first endpoint's answer otherwise).
 */
export async function estimateFees(
  client: PublicClient,
  chain: { feeModel: "eip1559" | "legacy"; maxFeePerGas: bigint },
  at?: bigint,
  gasPriceAt?: (block: bigint) => Promise<bigint>,
): Promise<Fees> {
  if (chain.feeModel === "legacy") {
    const price =
      at !== undefined && gasPriceAt ? await gasPriceAt(at) : await client.getGasPrice();
    return { type: "legacy", gasPrice: min(price, chain.maxFeePerGas) };
  }
  const history = await client.getFeeHistory({
    blockCount: 5,
    ...(at === undefined ? { blockTag: "latest" as const } : { blockNumber: at }),
    rewardPercentiles: [50],
  });
  const baseFee = history.baseFeePerGas.at(-1) ?? 0n;
  const tip = max(median((history.reward ?? []).map((r) => r[0] ?? 0n)), MIN_PRIORITY_FEE);
  const maxFee = min(2n * baseFee + tip, chain.maxFeePerGas);
  return { type: "eip1559", maxFeePerGas: maxFee, maxPriorityFeePerGas: min(tip, maxFee) };
}

export type BumpResult =
  /** Replace with these fees (capped says the cap clamped them: alert). */
  | { replace: true; fees: Fees; capped: boolean }
  /** The cap leaves no room for a valid replacement: keep the current attempt and alert. */
  | { replace: false; capped: true }
  /** No market fees known (bump.ts): keep the current attempt, no alert. */
  | { replace: false; capped: false };

/**
 * The fees for a replacement at the same nonce: each field raised at least 10% (or to the market
 * if higher), never above the cap. If the cap does not leave room for a valid replacement, say so.
 */
export function bumpFees(previous: Fees, market: Fees, cap: bigint): BumpResult {
  if (previous.type === "legacy") {
    const wanted = max(raise(previous.gasPrice), market.type === "legacy" ? market.gasPrice : 0n);
    if (raise(previous.gasPrice) > cap) return { replace: false, capped: true };
    return {
      replace: true,
      fees: { type: "legacy", gasPrice: min(wanted, cap) },
      capped: wanted > cap,
    };
  }
  const m = market.type === "eip1559" ? market : { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n };
  const minFee = raise(previous.maxFeePerGas);
  const minTip = raise(previous.maxPriorityFeePerGas);
  if (minFee > cap || minTip > cap) return { replace: false, capped: true };
  const wantedFee = max(minFee, m.maxFeePerGas);
  const fee = min(wantedFee, cap);
  // The tip may never exceed the max fee; it still must rise by 10%.
  const tip = min(max(minTip, m.maxPriorityFeePerGas), fee);
  return {
    replace: true,
    fees: { type: "eip1559", maxFeePerGas: fee, maxPriorityFeePerGas: tip },
    capped: wantedFee > cap,
  };
}

/** A payload to sign without its fee fields; no `to` is a contract creation. */
export type FeelessTx = {
  chainId: number;
  nonce: number;
  to?: Address;
  value: bigint;
  data: Hex;
  gas: bigint;
};

/** The payload signed with `fees`: a legacy or a 1559 transaction, as the fees are. */
export function withFees(base: FeelessTx, fees: Fees): TransactionSerializable {
  return fees.type === "legacy"
    ? { ...base, type: "legacy", gasPrice: fees.gasPrice }
    : {
        ...base,
        type: "eip1559",
        maxFeePerGas: fees.maxFeePerGas,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      };
}

/**
 * The fees signed bytes pay (their parsed payload: viem's parseTransaction), the `previous` of a
 * replacement (bumpFees); undefined for any other kind of transaction (2930, 4844, 7702), which
 * nothing here signs.
 */
export function feesOf(tx: TransactionSerializable): Fees | undefined {
  if (tx.type === "legacy" && tx.gasPrice !== undefined)
    return { type: "legacy", gasPrice: tx.gasPrice };
  if (
    tx.type === "eip1559" &&
    tx.maxFeePerGas !== undefined &&
    tx.maxPriorityFeePerGas !== undefined
  )
    return {
      type: "eip1559",
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
    };
  return undefined;
}
