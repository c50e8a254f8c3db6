/**
 * A loopback HTTP proxy in front of a real node that injects faults: HTTP 500, HTTP 429, hangs
 * (timeouts), dropped connections, or a provider-style "too many results" error for wide
 * eth_getLogs ranges. It is a fault injector for tests, not a mock: good requests reach the node.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export type Fault = "none" | "http500" | "http429" | "hang" | "drop";

export type FaultyProxy = {
  url: string;
  /** Set the fault for the following requests (or a function deciding per request number). */
  setFault: (fault: Fault | ((n: number) => Fault)) => void;
  /** eth_getLogs spanning more blocks than this gets a JSON-RPC "more than 10000 results" error. */
  setMaxLogRange: (blocks: number | null) => void;
  /** Answer ranged eth_getLogs (fromBlock/toBlock) with no logs: a provider silently dropping them. */
  setDropRangeLogs: (drop: boolean) => void;
  /** Answer JSON-RPC batches with one error object, as providers without batch support do. */
  setRefuseBatches: (refuse: boolean) => void;
  requests: () => number;
  logRanges: () => number[];
  close: () => Promise<void>;
};

export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  let fault: Fault | ((n: number) => Fault) = "none";
  let maxLogRange: number | null = null;
  let refuseBatches = false;
  let dropRangeLogs = false;
  let count = 0;
  const ranges: number[] = [];
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const n = count++;
      const current = typeof fault === "function" ? fault(n) : fault;
      if (current === "http500") return void res.writeHead(500).end("internal error");
      if (current === "http429")
        return void res.writeHead(429, { "retry-after": "0" }).end("too many requests");
      if (current === "hang") {
        hanging.add(res);
        return;
      }
      if (current === "drop") return void req.socket.destroy();
      const body = Buffer.concat(chunks).toString();
      const parsed = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      if (Array.isArray(parsed) && refuseBatches) {
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(
          JSON.stringify({
            jsonrpc: "2.0",
            id: null,
            error: { code: -32600, message: "batch requests are not supported" },
          }),
        );
      }
      if (!Array.isArray(parsed) && parsed.method === "eth_getLogs") {
        const filter = parsed.params[0] as { fromBlock?: string; toBlock?: string };
        if (dropRangeLogs && filter.fromBlock !== undefined) {
          res.writeHead(200, { "content-type": "application/json" });
          return void res.end(JSON.stringify({ jsonrpc: "2.0", id: parsed.id, result: [] }));
        }
        if (filter.fromBlock === undefined || filter.toBlock === undefined)
          filter.fromBlock = filter.toBlock = "0x0";
        const span = Number(BigInt(filter.toBlock) - BigInt(filter.fromBlock)) + 1;
        ranges.push(span);
        if (maxLogRange !== null && span > maxLogRange) {
          res.writeHead(200, { "content-type": "application/json" });
          return void res.end(
            JSON.stringify({
              jsonrpc: "2.0",
              id: parsed.id,
              error: { code: -32005, message: "query returned more than 10000 results" },
            }),
          );
        }
      }
      try {
        const upstream = await fetch(target, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        res.writeHead(upstream.status, { "content-type": "application/json" });
        res.end(await upstream.text());
      } catch {
        res.writeHead(502).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setFault: (f) => {
      fault = f;
    },
    setMaxLogRange: (blocks) => {
      maxLogRange = blocks;
    },
    setDropRangeLogs: (drop) => {
      dropRangeLogs = drop;
    },
    setRefuseBatches: (refuse) => {
      refuseBatches = refuse;
    },
    requests: () => count,
    logRanges: () => [...ranges],
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
