import { BaseError } from "../foundation/errors.js";

/** Every RPC endpoint failed (network, timeout, 429, 5xx) through all retry rounds. */
export class RpcUnavailableError extends BaseError {
  override name = "RpcUnavailableError";
  constructor(method: string, chainId: number, cause: unknown) {
    super(`no RPC endpoint of chain ${chainId} answered ${method}`, {
      code: "CHAIN_RPC_UNAVAILABLE",
      retryable: true,
      cause,
      details: cause instanceof Error ? cause.message : String(cause),
      meta: { method, chain_id: chainId },
    });
  }
}

/** The node answered with a JSON-RPC error (it is not retried on another endpoint). */
export class RpcResponseError extends BaseError {
  override name = "RpcResponseError";
  readonly rpcCode: number;
  readonly data: unknown;
  constructor(method: string, rpcCode: number, message: string, data?: unknown) {
    super(`${method} failed: ${message}`, {
      code: "CHAIN_RPC_ERROR",
      meta: { method, rpc_code: rpcCode },
    });
    this.rpcCode = rpcCode;
    this.data = data;
  }
}

/** The node returned data that is inconsistent with itself (e.g. a log whose block hash differs). */
export class ChainDataInconsistentError extends BaseError {
  override name = "ChainDataInconsistentError";
  constructor(details: string) {
    super("chain data changed while it was being fetched", {
      code: "CHAIN_DATA_INCONSISTENT",
      retryable: true,
      details,
    });
  }
}

/**
 * No endpoint of the chain is at the block a read needs: the ones that answer are behind (lagging,
 * syncing) and the others fail. Nothing is concluded from it; the indexer waits (readiness fails).
 */
export class NoHealthyEndpointError extends BaseError {
  override name = "NoHealthyEndpointError";
  constructor(method: string, chainId: number, atLeast: bigint, heads: string, cause?: unknown) {
    super(`no RPC endpoint of chain ${chainId} has reached block ${atLeast} for ${method}`, {
      code: "CHAIN_NO_HEALTHY_ENDPOINT",
      retryable: true,
      cause,
      details: `endpoint heads: ${heads}`,
      meta: { method, chain_id: chainId, at_least: atLeast.toString() },
    });
  }
}

/**
 * A balance read got no answer to read: `balanceOf` by `eth_call` returned less than a word ("0x"
 * from a node without the token's code at that block: lagging, pruned, another fork, or a wrong
 * token address). Missing data is never evidence: the balance is unknown, never 0.
 */
export class BalanceUnknownError extends BaseError {
  override name = "BalanceUnknownError";
  constructor(chainId: number, token: string, holder: string, block: string) {
    super(`the node returned no ${token} balance of ${holder} at ${block} on chain ${chainId}`, {
      code: "CHAIN_BALANCE_UNKNOWN",
      retryable: true,
      meta: { chain_id: chainId, token, holder, block },
    });
  }
}

/**
 * A hot wallet's deploy (`contracts deploy`, `por deploy`) cannot be signed under the chain's fee
 * cap: the base fee the chain asks now is above `maxFeePerGas`. Its fees are clamped to the cap as
 * every withdrawal attempt's are, but a deploy's stored bytes are never replaced, so one that
 * cannot be included is refused instead of holding the wallet's lease until the base fee falls.
 */
export class DeployFeeAboveCapError extends BaseError {
  override name = "DeployFeeAboveCapError";
  constructor(chainKey: string, cap: bigint, baseFee: bigint) {
    super(
      `the ${chainKey} deploy is not signed: the chain's base fee (${baseFee} wei) is above its fee cap maxFeePerGas ${cap} (config chains[].maxFeePerGas); deploy when the base fee is lower, or raise the cap`,
      {
        code: "CHAIN_DEPLOY_FEE_ABOVE_CAP",
        meta: {
          chain: chainKey,
          field: "maxFeePerGas",
          max_fee_per_gas: String(cap),
          base_fee: String(baseFee),
        },
      },
    );
  }
}
