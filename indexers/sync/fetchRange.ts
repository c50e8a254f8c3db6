/**
 * Fetch stage: everything a block range needs before it can be committed: blocks with
 * transactions, Transfer logs of listed tokens (ranged, with bloom-guided recovery of logs a
 * provider left out), receipts of watched transactions, and call frames where traces are on.
 * `fetchBlockData` does the same for one block the realtime poll already holds.
 */
import { type Address, type Hex, hexToBytes } from "viem";
import {
  bloomHas,
  ChainDataInconsistentError,
  type RawBlock,
  type RawLog,
  type RawReceipt,
} from "../../chains/index.js";
import { checkBlocksLinked, type RangeData, txsNeedingReceipts } from "../extractFacts.js";
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
  // the block between its head answer and ours, so refetch, never conclude anything.
  const maybeBlocks = await ctx.adapter.getBlocks(numbers);
  const blocks = maybeBlocks.map((b, i) => {
    if (!b) throw new ChainDataInconsistentError(`node has no block ${numbers[i]} (behind)`);
    return b;
  });
  checkBlocksLinked(blocks);
  const receipts = new Map<string, RawReceipt>();
  const [logs, frames] = await Promise.all([
    ctx.adapter.getTransferLogs({ fromBlock: from, toBlock: to, tokens: ctx.tokens }),
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
