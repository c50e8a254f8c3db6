/**
 * What the chain shows about one nonce of a wallet, for an operator about to fail a request whose
 * receipts nobody returns (DESIGN principle 8: no release of funds is decided from absence).
 * Either the nonce is unused (a node at the best known head counts no more transactions), or it
 * was consumed in a block: found by bisecting the wallet's mined count over heights, then read from
 * that block's own transaction list, which names the transaction that used it. Receipts play no
 * part, so an endpoint that withholds them cannot hide an attempt of ours that mined. Anything the
 * nodes cannot answer is an error, never "unused".
 *
 * Where the nonce was used is one node's answer (each endpoint is asked on its own, in order), and
 * it is final only when that node also shows our final block (the indexer's published finalized
 * block) at or above it: a block's hash names its ancestors, so the block that used the nonce is
 * then ours and final. A node on another fork names another transaction and finalizes other
 * blocks; its answer, or a mix of its answers with another node's, never makes a block final.
 */
import { setTimeout } from "node:timers/promises";
import { type Hex, numberToHex } from "viem";
import type { ChainConfig } from "../chains/index.js";
import { createRpcClient, endpointLabel, headOfAll, type RpcClient } from "../chains/rpc.js";
import { ChainEvidenceUnavailableError, NonceInUseError } from "./errors.js";

export type NonceEvidence =
  | { kind: "unused"; head: bigint; latestCount: bigint }
  | {
      kind: "consumed";
      blockNumber: bigint;
      blockHash: Hex;
      /** The transaction of `from` with this nonce in that block (lowercase). */
      txHash: Hex;
      /** The block is ours, at or below our final block. */
      final: boolean;
    };

/** Our chain's final block: the indexer's published finalized block (lowercase hash). */
export type OurFinalBlock = { number: bigint; hash: string };

/** Reads nonce evidence for a wallet on one of the configured chains. */
export type NonceEvidenceReader = (req: {
  chainId: number;
  from: Hex;
  nonce: bigint;
  /** Our final block (null: none published yet, so nothing is final). */
  final: OurFinalBlock | null;
}) => Promise<NonceEvidence>;

type BlockWithTxs = {
  number: Hex;
  hash: Hex;
  transactions: { hash: Hex; from: Hex; nonce: Hex }[];
};

/**
 * The evidence for `nonce` of `from`, read through `rpc`'s endpoints (chains/' fallback over
 * healthy endpoints for the head and the count; each endpoint alone for where it was used).
 */
export async function readNonceEvidence(
  chain: ChainConfig,
  rpc: RpcClient,
  from: Hex,
  nonce: bigint,
  final: OurFinalBlock | null,
): Promise<NonceEvidence> {
  const wallet = from.toLowerCase() as Hex;
  // Every read names a height and is asked only of nodes at or past the best head of all
  // endpoints (each asked), so a lagging node cannot answer "not yet used" for a nonce the chain
  // has used (the first endpoint's head alone was that height: its "unused" let an operator fail
  // a request that mined, and send its amount again).
  const best = await headOfAll(rpc);
  const countAt = async (node: RpcClient, height: bigint) =>
    BigInt(
      await node.request<Hex>("eth_getTransactionCount", [wallet, numberToHex(height)], {
        atLeast: best,
      }),
    );
  const latestCount = await countAt(rpc, best);
  if (latestCount <= nonce) return { kind: "unused", head: best, latestCount };

  /** Where one node shows the nonce used, and whether that node shows our final block. */
  async function usedOn(node: RpcClient): Promise<{ evidence: NonceEvidence; ours: boolean }> {
    // The lowest height whose count exceeds the nonce: the block that used it.
    if ((await countAt(node, best)) <= nonce)
      throw new ChainEvidenceUnavailableError(
        chain.chainId,
        `${endpointLabel(node.endpoints[0]!)} counts no transaction of ${wallet} with nonce ${nonce}`,
      );
    let lo = 0n;
    let hi = best;
    while (lo < hi) {
      const mid = (lo + hi) / 2n;
      if ((await countAt(node, mid)) > nonce) hi = mid;
      else lo = mid + 1n;
    }
    // The block and our final block in one answer of this node.
    const [block, atFinal] = await node.batch<BlockWithTxs | { hash: Hex } | null>(
      [
        { method: "eth_getBlockByNumber", params: [numberToHex(lo), true] },
        ...(final
          ? [{ method: "eth_getBlockByNumber", params: [numberToHex(final.number), false] }]
          : []),
      ],
      { atLeast: final && final.number > best ? final.number : best },
    );
    const tx = (block as BlockWithTxs | null)?.transactions.find(
      (t) => t.from.toLowerCase() === wallet && BigInt(t.nonce) === nonce,
    );
    if (!block || !tx)
      throw new ChainEvidenceUnavailableError(
        chain.chainId,
        `block ${lo} (where the mined count of ${wallet} passes ${nonce}) does not show its transaction with that nonce`,
      );
    const ours = final !== null && atFinal?.hash.toLowerCase() === final.hash;
    return {
      ours,
      evidence: {
        kind: "consumed",
        blockNumber: lo,
        blockHash: block.hash.toLowerCase() as Hex,
        txHash: tx.hash.toLowerCase() as Hex,
        final: ours && lo <= final!.number,
      },
    };
  }

  /** Endpoints that answered from another chain (their block at our final height is not ours). */
  const elsewhere: string[] = [];
  let failure: unknown;
  for (const url of rpc.endpoints) {
    const node = createRpcClient({ chainId: chain.chainId, urls: [url], rounds: 1 });
    try {
      const { evidence, ours } = await usedOn(node);
      if (ours || final === null) return evidence;
      elsewhere.push(endpointLabel(url));
    } catch (error) {
      failure = error;
    }
  }
  if (elsewhere.length > 0 && final)
    throw new ChainEvidenceUnavailableError(
      chain.chainId,
      `${elsewhere.join(", ")} do not show our final block ${final.number} (${final.hash}): another chain; no other node answered`,
      failure,
    );
  throw failure;
}

/**
 * A reader over the configured chains (one RPC client per chain, made on first use). A chain
 * not configured, or nodes that cannot answer, give ChainEvidenceUnavailableError.
 */
export function nonceEvidenceFromChains(chains: readonly ChainConfig[]): NonceEvidenceReader {
  const clients = new Map<number, RpcClient>();
  return async ({ chainId, from, nonce, final }) => {
    const chain = chains.find((c) => c.chainId === chainId);
    if (!chain)
      throw new ChainEvidenceUnavailableError(chainId, "the chain is not in this configuration");
    let rpc = clients.get(chainId);
    if (!rpc) {
      rpc = createRpcClient({ chainId, urls: chain.rpcUrls, timeoutMs: 10_000 });
      clients.set(chainId, rpc);
    }
    try {
      return await readNonceEvidence(chain, rpc, from, nonce, final);
    } catch (error) {
      if (error instanceof ChainEvidenceUnavailableError) throw error;
      throw new ChainEvidenceUnavailableError(
        chainId,
        error instanceof Error ? error.message.split("\n")[0]! : String(error),
        error,
      );
    }
  };
}

/** What one node showed of a nonce it counts unused: its head and the wallet's counts there. */
export type NodeNonceView = {
  endpoint: string;
  head: bigint;
  latestCount: bigint;
  pendingCount: bigint;
};

/**
 * Checks that `nonce` of `from` is unused on every configured node (for an operator about to fill
 * it, `tx-requests fill-nonce`): each endpoint answers its head with the wallet's mined and pending
 * counts in one batch. Any endpoint that does not answer, or answers from behind the best head any
 * of them (or the client) showed, refuses (ChainEvidenceUnavailableError: a lagging node shows
 * nonces used since as unused) when it has not caught up after a few reads (UNUSED_READS); a
 * count past the nonce, mined or pending, refuses (NonceInUseError). Returns every node's view,
 * for the audit row.
 */
export type NonceUnusedReader = (req: {
  chainId: number;
  from: Hex;
  nonce: bigint;
}) => Promise<NodeNonceView[]>;

const UNUSED_WHAT = "whether the nonce is unused on every node";

/**
 * Reads of every node while one is behind the best head: heads arrive apart, so a node one block
 * behind is usually there a moment later. Between reads, a block time (at most 2 s).
 */
const UNUSED_READS = 3;

export async function readNonceUnused(
  chain: ChainConfig,
  from: Hex,
  nonce: bigint,
): Promise<NodeNonceView[]> {
  const wallet = from.toLowerCase() as Hex;
  // The best head any read showed: a later read must have every node there (never lower).
  let best = 0n;
  for (let read = 1; ; read++) {
    const views = await readNodeNonces(chain, wallet);
    for (const v of views) if (v.head > best) best = v.head;
    const behind = views.find((v) => v.head < best);
    if (!behind) {
      for (const v of views)
        if (v.latestCount > nonce || v.pendingCount > nonce)
          throw new NonceInUseError(chain.chainId, wallet, nonce, v);
      return views;
    }
    if (read === UNUSED_READS)
      throw new ChainEvidenceUnavailableError(
        chain.chainId,
        `${behind.endpoint} is at block ${behind.head}, behind the best head ${best}: its counts are as of an older block`,
        undefined,
        UNUSED_WHAT,
      );
    await setTimeout(Math.min(chain.blockTimeMs, 2_000));
  }
}

/** Each endpoint's head and the wallet's mined and pending counts, one batch each. */
async function readNodeNonces(chain: ChainConfig, wallet: Hex): Promise<NodeNonceView[]> {
  return Promise.all(
    chain.rpcUrls.map(async (url): Promise<NodeNonceView> => {
      const endpoint = endpointLabel(url);
      const node = createRpcClient({
        chainId: chain.chainId,
        urls: [url],
        rounds: 1,
        timeoutMs: 10_000,
      });
      let answers: Hex[];
      try {
        answers = await node.batch<Hex>([
          { method: "eth_blockNumber", params: [] },
          { method: "eth_getTransactionCount", params: [wallet, "latest"] },
          { method: "eth_getTransactionCount", params: [wallet, "pending"] },
        ]);
      } catch (error) {
        throw new ChainEvidenceUnavailableError(
          chain.chainId,
          `${endpoint} did not answer`,
          error,
          UNUSED_WHAT,
        );
      }
      const [head, latest, pending] = answers.map((a) => BigInt(a));
      return { endpoint, head: head!, latestCount: latest!, pendingCount: pending! };
    }),
  );
}

/** A NonceUnusedReader over the configured chains (a chain not configured: unavailable). */
export function nonceUnusedFromChains(chains: readonly ChainConfig[]): NonceUnusedReader {
  return async ({ chainId, from, nonce }) => {
    const chain = chains.find((c) => c.chainId === chainId);
    if (!chain)
      throw new ChainEvidenceUnavailableError(
        chainId,
        "the chain is not in this configuration",
        undefined,
        UNUSED_WHAT,
      );
    return readNonceUnused(chain, from, nonce);
  };
}
