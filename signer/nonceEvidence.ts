/**
 * What the chain shows about one nonce of a wallet, for an operator about to fail a request whose
 * receipts nobody returns (DESIGN principle 8: no release of funds is decided from absence).
 * Either the nonce is unused (a node at the best known head counts no more transactions), or it
 * was consumed in a block: found by bisecting the wallet's mined count over heights, then read from
 * that block's own transaction list, which names the transaction that used it. Receipts play no
 * part, so an endpoint that withholds them cannot hide an attempt of ours that mined. Anything the
 * nodes cannot answer is an error, never "unused".
 */
import { type Hex, numberToHex } from "viem";
import { type ChainConfig, finalityRule, readFinalizedBlock } from "../chains/index.js";
import { createRpcClient, type RpcClient } from "../chains/rpc.js";
import { heightMeeting } from "./broadcaster/chainView.js";
import { ChainEvidenceUnavailableError } from "./errors.js";

export type NonceEvidence =
  | { kind: "unused"; head: bigint; latestCount: bigint }
  | {
      kind: "consumed";
      blockNumber: bigint;
      blockHash: Hex;
      /** The transaction of `from` with this nonce in that block (lowercase). */
      txHash: Hex;
      /** The block meets the chain's finality rule. */
      final: boolean;
    };

/** Reads nonce evidence for a wallet on one of the configured chains. */
export type NonceEvidenceReader = (req: {
  chainId: number;
  from: Hex;
  nonce: bigint;
}) => Promise<NonceEvidence>;

type BlockWithTxs = {
  number: Hex;
  hash: Hex;
  transactions: { hash: Hex; from: Hex; nonce: Hex }[];
};

/** The evidence for `nonce` of `from`, read through `rpc` (chains/' fallback over healthy endpoints). */
export async function readNonceEvidence(
  chain: ChainConfig,
  rpc: RpcClient,
  from: Hex,
  nonce: bigint,
): Promise<NonceEvidence> {
  const wallet = from.toLowerCase() as Hex;
  const head = BigInt(await rpc.request<Hex>("eth_blockNumber"));
  const seen = rpc.bestHead();
  const best = seen !== null && seen > head ? seen : head;
  // Every read names a height and is asked only of nodes at or past the best head seen, so a
  // lagging node cannot answer "not yet used" for a nonce the chain has used.
  const countAt = async (height: bigint) =>
    BigInt(
      await rpc.request<Hex>("eth_getTransactionCount", [wallet, numberToHex(height)], {
        atLeast: best,
      }),
    );
  const latestCount = await countAt(best);
  if (latestCount <= nonce) return { kind: "unused", head: best, latestCount };
  // The lowest height whose count exceeds the nonce: the block that used it.
  let lo = 0n;
  let hi = best;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    if ((await countAt(mid)) > nonce) hi = mid;
    else lo = mid + 1n;
  }
  const block = await rpc.request<BlockWithTxs | null>(
    "eth_getBlockByNumber",
    [numberToHex(lo), true],
    { atLeast: best },
  );
  const tx = block?.transactions.find(
    (t) => t.from.toLowerCase() === wallet && BigInt(t.nonce) === nonce,
  );
  if (!block || !tx)
    throw new ChainEvidenceUnavailableError(
      chain.chainId,
      `block ${lo} (where the mined count of ${wallet} passes ${nonce}) does not show its transaction with that nonce`,
    );
  const rule = finalityRule(chain);
  const tag = rule.kind === "finalized" ? await readFinalizedBlock(rpc) : null;
  // The tag counts only when its block is the one the nodes these reads came from have at that
  // height: the endpoint that answered it may be on another fork, which finalizes other blocks.
  const ours = tag
    ? await rpc.request<{ hash: Hex } | null>(
        "eth_getBlockByNumber",
        [numberToHex(tag.number), false],
        { atLeast: best },
      )
    : null;
  const nodeFinalized = tag && ours?.hash.toLowerCase() === tag.hash ? tag.number : null;
  const finalized = heightMeeting(rule, best, nodeFinalized);
  return {
    kind: "consumed",
    blockNumber: lo,
    blockHash: block.hash.toLowerCase() as Hex,
    txHash: tx.hash.toLowerCase() as Hex,
    final: finalized !== null && lo <= finalized,
  };
}

/**
 * A reader over the configured chains (one RPC client per chain, made on first use). A chain
 * not configured, or nodes that cannot answer, give ChainEvidenceUnavailableError.
 */
export function nonceEvidenceFromChains(chains: readonly ChainConfig[]): NonceEvidenceReader {
  const clients = new Map<number, RpcClient>();
  return async ({ chainId, from, nonce }) => {
    const chain = chains.find((c) => c.chainId === chainId);
    if (!chain)
      throw new ChainEvidenceUnavailableError(chainId, "the chain is not in this configuration");
    let rpc = clients.get(chainId);
    if (!rpc) {
      rpc = createRpcClient({ chainId, urls: chain.rpcUrls, timeoutMs: 10_000 });
      clients.set(chainId, rpc);
    }
    try {
      return await readNonceEvidence(chain, rpc, from, nonce);
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
