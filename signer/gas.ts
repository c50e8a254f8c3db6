/**
 * Gas from the chain: every transaction's gas limit comes from `eth_estimateGas` (never a constant:
 * on Arbitrum a plain transfer costs more than 21,000 because the L1 data cost is charged as gas),
 * raised by the chain's margin and never below its floor or the intrinsic gas. Where an L2 charges
 * the L1 data cost outside gas (OP stack, Base: the GasPriceOracle predeploy's `getL1Fee(bytes)`),
 * that fee is estimated too, and so is the operator fee OP-stack chains charge outside gas since
 * Isthmus (`getOperatorFee(gasLimit)`): the wallet's budget for a send is value + gas x max fee +
 * L1 fee + operator fee. Both are the chain's own contract's answer, never our copy of a formula
 * (each hardfork so far changed one: Ecotone and Fjord the L1 fee's, Jovian the operator fee's).
 * A gas limit a node would refuse for intrinsic gas is refused here with a clear error.
 */
import {
  decodeFunctionData,
  type Hex,
  isHex,
  type PublicClient,
  parseGwei,
  serializeTransaction,
  toFunctionSelector,
} from "viem";
import { forwarderFactory } from "../chains/contracts/index.js";
import { GAS_PRICE_ORACLE_ABI, OP_GAS_PRICE_ORACLE, readOperatorFee } from "../chains/index.js";
import { BaseError } from "../foundation/errors.js";
import { mapLimit } from "../foundation/mapLimit.js";
import type { Fees } from "./fees.js";

/** Base cost of every transaction (EIP-2028 / yellow paper G_transaction). */
export const TX_BASE_GAS = 21_000n;
/** Calldata cost per byte (EIP-2028). */
export const ZERO_BYTE_GAS = 4n;
export const NONZERO_BYTE_GAS = 16n;
/** Default headroom over the estimate for state changing between estimate and inclusion: 20%. */
export const DEFAULT_GAS_LIMIT_MARGIN_BPS = 2_000;
export { OP_GAS_PRICE_ORACLE };

/** How a chain charges the L1 data cost of a transaction. */
export type L1DataFeeModel =
  /** L1 chains, and Arbitrum (its L1 cost is charged as gas, so the estimate already includes it). */
  | "none"
  /** OP stack (Optimism, Base): a separate fee from the GasPriceOracle predeploy. */
  | "op-stack";

/** The chain config fields gas estimation reads (foundation/config.ts chain schema; all optional). */
export type GasPolicy = {
  chainId: number;
  /** Added to the estimate, in basis points (default 2000 = 20%). */
  gasLimitMarginBps?: number | undefined;
  /** No gas limit below this (default 21,000). */
  gasLimitFloor?: bigint | undefined;
  l1DataFee?: L1DataFeeModel | undefined;
};

/** A gas limit below the transaction's intrinsic gas: every node refuses it, so it is never signed. */
export class IntrinsicGasTooLowError extends BaseError {
  override name = "IntrinsicGasTooLowError";
  constructor(args: { gasLimit: bigint; intrinsic: bigint; requestId?: string | undefined }) {
    super(
      `Gas limit ${args.gasLimit} is below the intrinsic gas ${args.intrinsic} (21000 + calldata); a node would refuse it`,
      {
        code: "SIGNER_INTRINSIC_GAS_TOO_LOW",
        meta: {
          gas_limit: args.gasLimit.toString(),
          intrinsic_gas: args.intrinsic.toString(),
          ...(args.requestId ? { request_id: args.requestId } : {}),
        },
      },
    );
  }
}

/**
 * The GasPriceOracle did not tell a send's L1 data fee or operator fee (no answer, a node error, an
 * answer that is no number): no evidence of a fee of 0, nor a fact about the request. The request
 * stays pending, unsigned (never failed for it), and is read again next round.
 */
export class OpStackFeeUnknownError extends BaseError {
  override name = "OpStackFeeUnknownError";
  constructor(args: { chainId: number; cause: unknown; requestId?: string | undefined }) {
    super(`The GasPriceOracle of chain ${args.chainId} did not tell a send's L1 or operator fee`, {
      code: "SIGNER_OP_STACK_FEE_UNKNOWN",
      retryable: true,
      cause: args.cause,
      meta: { chain_id: args.chainId, ...(args.requestId ? { request_id: args.requestId } : {}) },
    });
  }
}

/** Intrinsic gas of a call (not a contract creation): 21,000 plus 4 per zero and 16 per other calldata byte. */
export function intrinsicGas(data: Hex = "0x"): bigint {
  if (!isHex(data, { strict: true }) || data.length % 2 !== 0) {
    throw new TypeError("data must be 0x-prefixed hex with whole bytes");
  }
  let gas = TX_BASE_GAS;
  for (let i = 2; i < data.length; i += 2) {
    gas += data[i] === "0" && data[i + 1] === "0" ? ZERO_BYTE_GAS : NONZERO_BYTE_GAS;
  }
  return gas;
}

/** Refuse (throw IntrinsicGasTooLowError) a gas limit a node would reject as intrinsic gas too low. */
export function assertIntrinsicGas(tx: { gasLimit: bigint; data?: Hex; requestId?: string }): void {
  const intrinsic = intrinsicGas(tx.data ?? "0x");
  if (tx.gasLimit < intrinsic) {
    throw new IntrinsicGasTooLowError({
      gasLimit: tx.gasLimit,
      intrinsic,
      requestId: tx.requestId,
    });
  }
}

/** The gas limit for an estimate: estimate + margin (rounded up), never below the floor or intrinsic gas. */
export function gasLimitFor(estimate: bigint, policy: GasPolicy, data: Hex = "0x"): bigint {
  const bps = BigInt(policy.gasLimitMarginBps ?? DEFAULT_GAS_LIMIT_MARGIN_BPS);
  const withMargin = (estimate * (10_000n + bps) + 9_999n) / 10_000n;
  const floor = policy.gasLimitFloor ?? TX_BASE_GAS;
  const intrinsic = intrinsicGas(data);
  let limit = withMargin;
  if (limit < floor) limit = floor;
  if (limit < intrinsic) limit = intrinsic;
  return limit;
}

/**
 * Gas the estimate cannot see. An estimate runs the call on the state of one block; by its
 * inclusion, transactions before it (anyone's) may have changed what the call reads, and with it
 * the work it does. Two such changes cost more than the chain's margin covers:
 * - an ERC-20 `transfer` whose recipient's balance is emptied meanwhile (an exchange's deposit
 *   address swept, a contract paying out): its balance slot is written from 0, 20,000 gas against
 *   2,900 (EIP-2200), about 17,100 more than the estimate's ~35,000: out of gas on chain;
 * - a `sweep` of the ForwarderFactory: each address's forwarder moves every listed token and the
 *   native value the address holds *when it runs*. A deposit landing meanwhile (or back after a
 *   reorg the estimate's block had not seen) adds a token transfer and a Swept event per (address,
 *   token), a value call per address, and the hot wallet's first balance write of a token from 0
 *   (measured on anvil with the test token: 13,909, 9,189 and 17,100 gas; a proxied token such as
 *   USDC costs some 10,000 more per transfer, hence the allowances below).
 * The headroom is added to the estimate with its margin: unused gas is not charged (the budget
 * reserves it, gas x max fee, until the send mines).
 */
export const TOKEN_TRANSFER_HEADROOM = 20_000n;
export const SWEEP_HEADROOM = { perAddress: 12_000n, perAddressToken: 30_000n, perToken: 20_000n };
/** EIP-7825's cap on one transaction's gas (Ethereum since Fusaka): headroom never crosses it. */
export const MAX_TX_GAS = 16_777_216n;

const TRANSFER_SELECTOR = toFunctionSelector("transfer(address,uint256)");
const SWEEP_SELECTOR = toFunctionSelector("sweep(bytes32[],address[])");

/** The headroom of a call (its calldata's): 0 for a call whose work the estimate sees whole. */
export function stateHeadroom(data: Hex): bigint {
  const selector = data.slice(0, 10).toLowerCase();
  if (selector === TRANSFER_SELECTOR) return TOKEN_TRANSFER_HEADROOM;
  if (selector !== SWEEP_SELECTOR) return 0n;
  let salts: readonly Hex[];
  let tokens: readonly Hex[];
  try {
    const call = decodeFunctionData({ abi: forwarderFactory.abi, data });
    if (call.functionName !== "sweep") return 0n;
    [salts, tokens] = call.args as readonly [readonly Hex[], readonly Hex[]];
  } catch {
    return 0n; // not the factory's sweep: its estimate stands alone
  }
  const addresses = BigInt(salts.length);
  const listed = BigInt(tokens.length);
  return (
    addresses * SWEEP_HEADROOM.perAddress +
    addresses * listed * SWEEP_HEADROOM.perAddressToken +
    listed * SWEEP_HEADROOM.perToken
  );
}

/** `limit` raised by `headroom`, up to MAX_TX_GAS (a limit already past it is left as it is). */
export function withHeadroom(limit: bigint, headroom: bigint): bigint {
  const raised = limit + headroom;
  if (raised <= MAX_TX_GAS) return raised;
  return limit > MAX_TX_GAS ? limit : MAX_TX_GAS;
}

export type TxGasRequest = {
  from: Hex;
  to: Hex;
  value: bigint;
  data: Hex;
  /** The caller's own limit: checked against intrinsic gas, not estimated. */
  gasLimit?: bigint | null | undefined;
  requestId?: string | undefined;
};

export type TxGasEstimate = {
  gasLimit: bigint;
  /** What eth_estimateGas said (null when the caller gave the limit). */
  estimated: bigint | null;
  /** L1 data fee charged outside gas (OP stack); 0 where there is none. */
  l1Fee: bigint;
  /** Operator fee charged outside gas for `gasLimit` (OP stack since Isthmus); 0 where there is none. */
  operatorFee: bigint;
};

/**
 * Gas for one transaction from the chain, every read at `at`'s block when given (latest
 * otherwise): the estimate with the chain's margin, plus the call's stateHeadroom. Throws
 * IntrinsicGasTooLowError for a caller-given limit below intrinsic gas; a node's refusal
 * (reverted, insufficient funds, transient) propagates for the caller to classify
 * (signer/nodeErrors.ts). A fee the GasPriceOracle does not tell throws OpStackFeeUnknownError:
 * not the request's revert (viem words a node's internal error as one).
 *
 * The estimate is asked at a block, not at `latest`, because `latest` is whatever the answering
 * node has: a lagging or syncing node estimates on its old state, where a token or the forwarder
 * factory may have no code yet. A call to an address without code "succeeds" for 21,000 gas and
 * calldata, and a transfer signed with that limit runs out of gas on chain (the withdrawal failed,
 * its gas spent). Asked at the head of the node that told the wallet's count and balance, only a
 * node at that block answers (chains/evm/createEvmAdapter.ts `stateReadAt`).
 */
export async function estimateTxGas(
  client: PublicClient,
  policy: GasPolicy,
  tx: TxGasRequest,
  at?: ReadAt | undefined,
): Promise<TxGasEstimate> {
  let gasLimit: bigint;
  let estimated: bigint | null = null;
  if (tx.gasLimit !== undefined && tx.gasLimit !== null) {
    assertIntrinsicGas({
      gasLimit: tx.gasLimit,
      data: tx.data,
      ...(tx.requestId ? { requestId: tx.requestId } : {}),
    });
    gasLimit = tx.gasLimit;
  } else {
    estimated = await client.estimateGas({
      account: tx.from,
      to: tx.to,
      value: tx.value,
      data: tx.data,
      ...(at ? { blockNumber: at.blockNumber } : {}),
    });
    gasLimit = withHeadroom(gasLimitFor(estimated, policy, tx.data), stateHeadroom(tx.data));
  }
  try {
    const l1Fee = await estimateL1DataFee(client, policy, tx, at);
    const operatorFee = (await operatorFees(client, policy, [gasLimit], at)).get(gasLimit)!;
    return { gasLimit, estimated, l1Fee, operatorFee };
  } catch (error) {
    throw new OpStackFeeUnknownError({
      chainId: policy.chainId,
      cause: error,
      requestId: tx.requestId,
    });
  }
}

/**
 * The block one round's state reads are at (intake: the head of the node that told the wallet's
 * count and balance): its estimates, and the L1 data fees it compares (one block, one L1 price).
 */
export type ReadAt = { blockNumber: bigint };

/**
 * The L1 data fee a chain charges outside gas for this transaction (0 where it has none). On the
 * OP stack it is `GasPriceOracle.getL1Fee(serialized tx)`, serialised as viem's `estimateL1Fee`
 * does (stub gas and fee fields, a few bytes off at most; the oracle pads for the signature),
 * at `at`'s block when given (latest otherwise).
 */
export async function estimateL1DataFee(
  client: PublicClient,
  policy: GasPolicy,
  tx: { from: Hex; to: Hex; value: bigint; data: Hex },
  at?: ReadAt | undefined,
): Promise<bigint> {
  if ((policy.l1DataFee ?? "none") === "none") return 0n;
  const serialized = serializeTransaction({
    type: "eip1559",
    chainId: policy.chainId,
    to: tx.to,
    value: tx.value,
    ...(tx.data !== "0x" ? { data: tx.data } : {}),
    gas: tx.data !== "0x" ? 300_000n : 21_000n,
    maxFeePerGas: parseGwei("5"),
    maxPriorityFeePerGas: parseGwei("1"),
    nonce: 1,
  });
  return client.readContract({
    address: OP_GAS_PRICE_ORACLE,
    abi: GAS_PRICE_ORACLE_ABI,
    functionName: "getL1Fee",
    args: [serialized],
    ...(at ? { blockNumber: at.blockNumber } : {}),
  });
}

/**
 * The L1 data fee at `at` of a cancel of `from` (a 0-value self-transfer without data): the
 * yardstick of the L1 price. The OP stack's fee is the transaction's size term times one price
 * (the L1 base and blob fees and the chain's scalars), so a fee stored with the yardstick read at
 * the same block scales to the price now as fee x yardstick now / yardstick then
 * (broadcaster/budget.ts `inFlightCost`): one oracle read a round for every send in flight.
 */
export function l1FeeYardstick(
  client: PublicClient,
  policy: GasPolicy,
  from: Hex,
  at: ReadAt,
): Promise<bigint> {
  return estimateL1DataFee(client, policy, { from, to: from, value: 0n, data: "0x" }, at);
}

/**
 * The operator fee an OP-stack chain charges outside gas (since Isthmus) for a send of each gas
 * limit, at `at`'s block (latest otherwise): `GasPriceOracle.getOperatorFee(gasLimit)`, 0 on other
 * chains. The node charges it on the gas limit up front (its balance check, as for gas; the unused
 * part is refunded), so the gas limit is its upper bound, and the chain's contract computes it, so
 * a hardfork that changes the formula (Jovian did) changes nothing here.
 *
 * An oracle without the function (its implementation before Isthmus) reverts, with no revert data,
 * in a call the node executed at that block: the chain's answer that it charges no operator fee
 * there (the Isthmus upgrade transactions replace the oracle in the fork's first block, whose
 * operator fee parameters are still 0), so it counts 0. A sent transaction included after the fork
 * is counted at the fee the oracle asks then: the in-flight budget reads it every round
 * (broadcaster/budget.ts). Any other failure (no answer, another node error, an answer that is no
 * number) is no evidence of a fee of 0: it throws, and the caller signs nothing on it.
 */
export async function operatorFees(
  client: PublicClient,
  policy: GasPolicy,
  gasLimits: readonly bigint[],
  at?: ReadAt | undefined,
): Promise<Map<bigint, bigint>> {
  const fees = new Map<bigint, bigint>();
  const distinct = [...new Set(gasLimits)];
  if ((policy.l1DataFee ?? "none") === "none" || distinct.length === 0) {
    for (const g of distinct) fees.set(g, 0n);
    return fees;
  }
  const blockNumber = at?.blockNumber;
  // One read first: an oracle without the function has it for no gas limit (one call, not one each).
  const first = await readOperatorFee(client, distinct[0]!, blockNumber);
  if (first === null) {
    for (const g of distinct) fees.set(g, 0n);
    return fees;
  }
  fees.set(distinct[0]!, first);
  await mapLimit(distinct.slice(1), 8, async (g) => {
    const fee = await readOperatorFee(client, g, blockNumber);
    // The oracle at the same block answered for the first: its revert now is no answer, not a 0.
    if (fee === null)
      throw new Error(`GasPriceOracle.getOperatorFee(${g}) reverted after answering`);
    fees.set(g, fee);
  });
  return fees;
}

/**
 * The most a send can take from the wallet: value + gas limit x max fee + the L1 data fee + the
 * operator fee (of the gas limit).
 */
export function maxCost(args: {
  value: bigint;
  gasLimit: bigint;
  fees: Fees;
  l1Fee: bigint;
  operatorFee: bigint;
}) {
  const perGas = args.fees.type === "legacy" ? args.fees.gasPrice : args.fees.maxFeePerGas;
  return args.value + args.gasLimit * perGas + args.l1Fee + args.operatorFee;
}

/**
 * Which of `costs` (in nonce order) the wallet can pay for: each that fits what the ones taken
 * before it leave. One that does not fit stays pending and takes no nonce, so the ones after it
 * may take the next nonces without a gap; it must not hold them (no nonce is taken for a send the
 * node would refuse for insufficient funds, which would block every later nonce, and no cheap send
 * waits behind it: a sweep, which pays only gas and refills the wallet, among them).
 */
export function affordable(costs: readonly bigint[], balance: bigint): boolean[] {
  let left = balance;
  return costs.map((cost) => {
    if (cost > left) return false;
    left -= cost;
    return true;
  });
}
