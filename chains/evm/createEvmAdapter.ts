/**
 * The EVM adapter: everything the custody asks of an EVM node, over one fallback RPC client.
 * `client` is a viem PublicClient on the same fallback transport (for the signer: fee history,
 * gas estimates, nonces, receipts); the other methods are the bulk reads the indexer needs,
 * kept on raw JSON-RPC shapes for speed.
 */
import {
  type Address,
  createPublicClient,
  custom,
  decodeFunctionResult,
  defineChain,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  multicall3Abi,
  numberToHex,
  type PublicClient,
} from "viem";
import type { Common } from "../../foundation/common.js";
import type { ChainConfig } from "../config.js";
import {
  BalanceUnknownError,
  ChainDataInconsistentError,
  RpcResponseError,
  RpcUnavailableError,
} from "../errors.js";
import { rpcMetrics } from "../metrics.js";
import { multicall3For } from "../registry.js";
import { createRpcClient, type ReadOptions, type RpcCall, type RpcClient } from "../rpc.js";
import { transactionsLeftOut } from "./blockBody.js";
import { receiptFieldMissing } from "./feePaid.js";
import {
  framesFromGeth,
  framesFromParity,
  type GethTxTrace,
  type ParityTrace,
  traceMethodFor,
} from "./traces.js";
import type { CallFrame, RawBlock, RawLog, RawReceipt } from "./types.js";

/** keccak256("Transfer(address,address,uint256)") */
export const TRANSFER_TOPIC: Hex =
  "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/**
 * The node's `finalized` block, number and hash (lowercase), or null where it has none (every node
 * refuses the tag with an RPC error; an empty answer is "none yet"). The hash says which
 * chain the tag is about: an endpoint on another fork finalizes other blocks.
 */
export async function readFinalizedBlock(
  rpc: RpcClient,
): Promise<{ number: bigint; hash: string } | null> {
  try {
    // One endpoint refusing the tag while another knows it: the other's answer (its hash is
    // checked against ours by every reader).
    const block = await rpc.request<RawBlock<Hex> | null>(
      "eth_getBlockByNumber",
      ["finalized", false],
      { refusalMovesOn: true },
    );
    return block ? { number: BigInt(block.number), hash: block.hash.toLowerCase() } : null;
  } catch (error) {
    if (error instanceof RpcResponseError) return null;
    throw error;
  }
}

/** A block whose receipts are read: its number, hash, transaction count and the receipts wanted. */
export type ReceiptsOfBlock = { number: bigint; hash: Hex; txCount: number; txHashes: Hex[] };

/** A block whose call frames are read: its number and hash, and all its transactions in order. */
export type TracedBlock = { number: bigint; hash: Hex; txHashes: Hex[] };

/** One block's logs of a filter, asked by the block's hash (getLogsAtBlock). */
export type LogsAtBlockQuery = {
  blockHash: Hex;
  number: bigint;
  address: Address | Address[];
  topics?: (Hex | Hex[] | null)[];
  /**
   * Logs known to be in the block (an earlier answer's, a receipt's): an answer without one of
   * them is cut, not the block's logs, and the next endpoint is asked (rpc `incomplete`).
   */
  mustHold?: RawLog[];
};

/**
 * How a read by block number picks its endpoint, beyond "at or past the height": `preferBestHead`
 * asks a node at the best head seen first, any node at the height only when none is there
 * (rpc.ts ReadOptions.preferBestHead: a node stuck on a losing fork answers every height up to
 * its head with its fork's blocks).
 */
export type HeightRead = { preferBestHead?: boolean };

export type EvmAdapter = {
  chain: ChainConfig;
  rpc: RpcClient;
  /** viem client over the fallback transport (retries happen below it). */
  client: PublicClient;
  getHead: (read?: HeightRead) => Promise<bigint>;
  /**
   * The node's `latest` block with full transactions (one call: the realtime poll), from an
   * endpoint at or past `atLeast`; NoHealthyEndpointError when none is. A `latest` without its
   * transactions is passed over as getBlocks does.
   */
  getLatestBlock: (atLeast?: bigint, read?: HeightRead) => Promise<RawBlock>;
  /** The `finalized` block's number and hash (lowercase), or null when the node does not know the tag. */
  getFinalizedBlock: () => Promise<{ number: bigint; hash: string } | null>;
  /**
   * Blocks with full transactions, in the order asked. Only endpoints at or past the highest number
   * are asked; one answering null for a block moves the read on (it is behind, not reorged), and
   * with none left the read fails with NoHealthyEndpointError. So does one answering a block
   * without its transactions while its header holds some (a node missing the body, blockBody.ts:
   * counted as incomplete, `field="transactions"`); when every endpoint answers so, that answer
   * is returned and the caller refuses it.
   */
  getBlocks: (numbers: bigint[], read?: HeightRead) => Promise<(RawBlock | null)[]>;
  /** Block headers (no transactions), in the order asked; same endpoint rule as getBlocks. */
  getHeaders: (numbers: bigint[], read?: HeightRead) => Promise<(RawBlock<Hex> | null)[]>;
  /**
   * Receipts of the transactions `txHashes` of each block (`hash`, with `txCount` transactions):
   * eth_getBlockReceipts where served, else (or when every endpoint at the block refuses it) one
   * call per transaction. An answer without them, with fewer receipts than the block has
   * transactions, or with receipts of another block, is a node that lacks our block: the read
   * moves on. The result may hold more than the asked receipts.
   */
  getBlockReceipts: (blocks: ReceiptsOfBlock[]) => Promise<RawReceipt[][]>;
  /**
   * ERC-20 Transfer logs of `tokens` in [fromBlock, toBlock]. The range is split as needed:
   * halved when a provider refuses it (result limits, response size, timeouts) and grown back
   * after successes.
   */
  getTransferLogs: (
    args: {
      fromBlock: bigint;
      toBlock: bigint;
      tokens: Address[];
    },
    read?: HeightRead,
  ) => Promise<RawLog[]>;
  /**
   * Transfer logs of `tokens` in one block by hash (immune to range limits and to forks), block
   * `number`: only endpoints at or past it are asked. No logs is believed only from an endpoint
   * that shows it has the block (some answer an unknown hash with no logs): else the read moves on.
   * `mustHold`: logs known to be in the block; an answer lacking one (cut) moves the read on too, and
   * when no endpoint answers whole the first answer comes back for the caller to refuse.
   */
  getTransferLogsAtBlock: (
    args: { blockHash: Hex; tokens: Address[]; number: bigint; mustHold?: RawLog[] }[],
  ) => Promise<RawLog[][]>;
  /**
   * Logs of `address` (optionally `topics`) in one block by hash, block `number`: as
   * getTransferLogsAtBlock, no logs is believed only from an endpoint that shows it has the block.
   */
  getLogsAtBlock: (args: LogsAtBlockQuery[]) => Promise<RawLog[][]>;
  /**
   * Value-carrying call frames per block (trace_block, else debug_traceBlockByHash), batched.
   * `hash` pins the block (a frame of another block at that height is refused) and `txHashes` are
   * all its transactions, in order.
   */
  getCallFrames: (blocks: TracedBlock[]) => Promise<CallFrame[][]>;
  /**
   * Native balance at the head. No past-block form: by number, an endpoint on another fork at that
   * height answers for its own block (reconciliation and attestation read past balances by hash,
   * EIP-1898).
   */
  getNativeBalance: (address: Address) => Promise<bigint>;
  /**
   * ERC-20 balances of many holders at one block (multicall3 where deployed, else a batch of
   * eth_call). At a past block only endpoints at or past it are asked, and one refusing the read
   * moves it on. An answer without a balance (no code at the token or at Multicall3 there) is
   * BalanceUnknownError, never 0.
   */
  getTokenBalances: (args: {
    token: Address;
    holders: Address[];
    blockNumber?: bigint;
    /**
     * Our block at `blockNumber`: the reads name it (EIP-1898, `requireCanonical`), so an
     * endpoint on another fork at that height refuses instead of answering for its own block.
     */
    blockHash?: Hex;
  }) => Promise<bigint[]>;
  /** Sends signed bytes; returns the tx hash. Safe to repeat: the same bytes are the same tx. */
  sendRawTransaction: (raw: Hex) => Promise<Hex>;
};

export type EvmAdapterOptions = {
  timeoutMs?: number;
  maxBatchSize?: number;
  /** Longest cool-down of a failing endpoint (chains/rpc.ts; default 30 s). */
  maxCoolDownMs?: number;
  /** How long an endpoint's head behind is believed (chains/rpc.ts; default 1 s). */
  headProbeIntervalMs?: number;
  /** The RPC client's clock (chains/rpc.ts; default Date.now). */
  clock?: () => number;
  /** Largest eth_getLogs span in blocks. */
  maxLogRange?: number;
  /** Force a trace method (default: trace_block, then debug_traceBlockByHash if not served). */
  traceMethod?: "trace_block" | "debug";
};

/** Holders per Multicall3 `aggregate3` call of getTokenBalances (as reconciliation's reads). */
const MULTICALL_CHUNK = 500;

// Messages providers use when an eth_getLogs range is too big (result count, size, duration).
const LOG_LIMIT =
  /more than|too many|limit|too large|range|exceed|response size|timeout|timed out|query returned/i;

/** HeightRead as rpc.ts ReadOptions (nothing when not preferred). */
function preferring(read: HeightRead): Pick<ReadOptions, "preferBestHead"> {
  return read.preferBestHead ? { preferBestHead: true } : {};
}

/** Per-transaction answers back into one list per block. */
function unflatten<T>(blocks: { txHashes: Hex[] }[], flat: T[]): T[][] {
  let i = 0;
  return blocks.map((b) => b.txHashes.map(() => flat[i++]!));
}

function maxOf(numbers: bigint[]): bigint | undefined {
  let max: bigint | undefined;
  for (const n of numbers) if (max === undefined || n > max) max = n;
  return max;
}

/**
 * Why trace_block's answer `traces` (asked by number) is not `block`'s, or null when it is: no
 * answer; a frame naming another block (a sibling at that height) or none (nothing then says whose
 * it is); or, for a block with transactions, an answer tracing none (an empty sibling's, not
 * evidence that ours moved no internal value). Such an answer is that endpoint lacking our block:
 * the read moves on to the next endpoint (asking the same one again would get its sibling again).
 */
function notOfBlock(block: TracedBlock, traces: ParityTrace[] | null | undefined): string | null {
  if (!Array.isArray(traces)) return `no trace of block ${block.number} ${block.hash}`;
  if (block.txHashes.length > 0 && !traces.some((t) => t.transactionHash))
    return `trace of block ${block.number} ${block.hash} traces none of its ${block.txHashes.length} transactions`;
  for (const f of framesFromParity(traces))
    if (f.blockHash?.toLowerCase() !== block.hash.toLowerCase())
      return `trace of ${f.txHash} is in block ${f.blockHash ?? "(not named)"}, not the asked ${block.number} ${block.hash}`;
  return null;
}

/** For reads of whole blocks: the lowest block whose answer is null (the node lacks it). */
function nullBlock(results: unknown[], calls: RpcCall[]): bigint | null {
  let lowest: bigint | null = null;
  results.forEach((r, i) => {
    if (r !== null && r !== undefined) return;
    const tag = calls[i]?.params[0];
    if (typeof tag !== "string" || !tag.startsWith("0x")) return;
    const n = BigInt(tag);
    if (lowest === null || n < lowest) lowest = n;
  });
  return lowest;
}

/**
 * State reads and where their block parameter is (viem's readContract, getBalance, …). Also the
 * lying chain's (chains/testing/lyingChain), which answers them at the block its view names.
 */
export const STATE_BLOCK_PARAM: Readonly<Record<string, number>> = {
  eth_call: 1,
  eth_getBalance: 1,
  eth_getTransactionCount: 1,
  eth_getCode: 1,
  eth_getStorageAt: 2,
  eth_createAccessList: 1,
  eth_getProof: 2,
  // A call on the state at that block, as eth_call: a node behind it estimates on its old state.
  eth_estimateGas: 1,
  // The history's newest block: a node behind it tells older base fees.
  eth_feeHistory: 1,
};

/**
 * Read options for a call through the viem client: a state read at a block (by number, or by hash
 * as EIP-1898 names it) is a read of chain data, asked as the adapter's own block reads are. By
 * number, only endpoints at or past that block are asked: a node behind it answers "header not
 * found" (or another node's refusal), which is no evidence of anything, and without this the
 * first endpoint in the list was asked every time and its refusal went back to the caller (a
 * lagging first endpoint held the tracker's operator-fee read of a receipt's block until it caught
 * up; a syncing one, for good). Any refusal moves the read on to the next endpoint (a revert too:
 * every node at the block reverts alike, and the first refusal is the answer). Reads at a tag
 * (`latest`, `pending`, none) are the answering node's now and go as before.
 */
function stateReadAt(method: string, params: readonly unknown[]): ReadOptions | undefined {
  const index = STATE_BLOCK_PARAM[method];
  if (index === undefined) return undefined;
  const block = params[index];
  if (typeof block === "string" && /^0x[0-9a-f]+$/i.test(block))
    return { atLeast: BigInt(block), refusalMovesOn: true };
  if (typeof block === "object" && block !== null && "blockHash" in block)
    return { refusalMovesOn: true };
  return undefined;
}

/**
 * Read options for calls on blocks `numbers` (`lacks`: which block an answer shows missing). A
 * node's JSON-RPC error on such a read is no evidence either: the next endpoint is asked.
 */
function blockRead(
  numbers: bigint[],
  lacks: ReadOptions["lacks"] = nullBlock,
  incomplete?: ReadOptions["incomplete"],
  read: HeightRead = {},
): ReadOptions {
  const atLeast = maxOf(numbers);
  return {
    ...(atLeast === undefined ? {} : { atLeast }),
    lacks,
    refusalMovesOn: true,
    ...(incomplete ? { incomplete } : {}),
    ...preferring(read),
  };
}

/**
 * `incomplete` for reads of blocks with their transactions: "transactions" when an answer's block
 * has none while its header holds some (blockBody.ts): that node lacks the body, another may not.
 */
function bodyLeftOut(results: unknown[]): string | null {
  for (const b of results as (RawBlock | null | undefined)[])
    if (b && transactionsLeftOut(b)) return "transactions";
  return null;
}

/**
 * `incomplete` for receipt reads: the field a wanted receipt of the answer lacks: its `status`
 * (without it a deposit would read as failed), or a fee field (receiptFieldMissing). Another endpoint
 * may send it whole; if none does, the caller's own check refuses it.
 */
function wantedFieldMissing(
  blocks: ReceiptsOfBlock[],
  chain: Pick<ChainConfig, "l1DataFee">,
): NonNullable<ReadOptions["incomplete"]> {
  const wanted = new Set(blocks.flatMap((b) => b.txHashes.map((h) => h.toLowerCase())));
  return (results) => {
    for (const r of results.flat() as (RawReceipt | null | undefined)[]) {
      if (!r || !wanted.has(r.transactionHash.toLowerCase())) continue;
      const missing = receiptFieldMissing(r, chain);
      if (missing !== null) return missing;
    }
    return null;
  };
}

/** A log's place: its transaction and block-wide index. */
export function logKey(log: Pick<RawLog, "transactionHash" | "logIndex">): string {
  return `${log.transactionHash.toLowerCase()}/${BigInt(log.logIndex)}`;
}

/**
 * `incomplete` for logs read by block hash: "logs" when an answer lacks a log its query's
 * `mustHold` names (that endpoint cut it; another may answer whole), else null. Undefined when no
 * query names any.
 */
function lacksKnownLogs(queries: LogsAtBlockQuery[]): ReadOptions["incomplete"] {
  const known = new Map<string, string[]>();
  for (const q of queries)
    if (q.mustHold && q.mustHold.length > 0)
      known.set(q.blockHash.toLowerCase(), q.mustHold.map(logKey));
  if (known.size === 0) return undefined;
  return (results, calls) => {
    for (let i = 0; i < calls.length; i++) {
      if (calls[i]!.method !== "eth_getLogs") continue;
      const filter = calls[i]!.params[0] as { blockHash?: string } | undefined;
      const want = known.get(String(filter?.blockHash).toLowerCase());
      if (!want) continue;
      const answer = results[i];
      if (!Array.isArray(answer)) return "logs";
      const have = new Set((answer as RawLog[]).map(logKey));
      if (!want.every((k) => have.has(k))) return "logs";
    }
    return null;
  };
}

/** A receipt of our block `b` (a node on a sibling block at that height answers for its own). */
function inBlock(b: ReceiptsOfBlock, r: RawReceipt | null | undefined): boolean {
  return !!r && r.blockHash?.toLowerCase() === b.hash.toLowerCase();
}

/**
 * eth_getBlockReceipts' answer holds block `b`'s wanted receipts, each of our block, and no fewer
 * receipts than the block has transactions (more is tolerated: bor adds a state-sync receipt).
 */
function wholeReceipts(b: ReceiptsOfBlock, list: RawReceipt[] | null | undefined): boolean {
  if (!Array.isArray(list) || list.length < b.txCount) return false;
  if (!list.every((r) => inBlock(b, r))) return false;
  const have = new Set(list.map((r) => r.transactionHash.toLowerCase()));
  return b.txHashes.every((h) => have.has(h.toLowerCase()));
}

/**
 * `lacks` for reads whose calls each name their block (`blockOf`, by the call's first param: a
 * number, a hash or a transaction): the lowest block whose answer is not `whole` (that endpoint
 * lacks it), or null.
 */
function lowestLacking<B extends { number: bigint }, T>(
  blockOf: Map<unknown, B>,
  whole: (block: B, answer: T | null | undefined) => boolean,
): NonNullable<ReadOptions["lacks"]> {
  return (results, calls) => {
    let lowest: bigint | null = null;
    results.forEach((r, i) => {
      const b = blockOf.get(calls[i]?.params[0]);
      if (!b || whole(b, r as T | null | undefined)) return;
      if (lowest === null || b.number < lowest) lowest = b.number;
    });
    return lowest;
  };
}

export function isLogRangeLimit(error: unknown): boolean {
  if (error instanceof RpcUnavailableError) return true; // timeouts on big ranges look like this
  if (error instanceof RpcResponseError)
    return error.rpcCode === -32005 || LOG_LIMIT.test(error.shortMessage);
  return false;
}

/**
 * One adapter per chain, made on first use and kept: by `make` when given (tests pass their own),
 * else createEvmAdapter.
 */
export function adapterPerChain(
  common: Pick<Common, "metrics" | "logger" | "shutdown">,
  make?: (chain: ChainConfig) => EvmAdapter,
): (chain: ChainConfig) => EvmAdapter {
  const adapters = new Map<number, EvmAdapter>();
  return (chain) => {
    let a = adapters.get(chain.chainId);
    if (!a) {
      a = make ? make(chain) : createEvmAdapter(chain, { common });
      adapters.set(chain.chainId, a);
    }
    return a;
  };
}

export function createEvmAdapter(
  chain: ChainConfig,
  { common }: { common: Pick<Common, "metrics" | "logger" | "shutdown"> },
  options: EvmAdapterOptions = {},
): EvmAdapter {
  const logger = common.logger.child({ component: "evm-adapter", chain_id: chain.chainId });
  const rpc = createRpcClient({
    chainId: chain.chainId,
    urls: chain.rpcUrls,
    timeoutMs: options.timeoutMs ?? 10_000,
    maxBatchSize: options.maxBatchSize ?? 100,
    ...(options.maxCoolDownMs !== undefined ? { maxCoolDownMs: options.maxCoolDownMs } : {}),
    ...(options.headProbeIntervalMs !== undefined
      ? { headProbeIntervalMs: options.headProbeIntervalMs }
      : {}),
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    metrics: rpcMetrics(common.metrics.registry),
    logger,
    signal: common.shutdown.signal,
  });
  const multicall3 = multicall3For(chain.chainId);
  const viemChain = defineChain({
    id: chain.chainId,
    name: chain.name,
    nativeCurrency: {
      name: chain.nativeSymbol,
      symbol: chain.nativeSymbol,
      decimals: chain.nativeDecimals,
    },
    rpcUrls: { default: { http: [...chain.rpcUrls] } },
    // viem caches a head read and polls (receipts, heads) at half a block time, 500 ms to 4 s;
    // without it, 4 s whatever the chain (a deploy followed on a 250 ms chain saw its head late).
    blockTime: chain.blockTimeMs,
    ...(multicall3 ? { contracts: { multicall3: { address: multicall3 } } } : {}),
  });
  const client = createPublicClient({
    chain: viemChain,
    transport: custom(
      {
        async request({ method, params }) {
          const args = (params as unknown[] | undefined) ?? [];
          try {
            return await rpc.request(method, args, stateReadAt(method, args));
          } catch (error) {
            // viem maps a numeric `code` to its typed RPC errors (nonce too low, …).
            if (error instanceof RpcResponseError)
              throw Object.assign(new Error(error.shortMessage), {
                code: error.rpcCode,
                data: error.data,
              });
            throw error;
          }
        },
      },
      { retryCount: 0 },
    ),
  }) as PublicClient;

  const maxLogRange = options.maxLogRange ?? 2_000;
  let logSpan = maxLogRange;
  let blockReceiptsSupported: boolean | undefined;
  let traceMethod = options.traceMethod ?? traceMethodFor(chain);

  async function getTransferLogs(
    {
      fromBlock,
      toBlock,
      tokens,
    }: {
      fromBlock: bigint;
      toBlock: bigint;
      tokens: Address[];
    },
    read: HeightRead = {},
  ): Promise<RawLog[]> {
    if (tokens.length === 0 || toBlock < fromBlock) return [];
    const logs: RawLog[] = [];
    let from = fromBlock;
    while (from <= toBlock) {
      const to = from + BigInt(logSpan) - 1n < toBlock ? from + BigInt(logSpan) - 1n : toBlock;
      try {
        // A node that has not reached `to` answers a range it lacks with no logs: never ask it.
        const part = await rpc.request<RawLog[]>(
          "eth_getLogs",
          [
            {
              fromBlock: numberToHex(from),
              toBlock: numberToHex(to),
              address: tokens,
              topics: [TRANSFER_TOPIC],
            },
          ],
          { atLeast: to, refusalMovesOn: true, ...preferring(read) },
        );
        for (const log of part) logs.push(log);
        from = to + 1n;
        logSpan = Math.min(maxLogRange, logSpan * 2);
      } catch (error) {
        if (!isLogRangeLimit(error) || to === from) throw error;
        logSpan = Math.max(1, Math.floor(Number(to - from + 1n) / 2));
        logger.debug({ msg: "eth_getLogs range shrunk", span: logSpan, error: String(error) });
      }
    }
    return logs;
  }

  async function getBlockReceipts(blocks: ReceiptsOfBlock[]): Promise<RawReceipt[][]> {
    if (blocks.length === 0) return [];
    if (blockReceiptsSupported !== false) {
      try {
        const result = await rpc.batch<RawReceipt[]>(
          blocks.map((b) => ({ method: "eth_getBlockReceipts", params: [numberToHex(b.number)] })),
          blockRead(
            blocks.map((b) => b.number),
            lowestLacking<ReceiptsOfBlock, RawReceipt[]>(
              new Map(blocks.map((b) => [numberToHex(b.number), b])),
              wholeReceipts,
            ),
            wantedFieldMissing(blocks, chain),
          ),
        );
        blockReceiptsSupported = true;
        return result;
      } catch (error) {
        if (!(error instanceof RpcResponseError)) throw error;
        // Every endpoint at the blocks refused: before any answer, it is not served; after one,
        // these blocks' receipts come one per transaction (a refusal is never evidence).
        if (blockReceiptsSupported === true)
          logger.warn({
            msg: "eth_getBlockReceipts refused by every endpoint at the blocks, using per-transaction receipts",
            from_block: blocks[0]!.number.toString(),
            error: error.shortMessage,
          });
        else {
          blockReceiptsSupported = false;
          logger.info({ msg: "eth_getBlockReceipts not served, using per-transaction receipts" });
        }
      }
    }
    // A receipt the node does not return, or one in another block: that node lacks our block.
    const owner = new Map(blocks.flatMap((b) => b.txHashes.map((h) => [h, b] as const)));
    return unflatten(
      blocks,
      await rpc.batch<RawReceipt>(
        blocks.flatMap((b) =>
          b.txHashes.map((h) => ({ method: "eth_getTransactionReceipt", params: [h] })),
        ),
        blockRead(
          blocks.map((b) => b.number),
          lowestLacking<ReceiptsOfBlock, RawReceipt>(owner, inBlock),
          wantedFieldMissing(blocks, chain),
        ),
      ),
    );
  }

  /**
   * Logs by block hash. Geth refuses a hash it does not know (the read moves on), but some nodes
   * answer it with no logs, the same answer as a block without our tokens' Transfers: a deposit
   * would go unrecorded. So a block answered with none is asked again, beside eth_getBlockByHash in
   * one batch to one endpoint: its [] is believed only beside its block at that number; a null (or
   * another block) is that endpoint lacking ours, and the read moves on. An answer with logs shows
   * the node has the block, so a block holding a listed Transfer still costs one call (the realtime
   * poll's budget); a bloom false positive costs two more, in one request.
   */
  async function getLogsAtBlock(queries: LogsAtBlockQuery[]): Promise<RawLog[][]> {
    if (queries.length === 0) return [];
    const logsCall = (q: LogsAtBlockQuery): RpcCall => ({
      method: "eth_getLogs",
      params: [
        {
          blockHash: q.blockHash,
          address: q.address,
          ...(q.topics === undefined ? {} : { topics: q.topics }),
        },
      ],
    });
    const incomplete = lacksKnownLogs(queries);
    const answers = await rpc.batch<RawLog[] | null>(queries.map(logsCall), {
      atLeast: maxOf(queries.map((q) => q.number))!,
      refusalMovesOn: true,
      ...(incomplete ? { incomplete } : {}),
    });
    const empty = queries.filter((_, i) => !answers[i]?.length);
    if (empty.length === 0) return answers as RawLog[][];
    // Each pair side by side, so a batch split in parts keeps a block's two calls together.
    const checked = await rpc.batch<RawLog[] | RawBlock<Hex> | null>(
      empty.flatMap((q) => [
        logsCall(q),
        { method: "eth_getBlockByHash", params: [q.blockHash, false] },
      ]),
      blockRead(
        empty.map((q) => q.number),
        (results) => {
          let lowest: bigint | null = null;
          empty.forEach((q, k) => {
            const block = results[2 * k + 1] as RawBlock<Hex> | null | undefined;
            const known =
              Array.isArray(results[2 * k]) &&
              !!block &&
              BigInt(block.number) === q.number &&
              block.hash.toLowerCase() === q.blockHash.toLowerCase();
            if (!known && (lowest === null || q.number < lowest)) lowest = q.number;
          });
          return lowest;
        },
        incomplete,
      ),
    );
    const again = new Map(empty.map((q, k) => [q, checked[2 * k] as RawLog[]]));
    return queries.map((q, i) => again.get(q) ?? (answers[i] as RawLog[]));
  }

  // Traces of a busy mainnet block run to megabytes: a few blocks per request keeps responses sane.
  const TRACE_BLOCKS_PER_REQUEST = 8;

  async function getCallFrames(blocks: TracedBlock[]): Promise<CallFrame[][]> {
    const out: CallFrame[][] = [];
    for (let i = 0; i < blocks.length; i += TRACE_BLOCKS_PER_REQUEST)
      out.push(...(await getCallFramesChunk(blocks.slice(i, i + TRACE_BLOCKS_PER_REQUEST))));
    return out;
  }

  async function getCallFramesChunk(blocks: TracedBlock[]): Promise<CallFrame[][]> {
    if (blocks.length === 0) return [];
    if (traceMethod !== "debug") {
      try {
        const traces = await rpc.batch<ParityTrace[]>(
          blocks.map((b) => ({ method: "trace_block", params: [numberToHex(b.number)] })),
          blockRead(
            blocks.map((b) => b.number),
            lowestLacking<TracedBlock, ParityTrace[]>(
              new Map(blocks.map((b) => [numberToHex(b.number), b])),
              (b, t) => notOfBlock(b, t) === null,
            ),
          ),
        );
        traceMethod = "trace_block";
        return traces.map((t, i) => {
          // Checked by the read (lacks); kept as the last word on what is stored.
          const wrong = notOfBlock(blocks[i]!, t);
          if (wrong !== null) throw new ChainDataInconsistentError(wrong);
          return framesFromParity(t);
        });
      } catch (error) {
        if (!(error instanceof RpcResponseError) || traceMethod === "trace_block") throw error;
        traceMethod = "debug";
        logger.info({ msg: "trace_block not served, using debug_traceBlockByHash" });
      }
    }
    // By hash: an endpoint on a sibling block at this height answers null or an error, not its
    // block's traces (which name no block). A null is that endpoint lacking the block (behind).
    const traces = await rpc.batch<GethTxTrace[] | null>(
      blocks.map((b) => ({
        method: "debug_traceBlockByHash",
        params: [b.hash, { tracer: "callTracer" }],
      })),
      blockRead(
        blocks.map((b) => b.number),
        lowestLacking<TracedBlock, GethTxTrace[]>(
          new Map(blocks.map((b) => [b.hash, b])),
          (_, trace) => trace !== null && trace !== undefined,
        ),
      ),
    );
    return traces.map((t, i) => {
      const b = blocks[i]!;
      if (!t) throw new ChainDataInconsistentError(`no trace of block ${b.number} ${b.hash}`);
      return framesFromGeth(t, b.txHashes, b.hash);
    });
  }

  return {
    chain,
    rpc,
    client,
    getHead: async (read = {}) =>
      BigInt(await rpc.request<Hex>("eth_blockNumber", [], preferring(read))),
    getLatestBlock: (atLeast, read = {}) =>
      rpc.request<RawBlock>("eth_getBlockByNumber", ["latest", true], {
        ...(atLeast === undefined ? {} : { atLeast }),
        refusalMovesOn: true,
        // `asked`: the height this endpoint was asked at (the best head, when preferred).
        lacks: ([block], _, asked) => {
          if (block === null || block === undefined) return asked ?? 0n;
          const n = BigInt((block as RawBlock).number);
          return asked !== undefined && n < asked ? n + 1n : null;
        },
        incomplete: bodyLeftOut,
        ...preferring(read),
      }),
    getFinalizedBlock: () => readFinalizedBlock(rpc),
    getBlocks: (numbers, read) =>
      rpc.batch<RawBlock | null>(
        numbers.map((n) => ({ method: "eth_getBlockByNumber", params: [numberToHex(n), true] })),
        blockRead(numbers, nullBlock, bodyLeftOut, read),
      ),
    getHeaders: (numbers, read) =>
      rpc.batch<RawBlock<Hex> | null>(
        numbers.map((n) => ({ method: "eth_getBlockByNumber", params: [numberToHex(n), false] })),
        blockRead(numbers, nullBlock, undefined, read),
      ),
    getBlockReceipts,
    getTransferLogs,
    getCallFrames,
    getTransferLogsAtBlock: (queries) =>
      getLogsAtBlock(
        queries.map((q) => ({
          blockHash: q.blockHash,
          number: q.number,
          address: q.tokens,
          topics: [TRANSFER_TOPIC],
          ...(q.mustHold ? { mustHold: q.mustHold } : {}),
        })),
      ),
    getLogsAtBlock,
    getNativeBalance: (address) => client.getBalance({ address }),
    async getTokenBalances({ token, holders, blockNumber, blockHash }) {
      if (holders.length === 0) return [];
      const tag = blockHash ?? (blockNumber === undefined ? "latest" : numberToHex(blockNumber));
      const block = blockHash ? { blockHash, requireCanonical: true } : tag;
      // A node that has not reached a past block refuses it (or, pruned or on another fork, lacks
      // its state or our block): never ask one behind it, and a refusal moves the read on
      // (missing data is never evidence).
      const read: ReadOptions = {
        ...(blockNumber === undefined ? {} : { atLeast: blockNumber }),
        ...(tag === "latest" ? {} : { refusalMovesOn: true }),
      };
      const balanceOf = (h: Address) =>
        encodeFunctionData({ abi: erc20Abi, functionName: "balanceOf", args: [h] });
      // A token without code at that block (a lagging, pruned or forked node, a wrong address)
      // answers "0x": the balance is unknown, never 0.
      const word = (r: Hex, i: number) => {
        if (r.length < 66) throw new BalanceUnknownError(chain.chainId, token, holders[i]!, tag);
        return BigInt(r.slice(0, 66));
      };
      if (multicall3) {
        // aggregate3 by hand, not viem's multicall: its eth_call carries our read options, and its
        // empty answers are ours to name (viem's decoding errors said nothing of a balance). In
        // chunks, one after another: a sweep's candidates can be thousands, and one eth_call of
        // them all would pass a node's gas cap for calls (geth: 50M) or a provider's size limit.
        const out: bigint[] = [];
        for (let from = 0; from < holders.length; from += MULTICALL_CHUNK) {
          const chunk = holders.slice(from, from + MULTICALL_CHUNK);
          const raw = await rpc.request<Hex>(
            "eth_call",
            [
              {
                to: multicall3,
                data: encodeFunctionData({
                  abi: multicall3Abi,
                  functionName: "aggregate3",
                  args: [
                    chunk.map((h) => ({
                      target: token,
                      allowFailure: false,
                      callData: balanceOf(h),
                    })),
                  ],
                }),
              },
              block,
            ],
            read,
          );
          // No Multicall3 code at that block answers "0x" too: nothing was read.
          if (raw.length < 66) throw new BalanceUnknownError(chain.chainId, token, chunk[0]!, tag);
          const results = decodeFunctionResult({
            abi: multicall3Abi,
            functionName: "aggregate3",
            data: raw,
          });
          out.push(...results.map((r, k) => word(r.returnData, from + k)));
        }
        return out;
      }
      const raw = await rpc.batch<Hex>(
        holders.map((h) => ({
          method: "eth_call",
          params: [{ to: token, data: balanceOf(h) }, block],
        })),
        read,
      );
      return raw.map(word);
    },
    sendRawTransaction: (raw) => rpc.request<Hex>("eth_sendRawTransaction", [raw]),
  };
}
