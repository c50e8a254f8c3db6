/**
 * Serves the static verifier page: exactly two files, verifier.html and the verify.js it imports
 * (the same module `por verify` runs). No build step and nothing from a CDN, so a customer can also
 * save both files and open them from any static server.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const dir = path.dirname(fileURLToPath(import.meta.url));

const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "verifier.html", type: "text/html; charset=utf-8" },
  "/verifier.html": { file: "verifier.html", type: "text/html; charset=utf-8" },
  "/verify.js": { file: "verify.js", type: "text/javascript; charset=utf-8" },
};

export async function servePorPage({
  port = 0,
  host = "127.0.0.1",
}: {
  port?: number;
  host?: string;
} = {}): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const entry = FILES[new URL(req.url ?? "/", "http://x").pathname];
    if (!entry || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const body = readFileSync(path.join(dir, entry.file));
    res
      .writeHead(200, { "content-type": entry.type, "cache-control": "no-store" })
      .end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
