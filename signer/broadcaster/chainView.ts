/**
 * The chain as the tracker sees it, read through chains/ (one fallback policy, per-endpoint head
 * health): once per tick the head, the wallet's mined nonce count at latest, and the heights that
 * meet the confirmation and finality rules; on demand the mined count at the finalized height,
 * block hashes (only from nodes at or past the height), and receipts, through the fallback or asked
 * of every endpoint separately. A missing block or receipt is "not known here", never evidence; so
 * is a receipt without its status or a field its fee is read from (receiptFieldMissing), or
 * without its logs or some of them (logsMissing).
 */
import type { Registry } from "prom-client";
import { type Hex, hexToBytes, numberToHex } from "viem";
import { NoHealthyEndpointError } from "../../chains/errors.js";
import {
  bloomOf,
  type ChainConfig,
  type ConfirmationRule,
  finalityRule,
  type HeightRead,
  receiptFieldMissing,
  rpcMetrics,
} from "../../chains/index.js";
import { createRpcClient, type RpcClient } from "../../chains/rpc.js";
import type { Logger } from "../../foundation/logger.js";
import { type NonceEvidence, readNonceEvidence } from "../nonceEvidence.js";
import type { ReceiptLogLike } from "../transferPosition.js";

export type TrackedReceipt = {
  txHash: Hex;
  blockNumber: bigint;
  blockHash: Hex;
  success: boolean;
  gasUsed: bigint;
  effectiveGasPrice: bigint;
  /** OP-stack receipts: the L1 data fee charged on top of gas (hex, as the node sent it). */
  l1Fee?: Hex;
  /** OP-stack receipts since Isthmus: the operator fee's parameters (the fee is read: track.ts). */
  operatorFeeScalar?: Hex;
  operatorFeeConstant?: Hex;
  logs: ReceiptLogLike[];
};

export type ChainSnapshot = {
  head: bigint;
  /**
   * Whether the node that answered is at the highest head any endpoint has shown: a count from a
   * node behind it is as of an older block, so it is no evidence that a nonce is free. Also false
   * when our final block was known and the node did not show it (not shown on our chain).
   */
  atBestHead: boolean;
  /** The wallet's mined transaction count at the latest block: every nonce below it is used. */
  latestCount: bigint;
  /** Highest block meeting the confirmation rule (null: not known, e.g. no `finalized` tag yet). */
  confirmedHeight: bigint | null;
  /** Highest block meeting the finality rule (null: not known). */
  finalizedHeight: bigint | null;
  /** The wallet's mined count at `finalizedHeight` (memoised; null when not known). */
  finalizedCount: () => Promise<bigint | null>;
  /**
   * The node's `finalized` block the heights above came from (null: no tag used). What it makes
   * final holds only where one node shows it together with the request's block (onTagChain).
   */
  finalizedTag: FinalizedTag | null;
};

export type FinalizedTag = { number: bigint; hash: string };

/** The wallet now, as intake's budget reads it (chainView `walletNow`). */
export type WalletNow = {
  /** The answering node's head, asked after the count and balance (their block or a later one). */
  head: bigint;
  /** The wallet's mined transaction count at that node's latest block. */
  latestCount: bigint;
  /** The wallet's native balance there, read after the count in the same batch. */
  balance: bigint;
};

export type ChainView = {
  snapshot: () => Promise<ChainSnapshot>;
  /**
   * The wallet's mined count and balance from one node, in one batch (the count first: a send
   * mined between the two is in the balance and may still be counted in flight, twice, never in
   * neither), asked of a node at the best head seen first (any node when none is there; one
   * showing another block at our final height is set aside, as for the snapshot). The two are a
   * pair: a balance from one node and a count from another (or from the tracker's rows) leave out
   * what one has seen mined and the other has not. A node behind is fine here: its pair is as of
   * its block, and the caller counts in flight every send above its count (budget.ts).
   */
  walletNow: () => Promise<WalletNow>;
  /** Pending-inclusive count of the endpoint that answers (the stall check: what the node we send to holds). */
  pendingCount: () => Promise<bigint>;
  /**
   * `eth_gasPrice` of a node at or past `block` (a legacy chain's market, fees.ts estimateFees):
   * the call names no block, and a node behind prices gas from its own old blocks.
   */
  gasPriceAt: (block: bigint) => Promise<bigint>;
  /**
   * Resync's next nonce from the chain: the answering node's pending count or any endpoint's mined
   * count, the highest; only nodes at or past `atLeast` are asked (none there: it fails).
   */
  highestPendingCount: (atLeast?: bigint) => Promise<bigint>;
  /** Receipts through the fallback client; hashes without one are absent. */
  receipts: (hashes: readonly Hex[], atLeast?: bigint) => Promise<Map<Hex, TrackedReceipt>>;
  /**
   * Receipts asked of each endpoint on its own (an endpoint that fails is skipped and counted).
   * Every endpoint's receipt of a hash is kept (one per block, in endpoint order): a node stuck on
   * a losing fork answers our transaction in its orphaned block, another node the same one in the
   * canonical block; the caller takes the one on the chain (track.ts onCanonicalBlocks).
   */
  receiptsEverywhere: (
    hashes: readonly Hex[],
  ) => Promise<{ found: Map<Hex, TrackedReceipt[]>; answered: number; endpoints: number }>;
  /**
   * Canonical hash per height from nodes at or past it (and at or past `atLeast` when given: a
   * node as far as the one a count came from, not one stuck below it on another fork), and with
   * `preferBestHead` from a node at the best head seen first (one stuck on another fork at or
   * past the height shows its own block there); absent when no node has it now.
   */
  blockHashes: (
    numbers: readonly bigint[],
    atLeast?: bigint,
    read?: HeightRead,
  ) => Promise<Map<bigint, Hex>>;
  /**
   * The heights of `blocks` (height to our block's hash) on the tag's chain: asked in one batch of
   * one node, which must show the tag's block and ours (a block's hash names its ancestors). A node
   * on another fork past the tag, or none at its height, makes none of them final.
   */
  onTagChain: (tag: FinalizedTag, blocks: ReadonlyMap<bigint, Hex>) => Promise<Set<bigint>>;
  /**
   * The heights of `blocks` (height to our block's hash) one node shows together with a block at
   * `height` (one batch of one node at or past it): each is then `height - n + 1` deep on that
   * node's chain (the confirmation and the blocks finality rule are met so, never from a head
   * alone). No node at `height` now: none of them.
   */
  underHeight: (height: bigint, blocks: ReadonlyMap<bigint, Hex>) => Promise<Set<bigint>>;
  /**
   * What the chain shows about the wallet's `nonce` (nonceEvidence.ts: from blocks, never
   * receipts): unused, or the transaction that used it and its block, `final` only where a node
   * shows our final block (`ourFinalBlock`; not given: nothing is final). Nodes that cannot tell:
   * it fails.
   */
  nonceEvidence: (nonce: bigint) => Promise<NonceEvidence>;
};

type RawReceiptWithLogs = {
  transactionHash: Hex;
  blockHash: Hex;
  blockNumber: Hex;
  status: Hex;
  gasUsed: Hex;
  effectiveGasPrice?: Hex;
  l1Fee?: Hex;
  operatorFeeScalar?: Hex;
  operatorFeeConstant?: Hex;
  type?: Hex;
  logs: { address: Hex; topics: Hex[]; data: Hex; logIndex: Hex | null }[];
};

/**
 * "logs" when a mined receipt lacks its logs (no field, some of them: its bloom has a bit no log
 * it sent explains), or a log lacks what its transfer position is read from (null: whole). Read
 * as the whole, a token payment would be recorded mined without its Transfer, or a fee-on-transfer
 * payment as a plain one (a mined receipt is never read again: its withdrawal held for ever, or
 * its fee never booked).
 */
function logsMissing(r: { logs?: unknown; logsBloom?: unknown }): "logs" | null {
  if (!Array.isArray(r.logs)) return "logs";
  const whole = (l: Partial<RawReceiptWithLogs["logs"][number]> | null) =>
    typeof l?.address === "string" &&
    Array.isArray(l.topics) &&
    typeof l.data === "string" &&
    typeof l.logIndex === "string";
  if (!r.logs.every(whole)) return "logs";
  return typeof r.logsBloom === "string" && !bloomExplained(r.logsBloom, r.logs) ? "logs" : null;
}

/**
 * Whether every bit of a receipt's bloom is set by one of its logs' address or topics (yellow
 * paper 4.3.1). A bit none explains is a log the answer left out. A bloom of another size is
 * unknown: explained.
 */
function bloomExplained(
  logsBloom: string,
  logs: readonly { address: string; topics: readonly string[] }[],
): boolean {
  if (!/^0x[0-9a-fA-F]{512}$/.test(logsBloom)) return true;
  const rebuilt = bloomOf(logs.flatMap((log) => [log.address, ...log.topics] as Hex[]));
  const bloom = hexToBytes(logsBloom as Hex);
  return bloom.every((byte, i) => (byte & ~rebuilt[i]!) === 0);
}

/** A receipt receiptFieldMissing and logsMissing found whole (status, effectiveGasPrice, logs). */
function parseReceipt(r: RawReceiptWithLogs): TrackedReceipt {
  return {
    txHash: r.transactionHash.toLowerCase() as Hex,
    blockNumber: BigInt(r.blockNumber),
    blockHash: r.blockHash.toLowerCase() as Hex,
    success: r.status === "0x1",
    gasUsed: BigInt(r.gasUsed),
    effectiveGasPrice: BigInt(r.effectiveGasPrice!),
    ...(r.l1Fee ? { l1Fee: r.l1Fee } : {}),
    ...(r.operatorFeeScalar ? { operatorFeeScalar: r.operatorFeeScalar } : {}),
    ...(r.operatorFeeConstant ? { operatorFeeConstant: r.operatorFeeConstant } : {}),
    logs: r.logs.map((l) => ({
      address: l.address,
      topics: l.topics,
      data: l.data,
      logIndex: l.logIndex === null ? null : Number(BigInt(l.logIndex)),
    })),
  };
}

/**
 * Our final block asked in a batch (at `index`), and the check that its answer is of our chain:
 * another block there is another chain (rpc.ts otherChain sets the endpoint aside); a missing one
 * is only missing (the caller's to weigh). No final block known yet: nothing asked or checked.
 */
function finalBlockCheck(
  final: { number: bigint; hash: string } | null,
  index: number,
): {
  calls: { method: string; params: unknown[] }[];
  otherChain: (results: unknown[]) => string | null;
} {
  if (final === null) return { calls: [], otherChain: () => null };
  const ours = final.hash.toLowerCase();
  return {
    calls: [{ method: "eth_getBlockByNumber", params: [numberToHex(final.number), false] }],
    otherChain(results) {
      const block = results[index] as { hash?: unknown } | null | undefined;
      if (typeof block?.hash !== "string" || block.hash.toLowerCase() === ours) return null;
      return `block ${final.number} is ${block.hash}, our final block there is ${ours}`;
    },
  };
}

/** The highest block meeting `rule` given the head (blocks: the block itself counts as one). */
export function heightMeeting(
  rule: ConfirmationRule,
  head: bigint,
  nodeFinalized: bigint | null,
): bigint | null {
  if (rule.kind === "finalized") return nodeFinalized;
  const h = head - BigInt(Math.max(1, rule.blocks)) + 1n;
  return h < 0n ? null : h;
}

export function createChainView({
  chain,
  from,
  rpc,
  getFinalizedBlock,
  ourFinalBlock,
  logger,
  registry,
}: {
  chain: ChainConfig;
  from: Hex;
  rpc: RpcClient;
  /**
   * Our final block (the indexer's published finalized block: number, hash), or null before there
   * is one. The snapshot is taken only from a node that shows it (see snapshot). Not given: not
   * checked.
   */
  ourFinalBlock?: () => Promise<{ number: bigint; hash: string } | null>;
  /** The node's `finalized` block (number, lowercase hash), or null when it does not know one. */
  getFinalizedBlock: () => Promise<{ number: bigint; hash: string } | null>;
  logger: Logger;
  /** The process's metrics registry (receipts missing a fee field are counted there). */
  registry: Registry;
}): ChainView {
  const finality = finalityRule(chain);
  const feeFieldMissingTotal = rpcMetrics(registry).receiptFeeFieldMissing;
  let perEndpoint: RpcClient[] | undefined;
  /** The last tag found on our chain (its block seen there once is enough). */
  let checkedTag: { number: bigint; hash: string } | undefined;
  /** The snapshot's head and since when it has not moved; when every endpoint was last asked. */
  let headSeen: { head: bigint; since: number } | undefined;
  let headsAskedAt = 0;

  /**
   * Every endpoint asked its head (chains/rpc.ts askEveryHead) at the first snapshot and when its
   * head has not moved for a block time (at most once a block time): the best head is otherwise
   * only what the nodes asked showed. A first endpoint stuck on a losing fork (its head stopped,
   * it answers the orphaned blocks) was at the best head for as long as it stayed stuck: the
   * snapshot's head and count, and the canonical hashes the tracker checks, were its fork's.
   * Only once our final block is published: the snapshot asks the node at the best head for it
   * in the same batch, so one of another network with our chain id and a higher head is set
   * aside there, never its count taken (before, by heads alone, a node stuck below the chain
   * and a node of ours below another network's look the same).
   */
  async function learnBestHead(): Promise<void> {
    const now = Date.now();
    if (
      headSeen !== undefined &&
      (now - headSeen.since < chain.blockTimeMs || now - headsAskedAt < chain.blockTimeMs)
    )
      return;
    headsAskedAt = now;
    await rpc.askEveryHead();
  }

  function endpoints(): RpcClient[] {
    // With the process's metrics and logger: an endpoint one of these sets aside (another network,
    // a best head dropped) is counted and logged as the fallback client's are, not silent.
    perEndpoint ??= chain.rpcUrls.map((url) =>
      createRpcClient({
        chainId: chain.chainId,
        urls: [url],
        rounds: 1,
        timeoutMs: 5_000,
        metrics: rpcMetrics(registry),
        logger,
      }),
    );
    return perEndpoint;
  }

  /** `incomplete`: receipts the node sent without a field the fee is read from (not taken). */
  async function receiptsFrom(
    client: RpcClient,
    hashes: readonly Hex[],
    atLeast?: bigint,
  ): Promise<{ found: Map<Hex, TrackedReceipt>; incomplete: number }> {
    const found = new Map<Hex, TrackedReceipt>();
    let incomplete = 0;
    if (hashes.length === 0) return { found, incomplete };
    const results = await client.batch<RawReceiptWithLogs | null>(
      hashes.map((h) => ({ method: "eth_getTransactionReceipt", params: [h] })),
      atLeast !== undefined ? { atLeast } : {},
    );
    for (const r of results) {
      // A receipt without a block is a pending tx on some clients: not mined.
      if (!r?.blockHash || !r.blockNumber) continue;
      // Its fee would be booked from what the node left out (0 gas, no L1 data fee): this node
      // does not have the receipt yet; another endpoint, or a later tick, gives the whole one.
      // Or without its status: a paid withdrawal would read as reverted, its hold released. Or
      // without its logs: a token payment would be recorded without its transfer position.
      const missing = receiptFieldMissing(r, chain) ?? logsMissing(r);
      if (missing !== null) {
        incomplete++;
        feeFieldMissingTotal.inc({
          chain_id: String(chain.chainId),
          component: "signer",
          field: missing,
        });
        logger.warn({
          msg: "a receipt without its status, its logs or a field its fee is read from: not taken",
          tx_hash: r.transactionHash,
          missing,
          endpoints: client.endpoints,
        });
        continue;
      }
      const receipt = parseReceipt(r);
      found.set(receipt.txHash, receipt);
    }
    return { found, incomplete };
  }

  /**
   * The node's `finalized` height, only when its block is the block the nodes we follow have at
   * that height (asked as blockHashes is, of nodes at or past it): the endpoint that answered the
   * tag may be on another fork, and its finalized chain then says nothing about where our
   * transactions mined. Not checkable (no node of ours at that height): not used.
   */
  async function nodeFinalized(): Promise<FinalizedTag | null> {
    const tag = await getFinalizedBlock();
    if (!tag) return null;
    if (checkedTag?.number === tag.number && checkedTag.hash === tag.hash) return tag;
    const ours = (await view.blockHashes([tag.number])).get(tag.number);
    if (ours === tag.hash) {
      checkedTag = tag;
      return tag;
    }
    logger.warn({
      msg: "the node's finalized block is not our block at that height: not used",
      finalized: `${tag.number}:${tag.hash}`,
      ours: ours ?? null,
    });
    return null;
  }

  /**
   * `calls` in one batch of one node, with our final block after them; `headAt`: which of them is
   * eth_blockNumber. Our final block, asked in the same batch: a head and a count are taken only
   * from a node on our chain. A node of another network with our chain id (a misconfigured URL: a
   * devnet or fork of the chain, a provider serving another network under the id) answering a
   * higher head is always "at the best head": its count would decide nonces, stalls, bumps,
   * cancels and intake's budget. One showing another block there is set aside (rpc.ts otherChain:
   * not asked, its head not counted) and another node answers. Compared at a FINAL height, not at
   * the indexed tip: a node of ours may reorg above the final block (it is then not another
   * network), never below it by our finality rule (a reorg there halts the chain, and a node
   * showing it is no node we follow then either), so one answer there is enough to tell.
   */
  async function oneNodeAtHead(calls: { method: string; params: unknown[] }[], headAt: number) {
    const final = (await ourFinalBlock?.()) ?? null;
    const check = finalBlockCheck(final, calls.length);
    if (final !== null) await learnBestHead();
    // Asked of a node at the best head seen when one is there: the stages that act on the
    // count wait while it comes from a node behind, and a first endpoint that always trails
    // another would hold them for as long as it trails.
    const results = await rpc.batch<unknown>([...calls, ...check.calls], {
      otherChain: check.otherChain,
      preferBestHead: true,
    });
    const head = BigInt(results[headAt] as Hex);
    const best = rpc.bestHead();
    // A node without our final block (one far behind, or answering without it) is not shown
    // on our chain: missing data is no evidence either way, so its count decides nothing.
    const shownOurs = final === null || (results[calls.length] ?? null) !== null;
    return { results, head, atBestHead: shownOurs && (best === null || head >= best) };
  }

  const view: ChainView = {
    async walletNow() {
      // The head last: the count and balance are of its block or one before (a block may arrive
      // during the batch), so what the caller reads at `head` is never older than the count.
      const { results, head } = await oneNodeAtHead(
        [
          { method: "eth_getTransactionCount", params: [from, "latest"] },
          { method: "eth_getBalance", params: [from, "latest"] },
          { method: "eth_blockNumber", params: [] },
        ],
        2,
      );
      return {
        head,
        latestCount: BigInt(results[0] as Hex),
        balance: BigInt(results[1] as Hex),
      };
    },
    async snapshot() {
      const { results, head, atBestHead } = await oneNodeAtHead(
        [
          { method: "eth_blockNumber", params: [] },
          { method: "eth_getTransactionCount", params: [from, "latest"] },
        ],
        0,
      );
      const latestCount = BigInt(results[1] as Hex);
      // The snapshot's own head only (learnBestHead: not moving for a block time): walletNow's may
      // come from another node, and would make a stopped head look like it moves.
      if (headSeen?.head !== head) headSeen = { head, since: Date.now() };
      const needsTag = chain.confirmations.kind === "finalized" || finality.kind === "finalized";
      const tag = needsTag ? await nodeFinalized() : null;
      const finalizedHeight = heightMeeting(finality, head, tag?.number ?? null);
      let finalizedCount: Promise<bigint | null> | undefined;
      return {
        head,
        atBestHead,
        latestCount,
        confirmedHeight: heightMeeting(chain.confirmations, head, tag?.number ?? null),
        finalizedTag: tag,
        finalizedHeight,
        finalizedCount() {
          finalizedCount ??= (async () => {
            if (finalizedHeight === null) return null;
            try {
              const n = await rpc.request<Hex>(
                "eth_getTransactionCount",
                [from, numberToHex(finalizedHeight)],
                { atLeast: finalizedHeight },
              );
              return BigInt(n);
            } catch (error) {
              logger.warn({ msg: "mined count at the finalized height not known", err: error });
              return null;
            }
          })();
          return finalizedCount;
        },
      };
    },
    async pendingCount() {
      return BigInt(await rpc.request<Hex>("eth_getTransactionCount", [from, "pending"]));
    },
    async gasPriceAt(block) {
      return BigInt(await rpc.request<Hex>("eth_gasPrice", [], { atLeast: block }));
    },
    async highestPendingCount(atLeast) {
      // A node behind lacks the wallet's newest transactions (one sent outside the signer's
      // requests, as a contract deploy is), and its lower count taken for the next nonce signs a
      // request at a used nonce (nonce too low, needs_review). So: the answering node's pending
      // count, as before, and every endpoint's MINED count, the highest. Mined, not pending, from
      // the others: a transaction of our key only in some node's pool (a dropped deploy, a stale
      // mempool) would push the next nonce past a nonce nothing fills: no stage fills a nonce with
      // no stored request (nonces.ts; gaps.ts sends a stored deploy's bytes, else only alerts). An
      // endpoint that fails is skipped; none answering fails the read. A node below `atLeast` (a
      // syncing node at head 0) is not asked: its count is as of a block before ones we hold.
      // Each count with our final block, in one batch of the node that counts (as the snapshot):
      // a node of another network with our chain id is set aside and its count not taken, nor
      // one from a node that does not show the block (a count not shown to be our chain's).
      const final = (await ourFinalBlock?.()) ?? null;
      const check = finalBlockCheck(final, 1);
      const read = atLeast === undefined ? {} : { atLeast };
      const countOn = async (client: RpcClient, tag: "pending" | "latest"): Promise<Hex> => {
        const [count, block] = await client.batch<unknown>(
          [{ method: "eth_getTransactionCount", params: [from, tag] }, ...check.calls],
          { ...read, otherChain: check.otherChain },
        );
        if (final !== null && (block ?? null) === null)
          throw new Error(`the node does not show our final block ${final.number}`);
        return count as Hex;
      };
      const answers = await Promise.allSettled([
        countOn(rpc, "pending"),
        ...endpoints().map((client) => countOn(client, "latest")),
      ]);
      let highest: bigint | undefined;
      for (const a of answers)
        if (a.status === "fulfilled" && (highest === undefined || BigInt(a.value) > highest))
          highest = BigInt(a.value);
      if (highest === undefined)
        throw (answers.find((a) => a.status === "rejected") as PromiseRejectedResult).reason;
      return highest;
    },
    receipts: async (hashes, atLeast) => (await receiptsFrom(rpc, hashes, atLeast)).found,
    async receiptsEverywhere(hashes) {
      let answered = 0;
      const clients = endpoints();
      const each = await Promise.all(
        clients.map(async (client) => {
          try {
            const from = await receiptsFrom(client, hashes);
            // An endpoint that sent a receipt it left a fee field out of has not told us whether
            // our attempts mined there: no evidence towards "no known attempt" (needs_review).
            if (from.incomplete === 0) answered++;
            return from.found;
          } catch (error) {
            logger.warn({
              msg: "receipt search: an endpoint did not answer",
              endpoint: client.endpoints[0],
              err: error,
            });
            return new Map<Hex, TrackedReceipt>();
          }
        }),
      );
      // All of them, not the last answer per hash: a stuck node's receipt in its orphaned block,
      // answering last, hid the canonical one (a paid request searched as receipt_unknown).
      const found = new Map<Hex, TrackedReceipt[]>();
      for (const answer of each)
        for (const [h, r] of answer) {
          const list = found.get(h) ?? [];
          if (!list.some((o) => o.blockHash === r.blockHash)) list.push(r);
          found.set(h, list);
        }
      return { found, answered, endpoints: clients.length };
    },
    async blockHashes(numbers, atLeast, read = {}) {
      const out = new Map<bigint, Hex>();
      const list = [...new Set(numbers)].sort((a, b) => (a < b ? -1 : 1));
      if (list.length === 0) return out;
      const highest = list.at(-1)!;
      try {
        const blocks = await rpc.batch<{ hash: Hex; number: Hex } | null>(
          list.map((n) => ({ method: "eth_getBlockByNumber", params: [numberToHex(n), false] })),
          {
            atLeast: atLeast !== undefined && atLeast > highest ? atLeast : highest,
            ...(read.preferBestHead ? { preferBestHead: true } : {}),
            lacks: (results, calls) => {
              const i = results.indexOf(null);
              return i < 0 ? null : BigInt(calls[i]!.params[0] as Hex);
            },
          },
        );
        blocks.forEach((b, i) => {
          if (b) out.set(list[i]!, b.hash.toLowerCase() as Hex);
        });
      } catch (error) {
        if (!(error instanceof NoHealthyEndpointError)) throw error;
        // No node has these heights right now: nothing is known about them.
      }
      return out;
    },
    async onTagChain(tag, blocks) {
      // blockHashes asks one batch of one node at or past the highest of them.
      const hashAt = await view.blockHashes([tag.number, ...blocks.keys()]);
      const held = new Set<bigint>();
      if (hashAt.get(tag.number) !== tag.hash) {
        // No node has the tag's height right now, or it shows another block there.
        logger.warn({
          msg: "the node at the finalized height does not show its block with ours: nothing final",
          finalized: `${tag.number}:${tag.hash}`,
        });
        return held;
      }
      for (const [n, hash] of blocks) if (hashAt.get(n) === hash) held.add(n);
      return held;
    },
    async underHeight(height, blocks) {
      // One batch of one node at or past `height`, which answers every height or none.
      const hashAt = await view.blockHashes([height, ...blocks.keys()]);
      const held = new Set<bigint>();
      if (!hashAt.has(height)) {
        logger.warn({
          msg: "no node shows our blocks with the block the rule counts from: none that deep yet",
          height: String(height),
        });
        return held;
      }
      for (const [n, hash] of blocks) if (hashAt.get(n) === hash) held.add(n);
      return held;
    },
    async nonceEvidence(nonce) {
      return readNonceEvidence(chain, rpc, from, nonce, (await ourFinalBlock?.()) ?? null);
    },
  };
  return view;
}
