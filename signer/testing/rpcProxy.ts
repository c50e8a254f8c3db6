/**
 * A loopback JSON-RPC proxy in front of a real node for the signer's fault tests: a test-chosen
 * hook may answer a call itself (a null receipt, a node's refusal of a send), and another may
 * change the node's answer (a receipt missing a field); every other call, single or in a batch,
 * reaches the node and comes back unchanged. A fault injector, not a mock.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { waitFor } from "../../ops/testing/wait.js";

export type RpcCallIn = {
  jsonrpc: "2.0";
  id: number | string | null;
  method: string;
  params?: unknown[];
};
export type Answer = { result: unknown } | { error: { code: number; message: string } };
/**
 * Return an answer to short-circuit the call, or undefined to pass it to the node; or a promise of
 * either: the call is answered once it settles (a node that answers after something happened).
 */
export type Intercept = (call: RpcCallIn) => Answer | undefined | Promise<Answer | undefined>;
/** Given a call the node answered and its result, the result the caller gets instead. */
export type Rewrite = (call: RpcCallIn, result: unknown) => unknown;

export type RpcProxy = {
  url: string;
  setIntercept: (fn: Intercept | undefined) => void;
  setRewrite: (fn: Rewrite | undefined) => void;
  /** Calls seen per method (passed or answered). */
  calls: (method: string) => number;
  /**
   * Answer every request this much later (a distant or slow node); 0 (the default): at once. With
   * `methods`, only requests (a batch is one) holding a call of one of them: one slow read, and
   * the calls before it at full speed.
   */
  setDelay: (ms: number, methods?: readonly string[]) => void;
  /** The most requests (HTTP requests: a batch is one) this proxy was answering at once. */
  mostInFlight: () => number;
  close: () => Promise<void>;
};

export async function startRpcProxy(target: string): Promise<RpcProxy> {
  let intercept: Intercept | undefined;
  let rewrite: Rewrite | undefined;
  const counts = new Map<string, number>();
  let delayMs = 0;
  let delayed: readonly string[] | undefined;
  let inFlight = 0;
  let mostInFlight = 0;

  async function forward(body: unknown): Promise<unknown> {
    const response = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return response.json();
  }

  async function handle(parsed: RpcCallIn | RpcCallIn[]): Promise<unknown> {
    const list = Array.isArray(parsed) ? parsed : [parsed];
    const answers = new Map<number, unknown>();
    const pass: { i: number; call: RpcCallIn }[] = [];
    for (const [i, call] of list.entries()) {
      counts.set(call.method, (counts.get(call.method) ?? 0) + 1);
      const a = await intercept?.(call);
      if (a) answers.set(i, { jsonrpc: "2.0", id: call.id, ...a });
      else pass.push({ i, call });
    }
    if (pass.length > 0) {
      const forwarded = await forward(
        Array.isArray(parsed) ? pass.map((p) => p.call) : pass[0]!.call,
      );
      const results = Array.isArray(forwarded) ? forwarded : [forwarded];
      const byId = new Map(results.map((r) => [(r as { id: unknown }).id, r]));
      for (const p of pass) {
        const answer = byId.get(p.call.id) as { result?: unknown } | undefined;
        answers.set(
          p.i,
          rewrite && answer && "result" in answer
            ? { ...answer, result: rewrite(p.call, answer.result) }
            : answer,
        );
      }
    }
    const out = list.map((_, i) => answers.get(i));
    return Array.isArray(parsed) ? out : out[0];
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        const parsed = JSON.parse(Buffer.concat(chunks).toString()) as RpcCallIn | RpcCallIn[];
        const out = await handle(parsed);
        const calls = Array.isArray(parsed) ? parsed : [parsed];
        if (delayMs > 0 && (!delayed || calls.some((c) => delayed?.includes(c.method))))
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(out));
      } catch (error) {
        res.writeHead(502).end(String(error));
      } finally {
        inFlight--;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setIntercept(fn) {
      intercept = fn;
    },
    setRewrite(fn) {
      rewrite = fn;
    },
    calls: (method) => counts.get(method) ?? 0,
    setDelay(ms, methods) {
      delayMs = ms;
      delayed = methods;
    },
    mostInFlight: () => mostInFlight,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Let the code behind the proxy ask the node `method` at least `n` more times: a bounded window of
 * its rounds (a signer tick's head read, a deploy follower's receipt read) for a negative check.
 */
export async function moreCalls(proxy: RpcProxy, method: string, n: number): Promise<void> {
  const from = proxy.calls(method);
  await waitFor(`${n} more ${method} calls`, async () => proxy.calls(method) >= from + n, {
    timeoutMs: 20_000,
    everyMs: 20,
  });
}
