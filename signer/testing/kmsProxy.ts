/**
 * A loopback HTTP proxy in front of the KMS emulator that fails chosen KMS calls the way AWS KMS
 * does on a bad day: HTTP 500 KMSInternalException (the AWS SDK's adaptive retry retries those) or
 * HTTP 400 KMSInvalidStateException (not retried: the caller sees it), or holds one until the
 * test lets it through (a slow KMS); every other call reaches the emulator unchanged. A fault
 * injector for tests, not a mock.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gate } from "../../ops/testing/gate.js";

export type FailureKind = "internal" | "invalid_state";

const FAILURES: Record<FailureKind, { status: number; type: string }> = {
  internal: { status: 500, type: "KMSInternalException" },
  invalid_state: { status: 400, type: "KMSInvalidStateException" },
};

export type KmsProxy = {
  url: string;
  /** Fail the next `n` calls of `operation` (e.g. "Sign"). */
  failNext: (operation: string, n: number) => void;
  /** Fail the nth call (1-based, counted from the start) of `operation`, by default not retryably. */
  failNth: (operation: string, nth: number, kind?: FailureKind) => void;
  /**
   * Fail (not retryably) the next Sign call whose digest is `digest` (0x-hex): a failure aimed at
   * one transaction's signature however many other Sign calls run around it.
   */
  failDigest: (digest: string) => void;
  /** Sign calls failed by failDigest. */
  digestFailures: () => number;
  /**
   * Hold the next call of `operation` before it reaches the emulator, as a slow KMS would:
   * `reached` resolves once it has arrived, `release()` lets it through (then answered as usual).
   */
  holdNext: (operation: string) => { reached: Promise<void>; release: () => void };
  /** Calls seen per operation, failed ones included. */
  calls: (operation: string) => number;
  failed: () => number;
  close: () => Promise<void>;
};

export async function startKmsProxy(target: string): Promise<KmsProxy> {
  const counts = new Map<string, number>();
  const pending = new Map<string, number>();
  const nths = new Map<string, FailureKind>();
  let failed = 0;
  const digests = new Set<string>();
  let digestFailed = 0;
  const holds = new Map<string, { arrived: () => void; released: Promise<void> }>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      // X-Amz-Target: TrentService.Sign
      const operation =
        String(req.headers["x-amz-target"] ?? "")
          .split(".")
          .pop() ?? "";
      counts.set(operation, (counts.get(operation) ?? 0) + 1);
      const left = pending.get(operation) ?? 0;
      const key = `${operation}#${counts.get(operation)}`;
      const nth = nths.get(key);
      if (operation === "Sign" && digests.size > 0) {
        let message = "";
        try {
          const b64 = (JSON.parse(Buffer.concat(chunks).toString()) as { Message?: string })
            .Message;
          message = `0x${Buffer.from(b64 ?? "", "base64").toString("hex")}`;
        } catch {}
        if (digests.delete(message)) {
          failed++;
          digestFailed++;
          const f = FAILURES.invalid_state;
          res.writeHead(f.status, { "content-type": "application/x-amz-json-1.1" });
          res.end(JSON.stringify({ __type: f.type, message: "injected failure" }));
          return;
        }
      }
      if (left > 0 || nth) {
        if (nth) nths.delete(key);
        else pending.set(operation, left - 1);
        failed++;
        const f = FAILURES[nth ?? "internal"];
        res.writeHead(f.status, { "content-type": "application/x-amz-json-1.1" });
        res.end(JSON.stringify({ __type: f.type, message: "injected failure" }));
        return;
      }
      const hold = holds.get(operation);
      if (hold) {
        holds.delete(operation);
        hold.arrived();
        await hold.released;
      }
      try {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (typeof v === "string" && k !== "host" && k !== "content-length") headers[k] = v;
        const response = await fetch(`${target}${req.url ?? "/"}`, {
          method: req.method ?? "POST",
          headers,
          body: Buffer.concat(chunks),
        });
        const body = Buffer.from(await response.arrayBuffer());
        res.writeHead(response.status, {
          "content-type": response.headers.get("content-type") ?? "application/x-amz-json-1.1",
        });
        res.end(body);
      } catch (error) {
        res.writeHead(502).end(String(error));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    failNext(operation, n) {
      pending.set(operation, (pending.get(operation) ?? 0) + n);
    },
    failNth(operation, nth, kind = "invalid_state") {
      nths.set(`${operation}#${nth}`, kind);
    },
    failDigest(digest) {
      digests.add(digest.toLowerCase());
    },
    digestFailures: () => digestFailed,
    holdNext(operation) {
      const arrived = gate();
      const released = gate();
      holds.set(operation, { arrived: arrived.open, released: released.wait });
      return { reached: arrived.wait, release: released.open };
    },
    calls: (operation) => counts.get(operation) ?? 0,
    failed: () => failed,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
