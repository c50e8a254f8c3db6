/**
 * An HTTP JSON-RPC proxy in front of a real node whose first request containing `marker` (e.g.
 * `"trace_block"`, `"finalized"`) fails with HTTP 500, as a hiccup of one endpoint: the read then
 * falls back to the next endpoint. Everything else is forwarded unchanged.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export type FailOnceProxy = {
  url: string;
  /** How many requests were failed (0 or 1). */
  failed: () => number;
  close: () => Promise<void>;
};

export async function startFailOnceProxy(target: string, marker: string): Promise<FailOnceProxy> {
  let failed = 0;
  let armed = true;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    if (armed && body.includes(marker)) {
      armed = false;
      failed++;
      res.writeHead(500).end("upstream hiccup");
      return;
    }
    const upstream = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    res.writeHead(upstream.status, { "content-type": "application/json" });
    res.end(await upstream.text());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    failed: () => failed,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
