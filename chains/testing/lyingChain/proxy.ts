/**
 * The lying chain: a loopback HTTP JSON-RPC proxy in front of one or more real nodes (anvil) that
 * lies the way providers do on bad days. Per request it can fail at the transport (HTTP 500, 429,
 * a hang that outlasts the client's timeout, a dropped connection), chosen either by a fixed fault,
 * a per-request function, or random rates drawn from a seeded stream. Behind it, each backend can
 * be a lagging node (answers as if its head were head - N), a syncing node (head 0) or withhold
 * receipts, and raw transactions can be refused or silently lost; with several backends the proxy
 * round-robins between them, like a load balancer whose backends disagree. One method's answers can
 * also be rewritten from the real ones (a JSON-RPC error, receipts left out or of another block).
 * Good requests reach the real node: it injects faults, it is not a mock.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { keccak256 } from "viem";
import { answerThroughView, type JsonRpcAnswer, type JsonRpcCall, type Upstream } from "./view.js";

export type Fault = "none" | "http500" | "http429" | "hang" | "drop";

/** A backend of the load balancer: a real node's URL and how far behind this view of it is. */
export type Backend = {
  url: string;
  /** Blocks behind the real head, or "syncing" (head 0, eth_syncing in progress). */
  lag?: number | "syncing";
  /** Withhold receipts (eth_getTransactionReceipt and eth_getBlockReceipts answer null). */
  nullReceipts?: boolean;
};

/**
 * A node refusing raw transactions: with probability `rate` an eth_sendRawTransaction is answered
 * with a JSON-RPC error `message`; with `forward` the node got it anyway (it mines): one backend
 * of a load balancer rejected what another accepted.
 */
export type SendFault = { rate: number; forward: boolean; message: string };

/**
 * How one method's answers lie, given the real node's answer and the call's params: the answer sent
 * instead (a JSON-RPC error, or another result).
 */
export type MethodLie = (
  real: { result?: unknown; error?: { code: number; message: string } },
  params: unknown[],
) => { result: unknown } | { error: { code: number; message: string } };

/** Probability per HTTP request of each transport fault (applies while the fixed fault is "none"). */
export type FaultRates = { http500?: number; http429?: number; timeout?: number; drop?: number };

export type LyingProxy = {
  url: string;
  /** Set the fault for the following requests (or a function deciding per request number). */
  setFault: (fault: Fault | ((n: number) => Fault)) => void;
  /** Random transport faults at these rates, drawn from `random` (a seeded stream); null: off. */
  setFaultRates: (rates: FaultRates | null, random?: () => number) => void;
  /** Refuse raw transactions (single, non-batched calls), drawing from `random`; null: off. */
  setSendFault: (fault: SendFault | null, random?: () => number) => void;
  /**
   * Decide per raw transaction (single, non-batched eth_sendRawTransaction): a message refuses it
   * with that JSON-RPC error (the node never sees it); undefined passes it on. Checked before the
   * rate-based send fault, so a transaction refused this way never mines. null: off.
   */
  setSendIntercept: (decide: ((raw: string) => string | undefined) | null) => void;
  /**
   * Lose raw transactions silently: when `drop(raw)` is true (single, non-batched
   * eth_sendRawTransaction), the answer is the transaction's hash, as if accepted, and the node
   * never sees it (a provider's backend that drops what it acknowledged). Checked after the send
   * intercept, before the rate-based send fault. null: off.
   */
  setSendDrop: (drop: ((raw: string) => boolean) | null) => void;
  /** How long a hanging request is held before its connection is closed; null: until close(). */
  setHangMs: (ms: number | null) => void;
  /** eth_getLogs spanning more blocks than this gets a JSON-RPC "more than 10000 results" error. */
  setMaxLogRange: (blocks: number | null) => void;
  /** Answer ranged eth_getLogs (fromBlock/toBlock) with no logs: a provider silently dropping them. */
  setDropRangeLogs: (drop: boolean) => void;
  /** Answer JSON-RPC batches with one error object, as providers without batch support do. */
  setRefuseBatches: (refuse: boolean) => void;
  /** Rewrite every answer to `method` (single or in a batch) with `lie`; null: answer truly. */
  setMethodLie: (method: string, lie: MethodLie | null) => void;
  /** Replace the backends (round-robin per HTTP request). */
  setBackends: (backends: Backend[]) => void;
  backends: () => Backend[];
  /** Every backend lags this many blocks (or is syncing); null: none lags. */
  setLag: (lag: number | "syncing" | null) => void;
  /** Every backend withholds receipts (for `forMs` milliseconds when given). */
  setNullReceipts: (on: boolean, forMs?: number) => void;
  requests: () => number;
  logRanges: () => number[];
  /**
   * Requests per injected fault kind and per lie ("lagging", "syncing", "null_receipts",
   * "dropped_logs"), and calls per rewritten method ("lie:<method>").
   */
  stats: () => Record<string, number>;
  close: () => Promise<void>;
};

async function postJson(url: string, body: string): Promise<{ status: number; text: string }> {
  const upstream = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return { status: upstream.status, text: await upstream.text() };
}

function upstreamOf(url: string): Upstream {
  let id = 0;
  return async (method, params) => {
    const { status, text } = await postJson(
      url,
      JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
    );
    if (status !== 200) throw new Error(`upstream HTTP ${status}`);
    return JSON.parse(text) as JsonRpcAnswer;
  };
}

export async function startLyingProxy(target: string | Backend[]): Promise<LyingProxy> {
  let backends: Backend[] = typeof target === "string" ? [{ url: target }] : [...target];
  let fault: Fault | ((n: number) => Fault) = "none";
  let rates: FaultRates | null = null;
  let sendFault: SendFault | null = null;
  let sendRandom: () => number = Math.random;
  let sendIntercept: ((raw: string) => string | undefined) | null = null;
  let sendDrop: ((raw: string) => boolean) | null = null;
  let random: () => number = Math.random;
  let hangMs: number | null = null;
  let maxLogRange: number | null = null;
  let refuseBatches = false;
  let dropRangeLogs = false;
  let nullReceiptsUntil = 0;
  const lies = new Map<string, MethodLie>();
  let count = 0;
  let turn = 0;
  const ranges: number[] = [];
  const counters: Record<string, number> = {};
  const bump = (key: string) => {
    counters[key] = (counters[key] ?? 0) + 1;
  };
  const hanging = new Set<http.ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();

  function pickFault(n: number): Fault | "timeout" {
    const fixed = typeof fault === "function" ? fault(n) : fault;
    if (fixed !== "none" || rates === null) return fixed;
    const r = random();
    let edge = 0;
    for (const kind of ["http500", "http429", "timeout", "drop"] as const) {
      edge += rates[kind] ?? 0;
      if (r < edge) return kind;
    }
    return "none";
  }

  function hang(res: http.ServerResponse, req: http.IncomingMessage) {
    hanging.add(res);
    if (hangMs === null) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      hanging.delete(res);
      req.socket.destroy();
    }, hangMs);
    timers.add(timer);
  }

  async function answer(backend: Backend, body: string): Promise<{ status: number; text: string }> {
    const nullReceipts = backend.nullReceipts === true || Date.now() < nullReceiptsUntil;
    const lying = backend.lag !== undefined || nullReceipts;
    if (!lying) return postJson(backend.url, body);
    const upstream = upstreamOf(backend.url);
    const realHead = BigInt(
      ((await upstream("eth_blockNumber", [])).result as string | undefined) ?? "0x0",
    );
    const viewHead =
      backend.lag === undefined
        ? null
        : backend.lag === "syncing"
          ? 0n
          : realHead > BigInt(backend.lag)
            ? realHead - BigInt(backend.lag)
            : 0n;
    if (backend.lag === "syncing") bump("syncing");
    else if (backend.lag !== undefined) bump("lagging");
    if (nullReceipts) bump("null_receipts");
    const state = { viewHead, realHead, syncing: backend.lag === "syncing", nullReceipts };
    const parsed = JSON.parse(body) as JsonRpcCall | JsonRpcCall[];
    const result = Array.isArray(parsed)
      ? await Promise.all(parsed.map((c) => answerThroughView(c, state, upstream)))
      : await answerThroughView(parsed, state, upstream);
    return { status: 200, text: JSON.stringify(result) };
  }

  /** The answer with each call of a lied-about method rewritten (ids kept). */
  function lie(parsed: JsonRpcCall | JsonRpcCall[], text: string): string {
    const calls = Array.isArray(parsed) ? parsed : [parsed];
    let answers: JsonRpcAnswer | JsonRpcAnswer[];
    try {
      answers = JSON.parse(text) as JsonRpcAnswer | JsonRpcAnswer[];
    } catch {
      return text;
    }
    const list = Array.isArray(answers) ? answers : [answers];
    const rewritten = list.map((a) => {
      const c = calls.find((x) => x.id === a.id);
      const told = c && lies.get(c.method);
      if (!told) return a;
      bump(`lie:${c.method}`);
      return { jsonrpc: "2.0" as const, id: a.id, ...told(a, c.params ?? []) };
    });
    return JSON.stringify(Array.isArray(answers) ? rewritten : rewritten[0]);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const n = count++;
      const current = pickFault(n);
      if (current !== "none") bump(current);
      if (current === "http500") return void res.writeHead(500).end("internal error");
      if (current === "http429")
        return void res.writeHead(429, { "retry-after": "0" }).end("too many requests");
      if (current === "hang" || current === "timeout") return hang(res, req);
      if (current === "drop") return void req.socket.destroy();
      const body = Buffer.concat(chunks).toString();
      let parsed: JsonRpcCall | JsonRpcCall[];
      try {
        parsed = JSON.parse(body) as JsonRpcCall | JsonRpcCall[];
      } catch {
        return void res.writeHead(400).end("not JSON");
      }
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
        const filter = (parsed.params?.[0] ?? {}) as { fromBlock?: string; toBlock?: string };
        if (dropRangeLogs && filter.fromBlock !== undefined) {
          bump("dropped_logs");
          res.writeHead(200, { "content-type": "application/json" });
          return void res.end(JSON.stringify({ jsonrpc: "2.0", id: parsed.id, result: [] }));
        }
        const from = filter.fromBlock?.startsWith("0x") ? filter.fromBlock : "0x0";
        const to = filter.toBlock?.startsWith("0x") ? filter.toBlock : from;
        const span = Number(BigInt(to) - BigInt(from)) + 1;
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
      const backend = backends[turn++ % backends.length] as Backend;
      if (
        sendIntercept !== null &&
        !Array.isArray(parsed) &&
        parsed.method === "eth_sendRawTransaction"
      ) {
        const refusal = sendIntercept(String(parsed.params?.[0] ?? ""));
        if (refusal !== undefined) {
          bump("send_intercepted");
          res.writeHead(200, { "content-type": "application/json" });
          return void res.end(
            JSON.stringify({
              jsonrpc: "2.0",
              id: parsed.id,
              error: { code: -32000, message: refusal },
            }),
          );
        }
      }
      if (
        sendDrop !== null &&
        !Array.isArray(parsed) &&
        parsed.method === "eth_sendRawTransaction"
      ) {
        const raw = String(parsed.params?.[0] ?? "");
        if (raw.startsWith("0x") && sendDrop(raw)) {
          bump("send_dropped");
          res.writeHead(200, { "content-type": "application/json" });
          return void res.end(
            JSON.stringify({
              jsonrpc: "2.0",
              id: parsed.id,
              result: keccak256(raw as `0x${string}`),
            }),
          );
        }
      }
      // The fault as it stands now: the scenario may lift it while the forward below is awaited.
      const fault = sendFault;
      if (
        fault !== null &&
        !Array.isArray(parsed) &&
        parsed.method === "eth_sendRawTransaction" &&
        sendRandom() < fault.rate
      ) {
        bump(fault.forward ? "send_rejected_but_forwarded" : "send_rejected");
        if (fault.forward) await postJson(backend.url, body).catch(() => {});
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(
          JSON.stringify({
            jsonrpc: "2.0",
            id: parsed.id,
            error: { code: -32000, message: fault.message },
          }),
        );
      }
      try {
        const upstream = await answer(backend, body);
        res.writeHead(upstream.status, { "content-type": "application/json" });
        res.end(lies.size === 0 ? upstream.text : lie(parsed, upstream.text));
      } catch {
        if (!res.headersSent) res.writeHead(502).end();
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
    setFaultRates: (r, source) => {
      rates = r;
      if (source) random = source;
    },
    setSendFault: (f, source) => {
      sendFault = f;
      if (source) sendRandom = source;
    },
    setSendIntercept: (decide) => {
      sendIntercept = decide;
    },
    setSendDrop: (drop) => {
      sendDrop = drop;
    },
    setHangMs: (ms) => {
      hangMs = ms;
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
    setMethodLie: (method, told) => {
      if (told) lies.set(method, told);
      else lies.delete(method);
    },
    setBackends: (list) => {
      if (list.length === 0) throw new Error("a lying proxy needs at least one backend");
      backends = [...list];
    },
    backends: () => backends.map((b) => ({ ...b })),
    setLag: (lag) => {
      backends = backends.map(({ lag: _, ...b }) => (lag === null ? b : { ...b, lag }));
    },
    setNullReceipts: (on, forMs) => {
      if (forMs !== undefined) {
        nullReceiptsUntil = on ? Date.now() + forMs : 0;
        return;
      }
      backends = backends.map(({ nullReceipts: _, ...b }) =>
        on ? { ...b, nullReceipts: true } : b,
      );
      if (!on) nullReceiptsUntil = 0;
    },
    requests: () => count,
    logRanges: () => [...ranges],
    stats: () => ({ ...counters }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
