/**
 * The chain config schema: one entry of the config file's `chains[]` (RPC endpoints, confirmation
 * and finality rules, fees, sweeps, listed tokens, reconciliation and attestation settings), its
 * types, and the finality contract every module reads. foundation/config.ts loads the file and owns
 * everything else in it; it takes this schema from its caller (`loadConfig(chainSchema)`), and this
 * file registers `ChainConfig` as the type of `Config.chains` (`ConfigChainRegistry` below), so
 * `common.config.chains` is typed everywhere while foundation imports nothing of ours.
 */
import { z } from "zod";
import {
  addressSchema as address,
  decimalStringSchema as decimalString,
  urlSchema as url,
} from "../foundation/config.js";
import { ConfigError } from "../foundation/errors.js";

/** The native asset's token address (assets are keyed chain id + token). */
const NATIVE = "0x0000000000000000000000000000000000000000";

type L1DataFee = "none" | "op-stack";

/**
 * The L1 data fee model of the public chains the registry defines (chains/registry.ts; its test
 * holds this to viem's definitions): an OP-stack chain charges every transaction an L1 fee outside
 * gas, the others none. A file that leaves `l1DataFee` out for one of them gets its model, not
 * `none`; the other model is refused. On Base with `none` the signer's budget leaves the L1 fee
 * out (the node refuses a send the wallet cannot pay for, its nonce taken) and a receipt missing
 * `l1Fee` reads as a fee without it; on an L1 with `op-stack` no receipt would ever be whole.
 */
export const KNOWN_L1_DATA_FEE: ReadonlyMap<number, L1DataFee> = new Map([
  [1, "none"],
  [56, "none"],
  [137, "none"],
  [42161, "none"],
  [10, "op-stack"],
  [8453, "op-stack"],
]);

/**
 * The public chains whose gas carries the L1 cost (Arbitrum: a transaction's gas covers its L1 data
 * at the L1 price of the moment, so the gas it needs rises with that price). A file that leaves
 * `l1CostInGas` out for one of them gets `true`; `false` is refused.
 */
export const KNOWN_L1_COST_IN_GAS: ReadonlySet<number> = new Set([42161]);

export const tokenSchema = z
  .object({
    address,
    symbol: z.string().min(1).max(16),
    /** Checked at start against the contract's decimals() (chains/tokenCheck.ts, ops/tokenConfig.ts). */
    decimals: z.number().int().min(0).max(36),
    /** Sweep a deposit address once its credited balance of this token reaches this (base units). */
    sweepThreshold: decimalString.optional(),
    /** Above this a hot wallet's balance is moved to the chain's cold address (base units). */
    hotCeiling: decimalString.optional(),
  })
  .strict();

export const confirmationRuleSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("blocks"), blocks: z.number().int().min(0).max(10_000) }).strict(),
  z.object({ kind: z.literal("finalized") }).strict(),
]);

export const chainSchema = z
  .object({
    /** Short stable name used on the CLI and in the API (`--chains local-a`). */
    key: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "must be lowercase letters, digits and dashes"),
    chainId: z.number().int().positive(),
    name: z.string().min(1),
    rpcUrls: z.array(url).min(1, "at least one RPC URL is required"),
    wsUrl: url.optional(),
    confirmations: confirmationRuleSchema,
    /**
     * When nothing can change any more (N blocks or the node's `finalized` tag); never shallower
     * than `confirmations`. Absent: see `finalityRule` (blocks = max(confirmations, reorgWindow),
     * or `finalized` when confirmations is). A reorg reaching a final block halts the chain.
     */
    finality: confirmationRuleSchema.optional(),
    /** Depth the indexer expects reorgs within; deeper ones are handled but alerted. */
    reorgWindow: z.number().int().min(1).max(100_000),
    blockTimeMs: z.number().int().positive(),
    feeModel: z.enum(["eip1559", "legacy"]),
    /**
     * Record internal value transfers (kind `internal`) from call traces. Only where the chain's
     * node serves `trace_block` or `debug_traceBlockByHash` with callTracer; without it, native
     * deposits sent through contracts are found only by reconciliation (`unattributed_inflow`).
     */
    traces: z.boolean().default(false),
    /**
     * Which trace method to use (absent or `auto`: trace_block, then debug_traceBlockByHash).
     * `debug_traceBlockByNumber`, the name of earlier configs, selects the same: the debug method
     * is always asked by hash (a sibling block at the same height must not answer).
     */
    tracesMethod: z
      .enum(["auto", "trace_block", "debug_traceBlockByHash", "debug_traceBlockByNumber"])
      .optional(),
    nativeSymbol: z.string().min(1).max(16).default("ETH"),
    nativeDecimals: z.number().int().min(0).max(36).default(18),
    /**
     * Deposit crediting's catch-up pass: blocks below the crediting watermark re-read per periodic
     * sweep (a rotation over the history; absent: 1000), crediting confirmed deposits that skipped it.
     */
    creditingCatchupBlocks: z.number().int().min(1).max(1_000_000).optional(),
    /** Beyond this many blocks behind the head the indexer is `degraded` in /readyz (and alerted), not failed. */
    maxLagBlocks: z.number().int().positive().default(50),
    /**
     * Stored blocks kept below the published finalized block (audit trail; a reorg cannot reach
     * them); older ones are pruned. Absent: 10,000; never fewer than 2 × reorgWindow. Facts stay.
     */
    blockRetention: z.number().int().min(0).optional(),
    /** First block to index (backfill starts here on an empty database). */
    startBlock: z.number().int().min(0).default(0),
    /** Fee cap: no attempt is ever signed above this max fee per gas / gas price (wei). */
    maxFeePerGas: decimalString
      .refine((v) => v > 0n, "must be positive (a cap of 0 signs attempts that never mine)")
      .default(500_000_000_000n),
    /** A transaction not mined after this long is replaced with bumped fees. */
    bumpIntervalMs: z.number().int().positive().default(30_000),
    /** Gas limit = eth_estimateGas + this many basis points (signer/gas.ts; absent: 2000 = 20%). */
    gasLimitMarginBps: z.number().int().min(0).max(100_000).optional(),
    /** No gas limit below this (absent: 21000); intrinsic gas is always the lower bound too. */
    gasLimitFloor: decimalString.optional(),
    /** L1 data cost charged outside gas: `op-stack` (Optimism, Base) or `none` (L1s, Arbitrum). */
    l1DataFee: z.enum(["none", "op-stack"]).optional(),
    /**
     * The chain charges the L1 cost as gas (Arbitrum): a send refused "intrinsic gas too low" may
     * only mean the L1 price rose since its estimate, so it is re-estimated and re-signed at the same
     * nonce, a bounded number of times, before its nonce is cancelled (signer/broadcaster/regas.ts).
     * Absent: true for chain id 42161, false otherwise.
     */
    l1CostInGas: z.boolean().optional(),
    /** Where value above a hot wallet's ceiling goes. */
    coldAddress: address.optional(),
    /** Native asset sweep threshold and hot ceiling (base units). */
    nativeSweepThreshold: decimalString.optional(),
    nativeHotCeiling: decimalString.optional(),
    /** Below this native balance a hot wallet needs funding (alerting only: custody_hot_wallet_floor_wei). */
    nativeHotFloor: decimalString.optional(),
    /** Deposit addresses per sweep transaction (one factory call); bounded by the block gas limit. */
    sweepBatchSize: z.number().int().min(1).max(500).default(50),
    /** How often the worker looks for deposit addresses to sweep and hot balances above ceiling. */
    sweepIntervalMs: z.number().int().positive().default(30_000),
    tokens: z.array(tokenSchema).default([]),
    /** Reconciliation's on-chain balance reads (ledger/recon/onchain.ts); absent: the defaults. */
    recon: z
      .object({
        /** Deposit addresses read per run beyond those with activity (the slow full rotation). */
        rotation: z.number().int().min(0).max(1_000_000).default(200),
        /** (address, asset) reads per request: one Multicall3 call or one JSON-RPC batch. */
        batchSize: z.number().int().min(1).max(5_000).default(500),
        /** Balance requests started per second at most (the provider's rate limit). */
        requestsPerSecond: z.number().positive().max(10_000).default(20),
        /** Balance requests in flight at once at most (each still waits for requestsPerSecond). */
        inFlight: z.number().int().min(1).max(64).default(4),
        /** Multicall3 address where the chain registry knows none (absent: JSON-RPC batches). */
        multicall3: address.optional(),
        /**
         * Native balances, and each token's, by one eth_call of creation code per up to 768
         * addresses (ledger/recon/onchain.ts `balanceLoopCode`, `tokenBalanceLoopCode`); false:
         * through Multicall3 or batches. A node that refuses it, or a token call that reverts, is
         * read the other way without this setting.
         */
        balanceLoop: z.boolean().default(true),
      })
      .strict()
      .optional(),
    /** Proof of reserves (ledger/attest): on-chain attestations; absent: this chain is not attested. */
    attestation: z
      .object({
        /** Attest the newest clean reconciliation run's block when it is this many blocks past the last. */
        everyBlocks: z.number().int().min(1).max(10_000_000),
        /** How often the reconciler role looks whether an attestation is due. */
        intervalMs: z.number().int().min(1_000).max(86_400_000).default(60_000),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((chain, ctx) => {
    const problem = finalityProblem(chain);
    if (problem) ctx.addIssue({ code: "custom", path: ["finality"], message: problem });
    const l1DataFee = KNOWN_L1_DATA_FEE.get(chain.chainId);
    if (l1DataFee && chain.l1DataFee && chain.l1DataFee !== l1DataFee)
      ctx.addIssue({
        code: "custom",
        path: ["l1DataFee"],
        message:
          l1DataFee === "op-stack"
            ? `chain ${chain.chainId} is an OP-stack chain: it charges an L1 data fee outside gas, so l1DataFee must be "op-stack" (or left out)`
            : `chain ${chain.chainId} charges no L1 data fee outside gas (its receipts carry no l1Fee): l1DataFee must be "none" (or left out)`,
      });
    if (KNOWN_L1_COST_IN_GAS.has(chain.chainId) && chain.l1CostInGas === false)
      ctx.addIssue({
        code: "custom",
        path: ["l1CostInGas"],
        message: `chain ${chain.chainId} charges the L1 cost as gas: l1CostInGas must be true (or left out)`,
      });
    if (chain.l1CostInGas && (chain.l1DataFee ?? l1DataFee) === "op-stack")
      ctx.addIssue({
        code: "custom",
        path: ["l1CostInGas"],
        message:
          "an OP-stack chain charges the L1 cost outside gas (l1DataFee op-stack): l1CostInGas must be false (or left out)",
      });
    // A native cold move sends all above the ceiling and pays its gas from what stays: below one
    // transfer's gas at the fee cap, it could never pay its own gas. (The signer's intake budget
    // keeps such a move unsigned, with an insufficient_funds alert, rather than taking a nonce; this
    // refuses the config that would make every move wait. A contract cold address's extra gas and
    // an OP-stack L1 fee are left to that budget: they are not known from the config.)
    const moveGas = 21_000n * chain.maxFeePerGas;
    if (chain.nativeHotCeiling !== undefined && chain.nativeHotCeiling < moveGas)
      ctx.addIssue({
        code: "custom",
        path: ["nativeHotCeiling"],
        message: `below one transfer's gas at the fee cap (21000 x maxFeePerGas = ${moveGas} wei): a cold move of everything above it could not pay its own gas`,
      });
    // One entry per token: an asset's decimals, sweep threshold and hot ceiling come from one place.
    const tokens = new Set<string>();
    chain.tokens.forEach((t, i) => {
      const token = t.address.toLowerCase();
      if (token === NATIVE)
        ctx.addIssue({
          code: "custom",
          path: ["tokens", i, "address"],
          message: "the zero address is the native asset (nativeSymbol, nativeHotCeiling, …)",
        });
      else if (tokens.has(token))
        ctx.addIssue({
          code: "custom",
          path: ["tokens", i, "address"],
          message: `token ${t.address} is listed twice`,
        });
      tokens.add(token);
    });
  })
  // A listed public chain's own L1 data fee model and L1-cost-in-gas where the file leaves them out.
  .transform((chain) => {
    const l1DataFee = chain.l1DataFee ?? KNOWN_L1_DATA_FEE.get(chain.chainId);
    const l1CostInGas = chain.l1CostInGas ?? KNOWN_L1_COST_IN_GAS.has(chain.chainId);
    return { ...chain, ...(l1DataFee ? { l1DataFee } : {}), l1CostInGas };
  });

export type ConfirmationRule = z.output<typeof confirmationRuleSchema>;

/** Why a chain's explicit finality rule is shallower than its confirmation rule (null: fine). */
export function finalityProblem(chain: {
  confirmations: ConfirmationRule;
  finality?: ConfirmationRule | undefined;
}): string | null {
  const { confirmations, finality } = chain;
  if (!finality) return null;
  if (confirmations.kind === "finalized" && finality.kind === "blocks")
    return 'finality must be { kind: "finalized" } when confirmations is (it may not be shallower than confirmations)';
  if (confirmations.kind === "blocks" && finality.kind === "blocks") {
    if (finality.blocks < confirmations.blocks)
      return `finality (${finality.blocks} blocks) is shallower than confirmations (${confirmations.blocks} blocks)`;
    if (finality.blocks < 1) return "finality must be at least 1 block";
  }
  return null;
}

/**
 * The chain's finality rule (shared contract): the configured one, or by default
 * blocks = max(confirmations, reorgWindow), and the `finalized` tag when confirmations uses it.
 * Works on hand-built configs too (tests spread a parsed chain and change confirmations).
 */
export function finalityRule(
  chain: Pick<ChainConfig, "confirmations" | "reorgWindow"> & {
    finality?: ConfirmationRule | undefined;
  },
): ConfirmationRule {
  const problem = finalityProblem(chain);
  if (problem) throw new ConfigError([{ field: "finality", message: problem }]);
  if (chain.finality) return chain.finality;
  if (chain.confirmations.kind === "finalized") return { kind: "finalized" };
  return { kind: "blocks", blocks: Math.max(chain.confirmations.blocks, chain.reorgWindow, 1) };
}

export type ChainConfig = z.output<typeof chainSchema>;
export type TokenConfig = z.output<typeof tokenSchema>;

declare module "../foundation/config.js" {
  /** `Config.chains` holds this module's ChainConfig (foundation/config.ts, `ConfiguredChain`). */
  interface ConfigChainRegistry {
    chain: ChainConfig;
  }
}
