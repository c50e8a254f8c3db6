/**
 * How a node that is behind answers: the lying chain's "view" of a real node. Given a view head
 * (the height this node pretends to be at: head - N for a lagging node, 0 for a syncing one), each
 * JSON-RPC call is answered as such a node would: `latest` is the view head, blocks, receipts,
 * transactions and logs above it do not exist (null, empty or "header not found"), state reads at a
 * height above it fail. Receipts can also be withheld (a node still indexing transactions or a
 * load-balanced backend that has not seen them). Everything else reaches the real node unchanged.
 */
import { STATE_BLOCK_PARAM } from "../../evm/createEvmAdapter.js";

export type JsonRpcCall = { jsonrpc?: string; id: unknown; method: string; params?: unknown[] };
export type JsonRpcAnswer = {
  jsonrpc: "2.0";
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
};

/** Ask the real node (one call, its own id). */
export type Upstream = (method: string, params: unknown[]) => Promise<JsonRpcAnswer>;

export type ViewState = {
  /** The height this node answers as if it were its head; null: the real head (no lag). */
  viewHead: bigint | null;
  /** The real node's head (eth_syncing reports it as the highest block while syncing). */
  realHead: bigint;
  /** Report eth_syncing as in progress (a node in initial sync). */
  syncing: boolean;
  /** Answer receipt lookups with null. */
  nullReceipts: boolean;
};

const toHex = (n: bigint) => `0x${n.toString(16)}`;

function headerNotFound(id: unknown): JsonRpcAnswer {
  return { jsonrpc: "2.0", id, error: { code: -32000, message: "header not found" } };
}

function ok(id: unknown, result: unknown): JsonRpcAnswer {
  return { jsonrpc: "2.0", id, result };
}

function blockNumberOf(value: unknown): bigint | null {
  if (value === null || typeof value !== "object") return null;
  const n =
    (value as { blockNumber?: unknown; number?: unknown }).blockNumber ??
    (value as { number?: unknown }).number;
  return typeof n === "string" ? BigInt(n) : null;
}

/**
 * Resolve a block tag or number to a height as the view sees it; null when the real node does not
 * know the tag either (e.g. no finalized block), "above" when the height is beyond the view.
 */
async function resolveTag(
  tag: unknown,
  view: bigint,
  upstream: Upstream,
): Promise<bigint | "above" | null> {
  if (tag === undefined || tag === "latest" || tag === "pending") return view;
  if (tag === "earliest") return 0n;
  if (tag === "safe" || tag === "finalized") {
    const real = await upstream("eth_getBlockByNumber", [tag, false]);
    const n = blockNumberOf(real.result);
    if (n === null) return null;
    return n > view ? view : n;
  }
  if (typeof tag === "string" && tag.startsWith("0x")) {
    const n = BigInt(tag);
    return n > view ? "above" : n;
  }
  if (typeof tag === "object" && tag !== null && "blockHash" in tag) {
    const block = await upstream("eth_getBlockByHash", [
      (tag as { blockHash: string }).blockHash,
      false,
    ]);
    const n = blockNumberOf(block.result);
    if (n === null) return null;
    return n > view ? "above" : n;
  }
  return view;
}

/** Answer one call through the view. */
export async function answerThroughView(
  call: JsonRpcCall,
  state: ViewState,
  upstream: Upstream,
): Promise<JsonRpcAnswer> {
  const params = call.params ?? [];
  const id = call.id;
  const pass = async () => ({ ...(await upstream(call.method, params)), id });

  if (
    state.nullReceipts &&
    (call.method === "eth_getTransactionReceipt" || call.method === "eth_getBlockReceipts")
  )
    return ok(id, null);

  const view = state.viewHead;
  if (view === null) {
    if (call.method === "eth_syncing" && state.syncing)
      return ok(id, {
        startingBlock: "0x0",
        currentBlock: toHex(state.realHead),
        highestBlock: toHex(state.realHead),
      });
    return pass();
  }

  switch (call.method) {
    case "eth_blockNumber":
      return ok(id, toHex(view));
    case "eth_syncing":
      return ok(
        id,
        state.syncing
          ? { startingBlock: "0x0", currentBlock: toHex(view), highestBlock: toHex(state.realHead) }
          : false,
      );
    case "eth_getBlockByNumber":
    case "eth_getBlockReceipts":
    case "trace_block":
    case "debug_traceBlockByNumber": {
      const at = await resolveTag(params[0], view, upstream);
      if (at === null || at === "above") return ok(id, null);
      return { ...(await upstream(call.method, [toHex(at), ...params.slice(1)])), id };
    }
    case "eth_getBlockByHash":
    case "debug_traceBlockByHash": {
      const block = await upstream("eth_getBlockByHash", [params[0], false]);
      const n = blockNumberOf(block.result);
      if (n === null || n > view) return ok(id, null);
      return call.method === "eth_getBlockByHash" && params[1] === false
        ? { ...block, id }
        : pass();
    }
    case "eth_getTransactionReceipt": {
      const answer = await pass();
      const n = blockNumberOf(answer.result);
      return n !== null && n > view ? ok(id, null) : answer;
    }
    case "eth_getTransactionByHash": {
      // Above the view the node knows the transaction only from its pool: not yet mined.
      const answer = await pass();
      const n = blockNumberOf(answer.result);
      if (n === null || n <= view) return answer;
      return ok(id, {
        ...(answer.result as object),
        blockHash: null,
        blockNumber: null,
        transactionIndex: null,
      });
    }
    case "trace_transaction":
    case "debug_traceTransaction": {
      const receipt = await upstream("eth_getTransactionReceipt", [params[0]]);
      const n = blockNumberOf(receipt.result);
      if (n !== null && n > view)
        return { jsonrpc: "2.0", id, error: { code: -32000, message: "transaction not found" } };
      return pass();
    }
    case "eth_getLogs": {
      const filter = { ...((params[0] ?? {}) as Record<string, unknown>) };
      if (typeof filter.blockHash === "string") {
        const block = await upstream("eth_getBlockByHash", [filter.blockHash, false]);
        const n = blockNumberOf(block.result);
        if (n === null || n > view)
          return { jsonrpc: "2.0", id, error: { code: -32000, message: "unknown block" } };
        return pass();
      }
      const from = await resolveTag(filter.fromBlock ?? "latest", view, upstream);
      const to = await resolveTag(filter.toBlock ?? "latest", view, upstream);
      // Like geth: a range starting past the head is refused; one ending past it is cut at the head.
      if (from === "above" || from === null)
        return {
          jsonrpc: "2.0",
          id,
          error: { code: -32000, message: "invalid block range params" },
        };
      filter.fromBlock = toHex(from);
      filter.toBlock = toHex(to === "above" || to === null ? view : to);
      return { ...(await upstream("eth_getLogs", [filter, ...params.slice(1)])), id };
    }
    case "eth_gasPrice": {
      // A node prices gas from its own newest blocks: its next base fee (the block after its head,
      // as eth_feeHistory's above) and the tip it adds. anvil answers its own next block's base
      // fee plus its tip: a node at the view tells the base fee of block view + 1 plus that tip.
      const [real, history, next] = await Promise.all([
        upstream("eth_gasPrice", []),
        upstream("eth_feeHistory", ["0x1", "latest", []]),
        upstream("eth_getBlockByNumber", [toHex(view + 1n), false]),
      ]);
      const realNext = (
        history.result as { baseFeePerGas?: string[] } | undefined
      )?.baseFeePerGas?.at(-1);
      const fee = (next.result as { baseFeePerGas?: string } | null)?.baseFeePerGas;
      if (typeof real.result !== "string" || !realNext || !fee) return { ...real, id };
      return ok(id, toHex(BigInt(real.result) - BigInt(realNext) + BigInt(fee)));
    }
    case "eth_feeHistory": {
      const at = await resolveTag(params[1], view, upstream);
      if (at === null || at === "above") return headerNotFound(id);
      const answer = await upstream(call.method, [params[0], toHex(at), ...params.slice(2)]);
      // The history's last base fee is the block after its newest one's, which a node computes
      // from that block's header. anvil answers with the base fee of its own next block whatever
      // the newest block asked: a node at `at` tells the base fee of block at + 1.
      const history = answer.result as { baseFeePerGas?: string[] } | undefined;
      if (history?.baseFeePerGas?.length) {
        const next = await upstream("eth_getBlockByNumber", [toHex(at + 1n), false]);
        const fee = (next.result as { baseFeePerGas?: string } | null)?.baseFeePerGas;
        if (fee) history.baseFeePerGas[history.baseFeePerGas.length - 1] = fee;
      }
      return { ...answer, id };
    }
    default: {
      // State reads (eth_feeHistory is answered above), at the block the view names.
      const index = STATE_BLOCK_PARAM[call.method];
      if (index === undefined) return pass();
      const at = await resolveTag(params[index], view, upstream);
      if (at === null || at === "above") return headerNotFound(id);
      const rewritten = [...params];
      while (rewritten.length < index) rewritten.push(undefined);
      rewritten[index] = toHex(at);
      return { ...(await upstream(call.method, rewritten)), id };
    }
  }
}
