/**
 * A node stuck on a fork, behind a lying proxy: an execution node whose consensus client died.
 * Its head stops at the chain's head now and it keeps answering the blocks it holds from `from`
 * up (both hydrations, their receipts and traces) whatever the chain does next; below `from` and
 * for other reads it answers as the chain does. Test-only.
 */
import type { Address } from "viem";
import type { FaultyProxy } from "../../chains/testing/faultyProxy.js";
import type { Rpc } from "./chain.js";
import { type IndexerTest, startIndexerTest } from "./indexerTest.js";

const STUCK_METHODS = [
  "eth_blockNumber",
  "eth_getBlockByNumber",
  "eth_getBlockReceipts",
  "trace_block",
] as const;

const hex = (n: bigint) => `0x${n.toString(16)}`;

/**
 * An indexer test for a first endpoint stuck on a losing fork: two proxies (the first to be stuck,
 * the second following the chain), confirmations 2, reorg window 8, finality 64 blocks, `address`
 * watched.
 */
export function startStuckNodeTest(address: Address): Promise<IndexerTest> {
  return startIndexerTest({
    proxies: 2,
    config: {
      confirmations: { kind: "blocks", blocks: 2 },
      reorgWindow: 8,
      finality: { kind: "blocks", blocks: 64 },
    },
    watch: [{ address }],
  });
}

/** The proxy answers as the chain does again. */
export function unstick(proxy: FaultyProxy): void {
  for (const method of STUCK_METHODS) proxy.setMethodLie(method, null);
}

/**
 * From now on the proxy serves the chain as `rpc` has it now from block `from` to its head, and
 * that head as its own; returns that head.
 */
export async function stickAtHead(
  rpc: Rpc,
  proxy: FaultyProxy,
  from: bigint,
): Promise<{ number: bigint; hash: string }> {
  unstick(proxy);
  const latest = await rpc<{ number: string; hash: string }>("eth_getBlockByNumber", [
    "latest",
    false,
  ]);
  const head = { number: BigInt(latest.number), hash: latest.hash.toLowerCase() };
  const old = new Map<string, unknown>();
  const byNumber = ["eth_getBlockReceipts", "trace_block"];
  for (let n = from; n <= head.number; n++) {
    for (const full of [false, true])
      old.set(`${n}:${full}`, await rpc("eth_getBlockByNumber", [hex(n), full]));
    for (const method of byNumber) old.set(`${method}:${n}`, await rpc(method, [hex(n)]));
  }
  proxy.setMethodLie("eth_blockNumber", () => ({ result: hex(head.number) }));
  proxy.setMethodLie("eth_getBlockByNumber", (real, params) => {
    const [tag, full] = params as [string, boolean];
    const n = tag === "latest" || tag === "pending" ? head.number : BigInt(tag);
    if (old.has(`${n}:${full}`)) return { result: old.get(`${n}:${full}`) };
    if (n > head.number) return { result: null };
    return real.error ? { error: real.error } : { result: real.result };
  });
  // Its receipts and traces are its blocks' (a real node answers from its own chain).
  for (const method of byNumber)
    proxy.setMethodLie(method, (real, params) => {
      const n = BigInt(params[0] as string);
      if (old.has(`${method}:${n}`)) return { result: old.get(`${method}:${n}`) };
      if (n > head.number) return { result: null };
      return real.error ? { error: real.error } : { result: real.result };
    });
  return head;
}

/**
 * The proxy stuck at the chain's head (`stickAtHead` from `from`), then the chain reorging the
 * blocks from `from` up out (replaced by empty ones) and moving on 3 blocks. Returns the stuck head.
 */
export async function stuckThroughReorg(
  rpc: Rpc,
  proxy: FaultyProxy,
  from: bigint,
): Promise<{ number: bigint; hash: string }> {
  const head = await stickAtHead(rpc, proxy, from);
  await rpc("anvil_reorg", [Number(head.number - from + 1n), []]);
  await rpc("anvil_mine", ["0x3"]);
  return head;
}
