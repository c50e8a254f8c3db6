/**
 * rpc.ts ReadOptions.otherChain: an endpoint whose answer the caller shows is of another chain is
 * set aside (not asked, its head not counted, the best head it showed dropped), counted and
 * logged, and the read asks the next endpoint. Two loopback nodes with the same chain id and
 * different blocks at height 10.
 */
import { createServer, type Server } from "node:http";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../foundation/logger.js";
import { NoHealthyEndpointError } from "./errors.js";
import { rpcMetrics } from "./metrics.js";
import { createRpcClient, endpointLabel, type RpcCall } from "./rpc.js";

type Node = { url: string; head: bigint; hashAt10: string; asked: number; server: Server };

async function startNode(head: bigint, hashAt10: string): Promise<Node> {
  const node = { url: "", head, hashAt10, asked: 0 } as Node;
  node.server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      node.asked++;
      const parsed = JSON.parse(body) as RpcCall & { id: number };
      const answer = (r: RpcCall & { id: number }) => {
        const result =
          r.method === "eth_blockNumber"
            ? `0x${node.head.toString(16)}`
            : r.method === "eth_getBlockByNumber"
              ? node.hashAt10 === "" // a node that does not have the block
                ? null
                : { number: r.params[0], hash: node.hashAt10 }
              : r.method === "eth_chainId"
                ? "0x1" // both say chain 1: the other network has our chain id
                : "0x7";
        return { jsonrpc: "2.0", id: r.id, result };
      };
      const out = Array.isArray(parsed) ? parsed.map(answer) : answer(parsed);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => node.server.listen(0, "127.0.0.1", r));
  node.url = `http://127.0.0.1:${(node.server.address() as { port: number }).port}`;
  return node;
}

let ours: Node;
let other: Node;

beforeAll(async () => {
  ours = await startNode(100n, `0x${"aa".repeat(32)}`);
  other = await startNode(150n, `0x${"bb".repeat(32)}`);
});

afterAll(async () => {
  for (const n of [ours, other]) await new Promise<void>((r) => n.server.close(() => r()));
});

const calls: RpcCall[] = [
  { method: "eth_blockNumber", params: [] },
  { method: "eth_getBlockByNumber", params: ["0xa", false] },
];
const otherChain = (results: unknown[]) => {
  const hash = (results[1] as { hash: string }).hash;
  return hash === ours.hashAt10 ? null : `block 10 is ${hash}`;
};

describe("an endpoint whose answer is of another chain", () => {
  it("is set aside: its best head dropped, counted and logged by label, not asked; the next endpoint answers", async () => {
    const metrics = rpcMetrics(new Registry());
    const warnings: Record<string, unknown>[] = [];
    const logger = { warn: (o: Record<string, unknown>) => warnings.push(o) } as unknown as Logger;
    const rpc = createRpcClient({
      chainId: 1,
      urls: [ours.url, `${other.url}/v2/SECRETKEY`],
      metrics,
      logger,
    });
    // Both heads known: the other network's is the best seen.
    await rpc.request("eth_blockNumber");
    expect(await rpc.request("eth_gasPrice", [], { atLeast: 150n })).toBe("0x7");
    expect(rpc.bestHead()).toBe(150n);

    // A read at the best head reaches only the other node; its answer is of another chain.
    await expect(rpc.batch(calls, { atLeast: 150n, otherChain })).rejects.toThrow(
      NoHealthyEndpointError,
    );
    expect(rpc.bestHead()).toBe(100n);
    expect((await metrics.otherChain.get()).values).toEqual([
      { labels: { chain_id: "1", endpoint: endpointLabel(other.url) }, value: 1 },
    ]);
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings)).not.toContain("SECRETKEY");
    expect(warnings[0]).toMatchObject({ endpoint: endpointLabel(other.url) });

    // From now on: our node answers, the other one is asked nothing (not even its head).
    const askedBefore = other.asked;
    expect(await rpc.batch(calls, { atLeast: 100n, otherChain })).toEqual([
      "0x64",
      { number: "0xa", hash: ours.hashAt10 },
    ]);
    ours.head = 101n;
    await rpc.request("eth_blockNumber");
    expect(rpc.bestHead()).toBe(101n);
    await expect(rpc.request("eth_gasPrice", [], { atLeast: 150n })).rejects.toThrow();
    expect(other.asked).toBe(askedBefore);
    expect(rpc.heads().map((h) => h.head)).toEqual([101n, null]);
  });

  it("with every endpoint set aside, a read fails at once: no node of ours to ask", async () => {
    const rpc = createRpcClient({ chainId: 1, urls: [other.url] });
    await expect(rpc.batch(calls, { otherChain })).rejects.toThrow();
    const asked = other.asked;
    await expect(rpc.request("eth_blockNumber")).rejects.toThrow();
    expect(other.asked).toBe(asked);
  });
});

describe("with our final block held (holdFinal)", () => {
  const final = { number: 10n, hash: `0x${"aa".repeat(32)}` };

  it("an endpoint showing another block there is set aside before its head counts or it is asked a read", async () => {
    const metrics = rpcMetrics(new Registry());
    const rpc = createRpcClient({ chainId: 1, urls: [other.url, ours.url], metrics });
    rpc.holdFinal(final);
    // before the fix: "rpc.holdFinal is not a function" (the other network's head, 150, was the best)
    expect(await rpc.askEveryHead()).toBe(ours.head);
    expect((await metrics.otherChain.get()).values).toEqual([
      { labels: { chain_id: "1", endpoint: endpointLabel(other.url) }, value: 1 },
    ]);
    const asked = other.asked;
    expect(await rpc.request("eth_gasPrice")).toBe("0x7");
    expect(other.asked).toBe(asked);
  });

  it("an endpoint showing another block where no endpoint shows ours is not set aside (the chain may have reorged: the halt's to judge)", async () => {
    const metrics = rpcMetrics(new Registry());
    const rpc = createRpcClient({ chainId: 1, urls: [other.url], metrics });
    rpc.holdFinal(final);
    expect(await rpc.askEveryHead()).toBe(other.head);
    expect((await metrics.otherChain.get()).values).toEqual([]);
  });

  it("an endpoint that does not have the block is no evidence: used, its head counted", async () => {
    const behind = await startNode(5n, "");
    try {
      const metrics = rpcMetrics(new Registry());
      const rpc = createRpcClient({ chainId: 1, urls: [behind.url, ours.url], metrics });
      rpc.holdFinal(final);
      expect(await rpc.askEveryHead()).toBe(ours.head);
      expect(rpc.heads().map((h) => h.head)).toEqual([5n, ours.head]);
      expect((await metrics.otherChain.get()).values).toEqual([]);
      const asked = behind.asked;
      expect(await rpc.request("eth_gasPrice")).toBe("0x7");
      expect(behind.asked).toBe(asked + 1); // asked the read itself, not its block again (a second)
    } finally {
      await new Promise<void>((r) => behind.server.close(() => r()));
    }
  });
});
