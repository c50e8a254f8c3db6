/**
 * chains: the chain config schema (a config file's `chains[]` entry, `ChainConfig`, the finality
 * rule), the chain registry (built-in definitions; the config file is the source of truth at run
 * time) and the EVM adapter on viem: JSON-RPC with fallback across endpoints, retry and backoff on
 * timeouts, 429 and 5xx; batched calls; adaptive eth_getLogs ranges; blocks, receipts, traces;
 * balances (multicall3 where deployed); raw-transaction send. It never touches the database.
 *
 *   const adapter = createEvmAdapter(chainConfig, { common });
 *   await adapter.client.estimateFeesPerGas();      // viem PublicClient on the fallback transport
 *   await adapter.sendRawTransaction(signedBytes);   // returns the tx hash
 */

export {
  type ChainConfig,
  type ConfirmationRule,
  chainSchema,
  confirmationRuleSchema,
  finalityProblem,
  finalityRule,
  type TokenConfig,
  tokenSchema,
} from "./config.js";
export {
  BalanceUnknownError,
  ChainDataInconsistentError,
  NoHealthyEndpointError,
  RpcResponseError,
  RpcUnavailableError,
} from "./errors.js";
export { EMPTY_TRANSACTIONS_ROOT, transactionsLeftOut } from "./evm/blockBody.js";
export { bloomBits, bloomHas, bloomMayContain, bloomOf } from "./evm/bloom.js";
export { publicClientFor, watchNewHeads } from "./evm/clients.js";
export {
  adapterPerChain,
  createEvmAdapter,
  type EvmAdapter,
  type EvmAdapterOptions,
  type HeightRead,
  isLogRangeLimit,
  logKey,
  type ReceiptsOfBlock,
  readFinalizedBlock,
  TRANSFER_TOPIC,
  type TracedBlock,
} from "./evm/createEvmAdapter.js";
export { feeFieldMissing, feePaid, receiptFieldMissing } from "./evm/feePaid.js";
export {
  GAS_PRICE_ORACLE_ABI,
  OP_GAS_PRICE_ORACLE,
  operatorFeeAsked,
  operatorFeePaid,
  readOperatorFee,
} from "./evm/operatorFee.js";
export type { CallFrame, RawBlock, RawLog, RawReceipt, RawTransaction } from "./evm/types.js";
export { rpcMetrics } from "./metrics.js";
export { type KnownChain, knownChains, MULTICALL3_ADDRESS, multicall3For } from "./registry.js";
export {
  createRpcClient,
  type EndpointHead,
  endpointLabel,
  type ReadOptions,
  type RpcCall,
  type RpcClient,
} from "./rpc.js";
export { checkTokens, type TokenCheck } from "./tokenCheck.js";
