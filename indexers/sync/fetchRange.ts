/**
 * Fetch stage: everything a block range needs before it can be committed: blocks with
 * transactions, Transfer logs of listed tokens (ranged, with bloom-guided recovery of logs a
 * provider left out), receipts of watched transactions, and call frames where traces are on.
 * `fetchBlockData` does the same for one block the realtime poll already holds; `recoverCutLogs`
 * (run by the commit, against the current watched set) checks either answer was not cut.
 */
import { type Address, type Hex, hexToBytes } from "viem";
import {
  bloomHas,
  ChainDataInconsistentError,
  logKey,
  type RawBlock,
  type RawLog,
  type RawReceipt,
  TRANSFER_TOPIC,
} from "../../chains/index.js";
import {
  checkBlocksLinked,
  type RangeData,
  transfersWithoutLog,
  txsNeedingReceipts,
} from "../extractFacts.js";
import type { SyncContext } from "./context.js";

export async function fetchReceipts(
  ctx: SyncContext,
  blocks: RangeData["blocks"],
  wanted: Set<string>,
  have: Map<string, RawReceipt>,
): Promise<void> {
  const perBlock = blocks
    .map((b) => ({
      number: BigInt(b.number),
      hash: b.hash,
      txCount: b.transactions.length,
      txHashes: b.transactions
        .map((t) => t.hash)
        .filter((h) => wanted.has(h.toLowerCase()) && !have.has(h.toLowerCase())),
    }))
    .filter((b) => b.txHashes.length > 0);
  const receipts = await ctx.adapter.getBlockReceipts(perBlock);
  for (const list of receipts)
    for (const r of list) {
      const hash = r.transactionHash.toLowerCase();
      if (wanted.has(hash)) have.set(hash, r);
    }
}

function callFrames(ctx: SyncContext, blocks: RawBlock[]) {
  if (!ctx.chain.traces) return Promise.resolve([]);
  return ctx.adapter.getCallFrames(
    blocks.map((b) => ({
      number: BigInt(b.number),
      hash: b.hash,
      txHashes: b.transactions.map((t) => t.hash),
    })),
  );
}

export async function fetchRange(ctx: SyncContext, from: bigint, to: bigint): Promise<RangeData> {
  const numbers: bigint[] = [];
  for (let n = from; n <= to; n++) numbers.push(n);
  // Only endpoints at or past `to` are asked (chains/rpc.ts): a null here is a node that lost
  // the block between its head answer and ours, so refetch, never conclude anything. Those at the
  // best head first: a node stuck on a losing fork is "at" every height up to its head, and after
  // a rollback to the common ancestor its orphaned blocks are the next ranges (the blocks, and the
  // logs by number, are read as the chain that won has them).
  const atBest = { preferBestHead: true };
  const maybeBlocks = await ctx.adapter.getBlocks(numbers, atBest);
  const blocks = maybeBlocks.map((b, i) => {
    if (!b) throw new ChainDataInconsistentError(`node has no block ${numbers[i]} (behind)`);
    return b;
  });
  checkBlocksLinked(blocks);
  const receipts = new Map<string, RawReceipt>();
  const [logs, frames] = await Promise.all([
    ctx.adapter.getTransferLogs({ fromBlock: from, toBlock: to, tokens: ctx.tokens }, atBest),
    callFrames(ctx, blocks),
    fetchReceipts(ctx, blocks, txsNeedingReceipts(blocks, ctx.watched), receipts),
  ]);
  return { blocks, receipts, logs: await recoverDroppedLogs(ctx, blocks, logs), frames };
}

/** Listed tokens whose Transfer may be in the block, by its bloom (all of them without a bloom). */
function tokensMaybeIn(ctx: SyncContext, block: RawBlock, except?: Set<string>): Address[] {
  if (!block.logsBloom) return ctx.tokens;
  const bloom = hexToBytes(block.logsBloom);
  if (!bloomHas(bloom, ctx.bloom.transfer)) return [];
  const hash = block.hash.toLowerCase();
  return ctx.bloom.tokens
    .filter((t) => !except?.has(`${hash}/${t.token.toLowerCase()}`) && bloomHas(bloom, t.bits))
    .map((t) => t.token);
}

/**
 * One block the realtime poll already holds (with transactions): its logs by block hash, only when
 * its bloom says a listed token may have a Transfer in it, plus receipts and traces as for a range.
 * Typically one call: eth_getLogs, or none.
 */
export async function fetchBlockData(ctx: SyncContext, block: RawBlock): Promise<RangeData> {
  const number = BigInt(block.number);
  const maybe = tokensMaybeIn(ctx, block);
  const receipts = new Map<string, RawReceipt>();
  // The block is in hand, so every allocation a transaction in it can pay was committed before
  // now: the watched set's barrier runs beside the RPC calls instead of after them (commitRange
  // then tops up receipts of transactions to addresses it added).
  const [logs, frames] = await Promise.all([
    maybe.length === 0
      ? Promise.resolve([] as RawLog[])
      : ctx.adapter
          .getTransferLogsAtBlock([{ blockHash: block.hash, tokens: maybe, number }])
          .then((r) => r.flat()),
    callFrames(ctx, [block]),
    fetchReceipts(ctx, [block], txsNeedingReceipts([block], ctx.watched), receipts),
    ctx.watched.ensureCurrent(ctx.pool),
  ]);
  return { blocks: [block], receipts, logs, frames };
}

/**
 * A provider can silently return fewer logs than a range holds. Each block's bloom says which
 * listed tokens may have a Transfer in it; where the range answer has none, ask again for that
 * block by hash. Bloom false positives cost one extra call; a real drop is logged and counted.
 */
async function recoverDroppedLogs(
  ctx: SyncContext,
  blocks: RangeData["blocks"],
  logs: RawLog[],
): Promise<RawLog[]> {
  if (ctx.tokens.length === 0) return logs;
  const present = new Set(
    logs.map((l) => `${l.blockHash.toLowerCase()}/${l.address.toLowerCase()}`),
  );
  const suspects: { blockHash: Hex; tokens: Address[]; number: bigint }[] = [];
  for (const block of blocks) {
    if (!block.logsBloom) continue;
    const maybe = tokensMaybeIn(ctx, block, present);
    if (maybe.length > 0)
      suspects.push({ blockHash: block.hash, tokens: maybe, number: BigInt(block.number) });
  }
  if (suspects.length === 0) return logs;
  const found = (await ctx.adapter.getTransferLogsAtBlock(suspects)).flat();
  if (found.length > 0) {
    ctx.metrics.droppedLogs.inc(ctx.labels, found.length);
    ctx.logger.warn({
      msg: "eth_getLogs range answer left out logs; recovered them by block hash",
      recovered_logs: found.length,
      blocks: suspects.length,
    });
  }
  return [...logs, ...found];
}

/** A log the by-hash re-read of Transfers of `listed` tokens returns (any topic count, as eth_getLogs). */
function isListedTransferLog(log: RawLog, listed: Set<string>): boolean {
  return log.topics[0]?.toLowerCase() === TRANSFER_TOPIC && listed.has(log.address.toLowerCase());
}

/**
 * An eth_getLogs answer can be cut within a block (a proxy, or a provider truncating at a size limit
 * without an error), keeping some of its Transfers, so the bloom check passes. A direct
 * transfer()/transferFrom() of a listed token to a watched address whose Transfer the answer lacks
 * is checked against its receipt: reverted (or a success without that log), nothing is missing; a
 * success holding it shows the answer cut. The block's Transfers are then read again by hash,
 * required to hold every log already known (the first answer's and the receipts'): an endpoint
 * cutting that too is passed over for the next (chains/rpc.ts `incomplete`), and when none answers
 * whole the range is refused (ChainDataInconsistentError) and fetched again: the smaller answer is
 * never taken. Costs nothing unless such a call lacks its log: then one receipts read, and one
 * by-hash read per cut block. Returns the logs to extract facts from.
 */
export async function recoverCutLogs(ctx: SyncContext, data: RangeData): Promise<RawLog[]> {
  const missing = transfersWithoutLog(data, { watched: ctx.watched, tokens: ctx.tokens });
  if (missing.length === 0) return data.logs;
  const receipts = new Map<string, RawReceipt>();
  await fetchReceipts(
    ctx,
    [...new Set(missing.map((m) => m.block))],
    new Set(missing.map((m) => m.txHash)),
    receipts,
  );
  const listed = new Set(ctx.tokens.map((t) => t.toLowerCase()));
  const cut = new Map<string, { block: RawBlock; known: Map<string, RawLog> }>();
  for (const m of missing) {
    const receipt = receipts.get(m.txHash);
    // Missing data is never evidence: neither of a revert nor of a cut. Refetch.
    if (!receipt || typeof receipt.status !== "string")
      throw new ChainDataInconsistentError(`receipt of ${m.txHash} missing or without status`);
    if (receipt.status !== "0x1") continue; // reverted: it moved nothing
    if (!Array.isArray(receipt.logs))
      throw new ChainDataInconsistentError(`receipt of ${m.txHash} has no logs`);
    const transfers = receipt.logs.filter((l) => isListedTransferLog(l, listed));
    const toTopic = (l: RawLog) => `0x${(l.topics[2] ?? "").slice(26)}`.toLowerCase();
    if (!transfers.some((l) => l.address.toLowerCase() === m.token && toTopic(l) === m.to))
      continue;
    const hash = m.block.hash.toLowerCase();
    const entry = cut.get(hash) ?? { block: m.block, known: new Map<string, RawLog>() };
    cut.set(hash, entry);
    for (const l of transfers) entry.known.set(logKey(l), l);
  }
  if (cut.size === 0) return data.logs;
  for (const log of data.logs) cut.get(log.blockHash.toLowerCase())?.known.set(logKey(log), log);
  const blocks = [...cut.values()];
  const reread = await ctx.adapter.getTransferLogsAtBlock(
    blocks.map(({ block, known }) => ({
      blockHash: block.hash,
      number: BigInt(block.number),
      tokens: ctx.tokens,
      mustHold: [...known.values()],
    })),
  );
  blocks.forEach(({ block, known }, i) => {
    const have = new Set(reread[i]!.map(logKey));
    const lacking = [...known.keys()].filter((k) => !have.has(k)).length;
    if (lacking > 0)
      throw new ChainDataInconsistentError(
        `eth_getLogs of block ${BigInt(block.number)} ${block.hash} lacks ${lacking} Transfer logs a receipt or the range answer holds (every endpoint cut it)`,
      );
  });
  ctx.metrics.cutLogAnswers.inc(ctx.labels, blocks.length);
  const rereadBlocks = new Set(cut.keys());
  const kept = data.logs.filter((l) => !rereadBlocks.has(l.blockHash.toLowerCase()));
  const found = reread.flat();
  ctx.logger.warn({
    msg: "eth_getLogs answer was cut within a block (a receipt holds a Transfer it lacked); read the block again by hash",
    blocks: blocks.map(({ block }) => `${BigInt(block.number)}:${block.hash}`),
    recovered_logs: kept.length + found.length - data.logs.length,
  });
  return [...kept, ...found];
}
