/**
 * JSON-RPC shapes as nodes return them (hex strings), kept raw on purpose: the indexer reads
 * hundreds of thousands of logs and only converts the few fields it stores.
 */
import type { Hex } from "viem";

export type RawTransaction = {
  hash: Hex;
  from: Hex;
  to: Hex | null;
  value: Hex;
  /** Calldata (read only to check a direct ERC-20 transfer's Transfer log is in the logs read). */
  input?: Hex;
  transactionIndex: Hex;
  blockHash: Hex;
  blockNumber: Hex;
};

export type RawBlock<T = RawTransaction> = {
  number: Hex;
  hash: Hex;
  parentHash: Hex;
  timestamp: Hex;
  logsBloom?: Hex;
  /** The header's root of the block's transactions (chains/evm/blockBody.ts: is the body whole?). */
  transactionsRoot?: Hex;
  transactions: T[];
};

export type RawReceipt = {
  transactionHash: Hex;
  transactionIndex: Hex;
  blockHash: Hex;
  blockNumber: Hex;
  from: Hex;
  to: Hex | null;
  status: Hex;
  gasUsed: Hex;
  effectiveGasPrice?: Hex;
  /** The transaction type (0x7e: an OP-stack deposit, whose receipt has no l1Fee). */
  type?: Hex;
  /** OP-stack chains: the L1 data fee the sender paid on top of gas (chains/evm/feePaid.ts). */
  l1Fee?: Hex;
  /** OP-stack chains since Isthmus: the operator fee's parameters (not the fee: chains/evm/operatorFee.ts). */
  operatorFeeScalar?: Hex;
  operatorFeeConstant?: Hex;
  contractAddress: Hex | null;
  /** The transaction's logs (read only to check a range's eth_getLogs answer is whole). */
  logs?: RawLog[];
};

export type RawLog = {
  address: Hex;
  topics: Hex[];
  data: Hex;
  blockNumber: Hex;
  blockHash: Hex;
  transactionHash: Hex;
  transactionIndex: Hex;
  logIndex: Hex;
  removed?: boolean;
};

/**
 * One call frame with its value, flattened from `trace_block` or `debug_traceBlockByHash`
 * (callTracer). `path` is the frame's position in its transaction's call tree ([] = top level).
 */
export type CallFrame = {
  txHash: Hex;
  txIndex: number;
  blockHash: Hex | undefined;
  path: number[];
  kind: "call" | "create" | "selfdestruct";
  from: Hex;
  to: Hex;
  value: bigint;
  /** This frame or one of its ancestors reverted: its value did not move. */
  reverted: boolean;
};
