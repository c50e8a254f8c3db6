/**
 * From the raw data of a block range to the custody facts we store (pure: no I/O). Also checks
 * that the data is one consistent chain (each block's parent is the previous block; every log,
 * receipt and trace belongs to the block we fetched at that height): a provider answering from two
 * forks during one fetch must cause a refetch, never a stored mix.
 */
import type { Address, Hex } from "viem";
import { isListedErc20Transfer } from "../chains/evm/transferPosition.js";
import {
  type CallFrame,
  ChainDataInconsistentError,
  feeFieldMissing,
  feePaid,
  operatorFeeAsked,
  type RawBlock,
  type RawLog,
  type RawReceipt,
  transactionsLeftOut,
} from "../chains/index.js";
import { mapLimit } from "../foundation/mapLimit.js";

export const NATIVE_ASSET = "0x0000000000000000000000000000000000000000";

export type FactKind = "native" | "erc20" | "internal" | "fee";

export type Fact = {
  blockNumber: bigint;
  blockHash: string;
  txHash: string;
  txIndex: number;
  /**
   * Identity of the fact within its transaction, the same in every block that includes the tx:
   * `tx` (native value), `transfer:<n>` (n-th listed-token ERC-20 Transfer log of the tx, logIndex
   * order; chains/evm/transferPosition.ts), `trace:<a.b.c>` (internal value) or `fee`.
   */
  position: string;
  /** Block-wide index of the Transfer log (ERC-20 facts only): changes when the tx moves. */
  logIndex?: number;
  kind: FactKind;
  asset: string;
  from: string;
  to: string;
  amount: bigint;
};

export type BlockHeader = { number: bigint; hash: string; parentHash: string; timestamp: number };

export type RangeData = {
  blocks: RawBlock[];
  /** Receipts by tx hash for the transactions that touch a watched address. */
  receipts: Map<string, RawReceipt>;
  logs: RawLog[];
  /** Call frames per block (same order as `blocks`), empty when traces are off. */
  frames: CallFrame[][];
};

export type Watched = { has: (lowercaseAddress: string) => boolean };

export function headerOf(block: RawBlock<unknown>): BlockHeader {
  return {
    number: BigInt(block.number),
    hash: block.hash.toLowerCase(),
    parentHash: block.parentHash.toLowerCase(),
    timestamp: Number(BigInt(block.timestamp)),
  };
}

/** Transactions whose receipt we need: sent from or to a watched address. */
export function txsNeedingReceipts(blocks: RawBlock[], watched: Watched): Set<string> {
  const out = new Set<string>();
  for (const block of blocks) {
    for (const tx of block.transactions) {
      if (watched.has(tx.from.toLowerCase()) || (tx.to && watched.has(tx.to.toLowerCase())))
        out.add(tx.hash.toLowerCase());
    }
  }
  return out;
}

const TRANSFER_CALL = "0xa9059cbb"; // transfer(address to, uint256 value)
const TRANSFER_FROM_CALL = "0x23b872dd"; // transferFrom(address from, address to, uint256 value)

/** The recipient (lowercase) named by a direct ERC-20 transfer/transferFrom call's calldata, or null. */
export function directTransferRecipient(input: string | undefined): string | null {
  if (input === undefined || input.length < 10) return null;
  const selector = input.slice(0, 10).toLowerCase();
  const word = selector === TRANSFER_CALL ? 0 : selector === TRANSFER_FROM_CALL ? 1 : -1;
  // Calldata too short for its arguments reverts in the token's ABI decoder: no log to expect.
  if (word < 0 || input.length < 10 + 64 * (word + 2)) return null;
  return `0x${input.slice(10 + 64 * word + 24, 10 + 64 * (word + 1))}`.toLowerCase();
}

/** A direct ERC-20 call of a listed token to a watched address (see transfersWithoutLog). */
export type ExpectedTransfer = { block: RawBlock; txHash: string; token: string; to: string };

/**
 * Direct transfer()/transferFrom() calls of a listed token to a watched address whose Transfer
 * (that token, to that address, in that transaction) is not among `logs`. Not evidence of anything
 * by itself: the call may have reverted, or the logs answer was cut; only the receipt tells which.
 * Cost: one pass over the transactions, and over the logs only when a candidate exists, with set
 * lookups (the watched set can hold 100,000 addresses).
 */
export function transfersWithoutLog(
  data: Pick<RangeData, "blocks" | "logs">,
  { watched, tokens }: { watched: Watched; tokens: Address[] },
): ExpectedTransfer[] {
  if (tokens.length === 0) return [];
  const listed = new Set(tokens.map((t) => t.toLowerCase()));
  const expected = new Map<string, ExpectedTransfer>();
  const txs = new Set<string>();
  for (const block of data.blocks)
    for (const tx of block.transactions) {
      if (!tx.to || !listed.has(tx.to.toLowerCase())) continue;
      const to = directTransferRecipient(tx.input);
      if (to === null || !watched.has(to)) continue;
      const txHash = tx.hash.toLowerCase();
      const token = tx.to.toLowerCase();
      expected.set(`${txHash}/${token}/${to}`, { block, txHash, token, to });
      txs.add(txHash);
    }
  if (expected.size === 0) return [];
  for (const log of data.logs) {
    const txHash = log.transactionHash.toLowerCase();
    if (!txs.has(txHash) || !isListedErc20Transfer(log, listed)) continue;
    expected.delete(`${txHash}/${log.address.toLowerCase()}/${topicAddress(log.topics[2]!)}`);
  }
  return [...expected.values()];
}

/**
 * Throws ChainDataInconsistentError unless the blocks form one chain, each with its body: a block
 * answered without its transactions while its header holds some is one the node has not got whole
 * (chains/evm/blockBody.ts), and stored so, its deposits would never be read again.
 */
export function checkBlocksLinked(blocks: RawBlock<unknown>[]): void {
  for (const block of blocks)
    if (transactionsLeftOut(block))
      throw new ChainDataInconsistentError(
        `block ${BigInt(block.number)} ${block.hash} answered without its transactions (its transactionsRoot ${block.transactionsRoot} holds some)`,
      );
  for (let i = 1; i < blocks.length; i++) {
    const prev = blocks[i - 1]!;
    const block = blocks[i]!;
    if (block.parentHash.toLowerCase() !== prev.hash.toLowerCase())
      throw new ChainDataInconsistentError(
        `block ${BigInt(block.number)} parent ${block.parentHash} is not block ${BigInt(prev.number)} ${prev.hash}`,
      );
  }
}

/**
 * A Transfer log's indexed address, read from its topic. Matched and sliced by hand rather than with
 * viem's parseEventLogs (issue 16 asked): parseEventLogs decodes every log through the ABI and
 * checksums each address (a keccak per address), 9.2-16.3 s for 200,000 Transfer logs against
 * 0.1-1.1 s this way (tsx on Node 24, this 2-core machine, 2 December 2026), when the whole indexer
 * backfill of 200,000 logs takes ~7 s (`npm run bench -- indexer`): far past the 10% it was allowed.
 */
function topicAddress(topic: Hex): string {
  return `0x${topic.slice(26)}`.toLowerCase();
}

/**
 * The operator fee each watched sender's transaction in `data` paid (for extractFacts'
 * `operatorFees`), read from the chain at its receipt's block: 0 where the chain charges none.
 * One not told (no answer, a node error) throws: the range is not committed, and is read again.
 */
export async function operatorFeesOf(
  data: Pick<RangeData, "blocks" | "receipts">,
  watched: Watched,
  read: (receipt: {
    gasUsed: bigint;
    blockNumber: bigint;
    type?: unknown;
    operatorFeeScalar?: unknown;
    operatorFeeConstant?: unknown;
  }) => Promise<bigint>,
): Promise<Map<string, bigint>> {
  const receipts: RawReceipt[] = [];
  for (const block of data.blocks)
    for (const tx of block.transactions) {
      if (!watched.has(tx.from.toLowerCase())) continue;
      const receipt = data.receipts.get(tx.hash.toLowerCase());
      if (receipt) receipts.push(receipt);
    }
  const fees = await mapLimit(receipts, 8, (r) =>
    read({
      gasUsed: BigInt(r.gasUsed),
      blockNumber: BigInt(r.blockNumber),
      type: r.type,
      operatorFeeScalar: r.operatorFeeScalar,
      operatorFeeConstant: r.operatorFeeConstant,
    }),
  );
  return new Map(receipts.map((r, i) => [r.transactionHash.toLowerCase(), fees[i]!]));
}

export function extractFacts(
  data: RangeData,
  {
    watched,
    tokens,
    l1DataFee,
    onFeeFieldMissing,
    operatorFees,
  }: {
    watched: Watched;
    tokens: Address[];
    /** The chain's L1 data fee model (chains/config.ts): `op-stack` receipts must carry l1Fee. */
    l1DataFee?: "none" | "op-stack" | undefined;
    /** Told the field before the range is refused for a receipt missing it (the caller counts it). */
    onFeeFieldMissing?: (field: "effectiveGasPrice" | "l1Fee") => void;
    /**
     * The operator fee each watched sender's transaction paid (OP stack since Isthmus), by tx
     * hash, read from the chain by the caller (operatorFeesOf): receipts do not carry it. One not
     * given where the chain charges it (an OP-stack chain, or a receipt with its fields) refuses
     * the range: the fee fact would say less than the wallet paid.
     */
    operatorFees?: ReadonlyMap<string, bigint> | undefined;
  },
): Fact[] {
  checkBlocksLinked(data.blocks);
  const facts: Fact[] = [];
  const hashAt = new Map<bigint, string>();
  for (const block of data.blocks) hashAt.set(BigInt(block.number), block.hash.toLowerCase());
  const sameBlock = (what: string, number: bigint, hash: string | undefined) => {
    if (hash === undefined) return;
    if (hashAt.get(number) !== hash.toLowerCase())
      throw new ChainDataInconsistentError(
        `${what} is in block ${number} ${hash}, not the fetched ${hashAt.get(number) ?? "(none)"}`,
      );
  };

  for (const block of data.blocks) {
    const blockNumber = BigInt(block.number);
    const blockHash = block.hash.toLowerCase();
    for (const tx of block.transactions) {
      const from = tx.from.toLowerCase();
      const txHash = tx.hash.toLowerCase();
      const receipt = data.receipts.get(txHash);
      const toRaw = tx.to ?? receipt?.contractAddress ?? null;
      const to = toRaw ? toRaw.toLowerCase() : null;
      const fromWatched = watched.has(from);
      const toWatched = to !== null && watched.has(to);
      if (!fromWatched && !toWatched) continue;
      if (!receipt)
        throw new ChainDataInconsistentError(`no receipt fetched for watched tx ${txHash}`);
      sameBlock(`receipt of ${txHash}`, blockNumber, receipt.blockHash);
      // A receipt without its status (a node or proxy dropping fields) is not a failed transaction:
      // read as one, a deposit would never be stored. Refetch instead.
      if (typeof receipt.status !== "string")
        throw new ChainDataInconsistentError(`receipt of ${txHash} has no status`);
      const txIndex = Number(BigInt(tx.transactionIndex));
      const value = BigInt(tx.value);
      if (receipt.status === "0x1" && value > 0n && to !== null) {
        facts.push({
          blockNumber,
          blockHash,
          txHash,
          txIndex,
          position: "tx",
          kind: "native",
          asset: NATIVE_ASSET,
          from,
          to,
          amount: value,
        });
      }
      if (fromWatched) {
        // A fee read from a receipt missing a field would be 0 or gas alone: refetch instead.
        const missing = feeFieldMissing(receipt, { l1DataFee });
        if (missing !== null) {
          onFeeFieldMissing?.(missing);
          throw new ChainDataInconsistentError(`receipt of ${txHash} has no ${missing}`);
        }
        const operatorFee = operatorFees?.get(txHash);
        if (operatorFee === undefined && operatorFeeAsked({ l1DataFee }, receipt))
          throw new ChainDataInconsistentError(`no operator fee read for ${txHash}`);
        facts.push({
          blockNumber,
          blockHash,
          txHash,
          txIndex,
          position: "fee",
          kind: "fee",
          asset: NATIVE_ASSET,
          from,
          // Gas goes to the block producer and the burn; the fact records who paid.
          to: NATIVE_ASSET,
          // With an OP-stack receipt's L1 data fee and operator fee: what the signer books to fees:gas.
          amount: feePaid({
            gasUsed: BigInt(receipt.gasUsed),
            effectiveGasPrice: BigInt(receipt.effectiveGasPrice!),
            l1Fee: receipt.l1Fee,
            operatorFee: operatorFee ?? 0n,
          }),
        });
      }
    }
  }

  const listed = new Set(tokens.map((t) => t.toLowerCase()));
  // Every listed-token Transfer log counts towards the ordinal, watched or not, so a fact's
  // position does not depend on which addresses were watched when its block was read. A log may
  // arrive twice (range answer plus recovery by block hash): one per (block, logIndex).
  const byTx = new Map<string, Map<number, RawLog>>();
  for (const log of data.logs) {
    if (log.removed) throw new ChainDataInconsistentError(`log ${log.transactionHash} removed`);
    sameBlock(`log of ${log.transactionHash}`, BigInt(log.blockNumber), log.blockHash);
    if (!isListedErc20Transfer(log, listed)) continue;
    const key = `${log.blockHash.toLowerCase()}/${log.transactionHash.toLowerCase()}`;
    const txLogs = byTx.get(key) ?? new Map<number, RawLog>();
    byTx.set(key, txLogs);
    txLogs.set(Number(BigInt(log.logIndex)), log);
  }
  for (const txLogs of byTx.values()) {
    const ordered = [...txLogs.entries()].sort((a, b) => a[0] - b[0]);
    ordered.forEach(([logIndex, log], n) => {
      const from = topicAddress(log.topics[1]!);
      const to = topicAddress(log.topics[2]!);
      if (!watched.has(from) && !watched.has(to)) return;
      facts.push({
        blockNumber: BigInt(log.blockNumber),
        blockHash: log.blockHash.toLowerCase(),
        txHash: log.transactionHash.toLowerCase(),
        txIndex: Number(BigInt(log.transactionIndex)),
        position: `transfer:${n}`,
        logIndex,
        kind: "erc20",
        asset: log.address.toLowerCase(),
        from,
        to,
        amount: log.data === "0x" ? 0n : BigInt(log.data.slice(0, 66)),
      });
    });
  }

  data.frames.forEach((frames, i) => {
    const block = data.blocks[i]!;
    const blockNumber = BigInt(block.number);
    for (const frame of frames) {
      sameBlock(`trace of ${frame.txHash}`, blockNumber, frame.blockHash);
      // The top-level frame is the transaction's own value (`tx` fact).
      if (frame.path.length === 0 || frame.reverted || frame.value === 0n) continue;
      const from = frame.from.toLowerCase();
      const to = frame.to.toLowerCase();
      if (!watched.has(from) && !watched.has(to)) continue;
      facts.push({
        blockNumber,
        blockHash: block.hash.toLowerCase(),
        txHash: frame.txHash.toLowerCase(),
        txIndex: frame.txIndex,
        position: `trace:${frame.path.join(".")}`,
        kind: "internal",
        asset: NATIVE_ASSET,
        from,
        to,
        amount: frame.value,
      });
    }
  });
  return facts;
}
