/**
 * Normalise the two trace formats nodes offer into flat call frames with a `reverted` flag that
 * covers the frame and all its ancestors (a child of a reverted frame moved no value, even when
 * the child itself reports success).
 */
import type { Hex } from "viem";
import type { ChainConfig } from "../config.js";
import { ChainDataInconsistentError, RpcResponseError } from "../errors.js";
import type { CallFrame } from "./types.js";

/**
 * The adapter's trace method for a chain's `tracesMethod` (undefined: try `trace_block`, fall back
 * to `debug_traceBlockByHash` when the node refuses it). A forced method that the node refuses
 * fails the read (the indexer retries and alerts) rather than silently recording no internal value.
 * `debug_traceBlockByNumber`, the name configs used before, means the same debug method: the
 * adapter asks by hash either way (framesFromGeth says why).
 */
export function traceMethodFor(
  chain: Pick<ChainConfig, "tracesMethod">,
): "trace_block" | "debug" | undefined {
  if (chain.tracesMethod === "trace_block") return "trace_block";
  if (
    chain.tracesMethod === "debug_traceBlockByHash" ||
    chain.tracesMethod === "debug_traceBlockByNumber"
  )
    return "debug";
  return undefined;
}

/** `trace_block` (Parity/OpenEthereum format, served by anvil, reth, erigon, nethermind). */
export type ParityTrace = {
  type: string;
  action: {
    from?: Hex;
    to?: Hex;
    value?: Hex;
    callType?: string;
    address?: Hex;
    balance?: Hex;
    refundAddress?: Hex;
  };
  result?: { address?: Hex } | null;
  error?: string;
  traceAddress: number[];
  transactionHash: Hex | null;
  transactionPosition: number | null;
  blockHash?: Hex;
};

export function framesFromParity(traces: ParityTrace[]): CallFrame[] {
  // Key of every reverted frame per transaction, to mark descendants.
  const reverted = new Set<string>();
  for (const t of traces) {
    if (t.error && t.transactionHash)
      reverted.add(`${t.transactionHash}/${t.traceAddress.join(".")}`);
  }
  const frames: CallFrame[] = [];
  for (const t of traces) {
    if (!t.transactionHash || t.transactionPosition === null) continue; // block rewards
    let kind: CallFrame["kind"];
    let from: Hex | undefined;
    let to: Hex | undefined;
    let value: Hex | undefined;
    if (t.type === "call") {
      // delegatecall/staticcall/callcode move no value to `to`.
      if (t.action.callType !== "call") continue;
      kind = "call";
      from = t.action.from;
      to = t.action.to;
      value = t.action.value;
    } else if (t.type === "create") {
      kind = "create";
      from = t.action.from;
      to = t.result?.address;
      value = t.action.value;
    } else if (t.type === "suicide" || t.type === "selfdestruct") {
      kind = "selfdestruct";
      from = t.action.address;
      to = t.action.refundAddress;
      value = t.action.balance;
    } else continue;
    if (!from || !to || !value) continue;
    let isReverted = false;
    for (let depth = 0; depth <= t.traceAddress.length && !isReverted; depth++) {
      isReverted = reverted.has(`${t.transactionHash}/${t.traceAddress.slice(0, depth).join(".")}`);
    }
    frames.push({
      txHash: t.transactionHash,
      txIndex: t.transactionPosition,
      blockHash: t.blockHash,
      path: t.traceAddress,
      kind,
      from,
      to,
      value: BigInt(value),
      reverted: isReverted,
    });
  }
  return frames;
}

/** `debug_traceBlockByHash` with `{ tracer: "callTracer" }` (geth, bor, bsc, op-geth, nitro, anvil). */
export type GethCallFrame = {
  type: string;
  from: Hex;
  to?: Hex;
  value?: Hex;
  error?: string;
  calls?: GethCallFrame[];
};
/** One transaction's answer: its trace, or the error tracing it hit (a per-transaction timeout). */
export type GethTxTrace = { txHash?: Hex; result?: GethCallFrame; error?: string };

/**
 * The frames of one block's callTracer answer. Unlike trace_block's, the answer names no block, so
 * the block is pinned by asking for it by hash (`blockHash`, set on every frame: extractFacts'
 * same-block check then applies as to trace_block's) and the answer must fit the block's
 * transactions (`txHashes`, all of them in block order): one trace per transaction, any hash it
 * names the block's at that position. Asked by number, an endpoint on a sibling block at the same
 * height answers for its block, and its value transfers would be stored as facts of ours. An answer
 * that does not fit is refused (the read is retried), never attributed by position.
 */
export function framesFromGeth(
  traces: GethTxTrace[],
  txHashes: Hex[],
  blockHash: Hex,
): CallFrame[] {
  if (traces.length !== txHashes.length)
    throw new ChainDataInconsistentError(
      `trace of block ${blockHash} has ${traces.length} transactions, the block ${txHashes.length}`,
    );
  const frames: CallFrame[] = [];
  traces.forEach((trace, txIndex) => {
    const txHash = txHashes[txIndex]!;
    if (trace.txHash !== undefined && trace.txHash.toLowerCase() !== txHash.toLowerCase())
      throw new ChainDataInconsistentError(
        `trace at position ${txIndex} of block ${blockHash} is of ${trace.txHash}, not the block's ${txHash}`,
      );
    if (!trace.result)
      throw new RpcResponseError(
        "debug_traceBlockByHash",
        0,
        `no trace of ${txHash} in block ${blockHash}: ${trace.error ?? "empty answer"}`,
      );
    const walk = (frame: GethCallFrame, path: number[], parentReverted: boolean) => {
      const isReverted = parentReverted || Boolean(frame.error);
      const type = frame.type.toUpperCase();
      const kind: CallFrame["kind"] | undefined =
        type === "CALL"
          ? "call"
          : type === "CREATE" || type === "CREATE2"
            ? "create"
            : type === "SELFDESTRUCT"
              ? "selfdestruct"
              : undefined;
      if (kind && frame.to && frame.value) {
        frames.push({
          txHash,
          txIndex,
          blockHash,
          path,
          kind,
          from: frame.from,
          to: frame.to,
          value: BigInt(frame.value),
          reverted: isReverted,
        });
      }
      frame.calls?.forEach((child, i) => {
        walk(child, [...path, i], isReverted);
      });
    };
    walk(trace.result, [], false);
  });
  return frames;
}
