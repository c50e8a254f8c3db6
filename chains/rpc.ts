/**
 * JSON-RPC over HTTP with fallback across a chain's endpoints (in priority order), retry with
 * backoff, and single or batched calls. Transport failures (network, timeout, HTTP 429 and 5xx, a
 * body that is not JSON-RPC) move on to the next endpoint and put the failing one in a cool-down;
 * a JSON-RPC error from a healthy node is the node's answer and goes back to the caller unchanged,
 * except on reads of chain data (`refusalMovesOn`): a node's refusal there is not evidence of
 * anything, so the next endpoint is asked, and the refusing one is asked after the others for that
 * kind of read only (its method, and tag), with the same growing cool-down, until it answers one.
 *
 * Each endpoint's head is tracked (every eth_blockNumber or `latest` block it returns). A call that
 * reads block N (`atLeast`) is sent only to endpoints known to be at N or past it (an endpoint whose
 * head is unknown or behind is asked eth_blockNumber first, at most once a second unless the best
 * head rose since its head was read); an answer that
 * shows the block missing (`lacks`) lowers that endpoint's head and moves the call on. A lagging or
 * syncing node is never asked for what it lacks, so its missing data never looks like a reorg; with
 * no endpoint at N the call fails with NoHealthyEndpointError and the caller waits. A read that
 * prefers the best head (`preferBestHead`) is asked first of endpoints at it (their heads shown
 * by eth_blockNumber, never taken from an answer: the blocks asked are below it), and only when
 * none is there of those at N (a node stuck on a losing fork is "at N" for every N up to its head).
 * A process that starts reading asks every endpoint its head once (`askEveryHead`), so the best
 * head is known before its first read, not only from the endpoint it happened to ask first.
 * The highest head shown (`bestHead`) is kept until reached, except one the endpoints pass
 * BEST_HEAD_UNREACHED_BLOCKS blocks of their own below without reaching (a head from nowhere).
 * An answer the caller shows is of another chain (`otherChain`: a block it holds as final, another
 * block there) sets its endpoint aside a while (OTHER_CHAIN_ASIDE_MS): not asked, its head not
 * counted; the best head it showed is dropped. So does an endpoint whose `eth_chainId` is not ours
 * (a URL of a testnet or of another chain in the list: its blocks would be ingested as ours, a
 * deposit on a testnet credited as real money): each endpoint is asked its chain id before its
 * first use, and again after a set-aside; one that cannot tell is not used until it does. Once the
 * caller holds a final block (`holdFinal`: the indexer's published finalized block), each endpoint
 * is also asked its block there before its first use or head (again when that block moved, at most
 * every FINAL_RECHECK_MS): another block there, while another endpoint shows ours, is another
 * network with our chain id (set aside as above, before its head could be followed); a node that
 * does not have the block is behind, no evidence either way (asked again a second later), and so
 * is one that shows another block where no endpoint shows ours (the chain may have reorged below
 * our final block: the indexer's halt and the operator's `chains resume` judge that).
 *
 * What viem does here: the wire. Each endpoint has viem's HTTP JSON-RPC client (`getHttpRpcClient`,
 * the one under viem's `http()` transport): the JSON-RPC envelope of a single call or an explicit
 * batch, the timeout (also over the body read), the shutdown signal, and the classified failures
 * (TimeoutError; HttpRequestError with the status and headers, or with the fetch/parse cause;
 * RpcRequestError for a JSON-RPC error body on a non-2xx status). We map those onto our failure
 * kinds (metrics `kind`, the cool-down, Retry-After).
 *
 * What we keep, and why. viem's `fallback()` tries its transports in order on every call (or ranks
 * them by periodic pings, extra calls we would count and pay for); it has no per-endpoint cool-down,
 * knows nothing of block heights, and falls back call by call, not batch by batch. Endpoint
 * selection is ours because of the head-aware routing above (DESIGN: missing data is never
 * evidence), with the cool-down and retry rounds that go with it. `http()`'s own batching gathers
 * whatever calls meet in one tick; ours sends the caller's batch to one endpoint (split in requests
 * of at most `maxBatchSize`; the `lacks` check and the fallback apply to the whole batch), and it
 * learns which endpoint refuses batches and sends it the batch's calls as single requests from then
 * on. Either way a batch's answers are one node's: callers compare them with each other. Also ours: rate limits sent as a JSON-RPC error with HTTP 200, the
 * call count and the metrics, our error classes and codes.
 *
 * Measured (session 8, 2 shared cores, others' tests running): `npm run bench -- indexer`
 * backfill, alternated, always written hand-written wire / viem's, at load 6-10: 20.0 / 22.9 s
 * (hand-written run first), 24.1 / 20.7 s (viem's first); means 22.1 / 21.8 s ("floor fetch", the
 * same reads without the indexer: 11.5 / 11.4 s, 14.7 / 12.3 s). At load 15-31 runs spread from
 * 57 to 111 s either way. The wire alone,
 * both clients in one process on one loopback server, interleaved (10 rounds, load 30): a 24 MB
 * eth_getLogs answer (40,000 logs) median 3,467 / 3,478 ms (+0.3%); 20 batches of 100 plus 200
 * single calls 1,378 / 1,161 ms. viem's body cap is off (`maxResponseBodySize: false`), so the
 * body is read whole by `response.text()`, as before.
 */
import { HttpRequestError, RpcRequestError, TimeoutError } from "viem";
import { getHttpRpcClient, type HttpRpcClient } from "viem/utils";
import { backoffMs } from "../foundation/backoff.js";
import type { Logger } from "../foundation/logger.js";
import { NoHealthyEndpointError, RpcResponseError, RpcUnavailableError } from "./errors.js";
import type { RpcMetrics } from "./metrics.js";

export type RpcCall = { method: string; params: unknown[] };

/** Where an endpoint's chain ends, as far as we know. */
export type EndpointHead = { endpoint: string; head: bigint | null; observedAt: number };

export type ReadOptions = {
  /** Highest block the call reads: only endpoints at or past it are asked. */
  atLeast?: bigint;
  /**
   * Asked first only of endpoints at or past the best head seen (`bestHead`, when it is above
   * `atLeast`); when none is there now (NoHealthyEndpointError), as `atLeast` says. A node stuck on
   * a losing fork (its head stopped, it keeps answering the orphaned blocks) is at or past every
   * height up to its head: asked first, it answers those heights with its fork's blocks for as long
   * as it stays stuck. A node at the best head is on the chain that moved on. No node there (a
   * head from nowhere, dropped in time, see BEST_HEAD_UNREACHED_BLOCKS): any node as before.
   */
  preferBestHead?: boolean;
  /**
   * Given the answer (the results of a batch, in call order), the lowest block it shows missing
   * (a null block, header or receipts), or null when the answer is whole. `atLeast`: the height
   * the endpoint was asked at (the best head when `preferBestHead` raised it).
   */
  lacks?: (results: unknown[], calls: RpcCall[], atLeast: bigint | undefined) => bigint | null;
  /**
   * A JSON-RPC error from an endpoint is not the answer (reads of chain data: a node's refusal says
   * nothing about the chain): the next endpoint at the block is asked, and for a cool-down that
   * endpoint is asked after the others for reads of the refused kind (readKind). When every
   * endpoint refuses, the first refusal (in the order asked) goes back to the caller.
   */
  refusalMovesOn?: boolean;
  /**
   * Given an answer the block checks took (`lacks`), the field a result the caller needs lacks (a
   * receipt without the field its fee is read from: a node or proxy that drops fields it does not
   * know), or null. Such an answer is that node's gap, not the chain's: the next endpoint at the
   * block is asked, and this one after the others for this kind of read a while (as a refusal).
   * When no endpoint answers whole, the first such answer goes back to the caller, whose own check
   * decides (its fields are missing data, never a value).
   */
  incomplete?: (results: unknown[], calls: RpcCall[]) => string | null;
  /**
   * Given the answer, why it is of another chain than the caller's (e.g. a block the caller holds
   * as final, answered with another hash: a node of another network with the same chain id), or
   * null. Such an endpoint is set aside for OTHER_CHAIN_ASIDE_MS (not asked, its heads not
   * counted, the best head it showed dropped), counted and logged; the next endpoint is asked.
   * A missing block is not another chain (`lacks`, or the caller's own check).
   */
  otherChain?: (results: unknown[], calls: RpcCall[]) => string | null;
};

export type RpcClient = {
  /** One call; falls back across endpoints on transport failures (and lagging ones, see ReadOptions). */
  request: <T = unknown>(method: string, params?: unknown[], read?: ReadOptions) => Promise<T>;
  /**
   * Several calls in JSON-RPC batches of at most `maxBatchSize`, all to one endpoint (its answers
   * are one node's); results in call order.
   */
  batch: <T = unknown>(calls: RpcCall[], read?: ReadOptions) => Promise<T[]>;
  /** JSON-RPC calls sent so far (a batch counts each call), for benchmarks and metrics. */
  callCount: () => number;
  /** Each endpoint's last known head. */
  heads: () => EndpointHead[];
  /**
   * The highest head any endpoint has shown (null before any), unless dropped as never reached
   * (BEST_HEAD_UNREACHED_BLOCKS): then the highest head shown since.
   */
  bestHead: () => bigint | null;
  /**
   * Asks every endpoint (not set aside, nor cooling down) its head, one eth_blockNumber each, at
   * once; returns the best head then (`bestHead`). For a process that starts reading: until then
   * the best head is only what the endpoints it happened to ask showed, and a first endpoint stuck
   * on a losing fork above the blocks asked answers everything (preferBestHead included) from its
   * fork. An endpoint that fails, refuses or cannot tell is skipped (a failure cools it down as
   * any); a head from nowhere is dropped in time as any (BEST_HEAD_UNREACHED_BLOCKS).
   */
  askEveryHead: () => Promise<bigint | null>;
  /**
   * Our final block (number, lowercase hash), or null while there is none: each endpoint is asked
   * it before it is asked anything else or its head counted; one showing another block there while
   * another endpoint shows ours is set aside (as otherChain). A node of ours does not show another
   * block at a final height while another shows ours; when no endpoint shows ours, the chain may
   * have reorged below it (the halt's to judge): nothing is set aside.
   */
  holdFinal: (block: { number: bigint; hash: string } | null) => void;
  endpoints: readonly string[];
};

export type RpcClientOptions = {
  chainId: number;
  urls: readonly string[];
  timeoutMs?: number;
  /** Full passes over every endpoint before giving up. */
  rounds?: number;
  maxBatchSize?: number;
  /** Longest cool-down of a failing endpoint (it doubles from 250 ms with each failure; default 30 s). */
  maxCoolDownMs?: number;
  /**
   * How long an endpoint's head behind is believed before a read that needs more asks it again
   * (default HEAD_PROBE_INTERVAL_MS, 1 s). Tests that count an endpoint's calls set it longer, so a
   * slow machine's pause between two reads does not make a lagging endpoint worth asking again.
   */
  headProbeIntervalMs?: number;
  metrics?: RpcMetrics;
  logger?: Logger;
  signal?: AbortSignal;
  /**
   * The client's clock (ms since epoch; default Date.now): when heads were read, endpoints cool
   * down, are set aside or refused. Tests give one that ticks on every reading (a loaded machine).
   */
  clock?: () => number;
};

type Endpoint = {
  url: string;
  label: string;
  wire: HttpRpcClient;
  failures: number;
  coolUntil: number;
  head: bigint | null;
  headAt: number;
  /** Its first head below the best head seen since that head was shown or last reached. */
  belowBest: bigint | null;
  /** Its last head from eth_blockNumber or a `latest` block (`head` may be lowered by a `lacks`). */
  shown: bigint | null;
  /** Set aside until then: an answer of it was of another chain (ReadOptions.otherChain). */
  asideUntil: number;
  /** Its `eth_chainId` was ours (since it was last set aside); in flight: `checking`. */
  chainChecked: boolean;
  checking: Promise<void> | null;
  /**
   * Our final block it showed last (`number:hash`, holdFinal), and when; when it last did not show
   * it (it lacked it, or showed another block no other endpoint contradicted).
   */
  finalShown: { key: string; at: number } | null;
  finalUnknownAt: number;
  /** It answered a JSON-RPC batch with one error object: its batches go as single requests. */
  batchesRefused: boolean;
  /**
   * Kinds of chain-data read (readKind) it refused: asked after the others for them until `until`;
   * `times` in a row grows the cool-down. Its health is not in question (it answers other reads
   * first): only a call per read it would refuse again is saved.
   */
  refused: Map<string, { until: number; times: number }>;
};

/**
 * The best head seen (`bestHead`) holds the signer's nonce, stall and bump stages until a node is
 * at it, so a lagging node's count is never taken for the chain's. A lagging node moves with the
 * chain and reaches a head it trails within its lag; one that advances this many blocks of its own
 * below that head without reaching it (nor any other endpoint meanwhile) is taken as a sign the head
 * was never the chain's (a lying proxy, a node of another network with the same chain id, answering
 * once far ahead): the head is dropped, counted and logged. A node further behind than this while
 * every node at the head is gone is then believed (the bound on that safety).
 */
export const BEST_HEAD_UNREACHED_BLOCKS = 64;

/**
 * How long an endpoint whose answer was of another chain (ReadOptions.otherChain) is set aside.
 * Not for ever: a URL repointed at a node of ours (or a provider's backend fixed) comes back by
 * itself, and one still on the other network is caught again by the next such read (the signer's
 * snapshot asks its block at our final height in the same batch), counted again (the alert stays
 * up while it lasts).
 */
export const OTHER_CHAIN_ASIDE_MS = 5 * 60_000;

/**
 * An endpoint whose head is unknown or behind is asked eth_blockNumber at most this often (its
 * head behind is believed this long, unless the best head rose since it was read).
 */
const HEAD_PROBE_INTERVAL_MS = 1_000;

/**
 * An endpoint that showed our final block is asked the newer one (holdFinal) at most this often:
 * the final block moves with every batch, and one call more per block would double what following
 * the head costs. A node that showed a final block of ours is on our chain up to it; one that turns
 * to another network meanwhile (a URL repointed) shows blocks that do not link to ours above it
 * (a reorg to our final block at most, halting, never rolled back) until it is caught here.
 */
const FINAL_RECHECK_MS = 60_000;

/**
 * What a refusal is remembered by: the method, with the tag of a tag read (a node may refuse the
 * `finalized` block and serve `latest`, which the head poll asks for).
 */
function readKind(call: { method: string; params: unknown[] }): string {
  const first = call.params[0];
  return typeof first === "string" && !first.startsWith("0x")
    ? `${call.method}:${first}`
    : call.method;
}

/**
 * A read as sent: `atBestHead` when its `atLeast` was raised to the best head (preferBestHead).
 * Its blocks are below that height, so an endpoint is asked only when its head is known there:
 * a node stuck on a losing fork answers them whole (its fork's), nothing shows it missing.
 */
type SentRead = ReadOptions & { atBestHead?: true };

class EndpointBehind extends Error {
  readonly lacking: bigint;
  constructor(lacking: bigint) {
    super(`endpoint lacks block ${lacking}`);
    this.lacking = lacking;
  }
}

/** An answer the caller showed is of another chain (ReadOptions.otherChain). */
class OtherChainAnswer extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`answer of another chain: ${reason}`);
    this.reason = reason;
  }
}

/** A whole answer lacking a field the caller needs (ReadOptions.incomplete): kept, in case no endpoint has better. */
class IncompleteAnswer extends Error {
  readonly value: unknown;
  readonly field: string;
  constructor(value: unknown, field: string) {
    super(`answer lacks ${field}`);
    this.value = value;
    this.field = field;
  }
}

type TransportFailureKind =
  | "timeout"
  | "rate_limited"
  | "http_5xx"
  | "http_other"
  | "network"
  | "bad_body";

class TransportFailure extends Error {
  readonly kind: TransportFailureKind;
  readonly retryAfterMs: number | undefined;
  constructor(kind: TransportFailureKind, message: string, retryAfterMs?: number) {
    super(message);
    this.kind = kind;
    this.retryAfterMs = retryAfterMs;
  }
}

type JsonRpcRequest = { jsonrpc: "2.0"; id: number; method: string; params: unknown[] };

type JsonRpcResponse = {
  id: number;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
};

// Rate limits some providers send as a JSON-RPC error with HTTP 200.
const RATE_LIMIT_MESSAGE = /rate limit|too many requests|exceeded.*(capacity|quota)/i;

/** viem's HTTP failure as one of our kinds (the metrics' `kind`, the cool-down's Retry-After). */
function transportFailure(error: unknown, timeoutMs: number): TransportFailure {
  if (error instanceof TimeoutError)
    return new TransportFailure("timeout", `timed out after ${timeoutMs} ms`);
  if (
    (error instanceof HttpRequestError || error instanceof RpcRequestError) &&
    error.status !== undefined
  ) {
    const { status } = error;
    if (status === 429) {
      const retryAfter = Number(error.headers?.get("retry-after"));
      return new TransportFailure(
        "rate_limited",
        "HTTP 429",
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
      );
    }
    if (status >= 500) return new TransportFailure("http_5xx", `HTTP ${status}`);
    return new TransportFailure("http_other", `HTTP ${status}: ${error.details.slice(0, 200)}`);
  }
  // No status: fetch failed (a TypeError: refused, reset, dropped mid-body) or the body of a 2xx
  // was not JSON-RPC (a SyntaxError, or too few answers to a batch).
  const cause = error instanceof HttpRequestError ? error.cause : error;
  if (cause instanceof TypeError || !(cause instanceof Error))
    return new TransportFailure("network", cause instanceof Error ? cause.message : String(cause));
  return new TransportFailure("bad_body", `not JSON-RPC: ${cause.message.slice(0, 200)}`);
}

/**
 * The best head of all endpoints, for a read that starts from the chain's head (a one-off check, a
 * command): every endpoint asked (RpcClient.askEveryHead), not only the first, whose head may
 * trail the others' (a node behind answers a nonce used since as unused, a token deployed since as
 * no contract). None answering: asked as any call (fallback and retries; unavailable throws).
 */
export async function headOfAll(rpc: Pick<RpcClient, "askEveryHead" | "request">): Promise<bigint> {
  return (await rpc.askEveryHead()) ?? BigInt(await rpc.request<string>("eth_blockNumber"));
}

/** The endpoint label used in metrics and logs: scheme, host and port (paths often carry API keys). */
export function endpointLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "invalid-url";
  }
}

export function createRpcClient(options: RpcClientOptions): RpcClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const rounds = options.rounds ?? 4;
  const maxBatchSize = options.maxBatchSize ?? 100;
  const maxCoolDownMs = options.maxCoolDownMs ?? 30_000;
  const headProbeIntervalMs = options.headProbeIntervalMs ?? HEAD_PROBE_INTERVAL_MS;
  const clock = options.clock ?? Date.now;
  const chainLabel = String(options.chainId);
  const endpoints: Endpoint[] = options.urls.map((url) => ({
    url,
    label: endpointLabel(url),
    wire: getHttpRpcClient(url, {
      timeout: timeoutMs,
      // Whole ranges of logs and traces run to tens of megabytes: no cap (viem's default is 10 MB).
      maxResponseBodySize: false,
      ...(options.signal ? { fetchOptions: { signal: options.signal } } : {}),
    }),
    failures: 0,
    coolUntil: 0,
    head: null,
    headAt: 0,
    belowBest: null,
    shown: null,
    asideUntil: 0,
    chainChecked: false,
    checking: null,
    finalShown: null,
    finalUnknownAt: 0,
    batchesRefused: false,
    refused: new Map(),
  }));
  let nextId = 1;
  let calls = 0;
  let best: bigint | null = null;
  /** The endpoint that showed `best` (its label). */
  let bestFrom = "";
  /** When `best` last rose (ms since epoch). */
  let bestRaisedAt = 0;
  /** Our final block (holdFinal): every endpoint must show it. */
  let final: { number: bigint; hash: string; key: string } | null = null;

  function observeHead(endpoint: Endpoint, head: bigint, authoritative = true): void {
    // A `lacks` answer only lowers a head; an eth_blockNumber/latest answer sets it.
    if (!authoritative && endpoint.head !== null && endpoint.head <= head) return;
    endpoint.head = head;
    endpoint.headAt = clock();
    options.metrics?.endpointHead.set(
      { chain_id: chainLabel, endpoint: endpoint.label },
      Number(head),
    );
    if (!authoritative) return;
    endpoint.shown = head;
    // An answer in flight when its endpoint was set aside: its head is not the best head's.
    if (endpoint.asideUntil <= clock()) weighBest(endpoint, head, endpoint.headAt);
  }

  /**
   * An answer of the endpoint was of another chain: it is not asked for OTHER_CHAIN_ASIDE_MS and
   * its heads are not counted. A best head it showed was never our chain's: the best head is the
   * highest one the other endpoints last showed (none: unknown until one answers).
   */
  function setAside(endpoint: Endpoint, reason: string): void {
    endpoint.asideUntil = clock() + OTHER_CHAIN_ASIDE_MS;
    // Back from the set-aside, it is asked its chain id again before anything else.
    endpoint.chainChecked = false;
    endpoint.finalShown = null;
    endpoint.head = null;
    endpoint.shown = null;
    endpoint.belowBest = null;
    const dropped = bestFrom === endpoint.label ? best : null;
    if (dropped !== null) {
      best = null;
      bestFrom = "";
      for (const e of endpoints) {
        e.belowBest = null;
        if (e.asideUntil > clock() || e.shown === null) continue;
        if (best === null || e.shown > best) {
          best = e.shown;
          bestFrom = e.label;
        }
      }
    }
    options.metrics?.otherChain.inc({ chain_id: chainLabel, endpoint: endpoint.label });
    options.logger?.warn({
      msg: "rpc endpoint answered for another chain: set aside (not asked, its head not counted)",
      chain_id: options.chainId,
      endpoint: endpoint.label,
      reason,
      dropped_best_head: dropped === null ? null : String(dropped),
      best: best === null ? null : String(best),
      aside_ms: OTHER_CHAIN_ASIDE_MS,
    });
  }

  /**
   * The best head seen, given an endpoint's head read at `at`: raised, reached, or dropped as never
   * reached. A raise is dated by the read that showed it, so that endpoint's head is not older than
   * the best head it raised (`reaches` would ask it again for blocks it was just seen to lack, when
   * the clock ticked between two readings of it).
   */
  function weighBest(endpoint: Endpoint, head: bigint, at: number): void {
    if (best === null || head >= best) {
      if (best === null || head > best) {
        bestFrom = endpoint.label;
        bestRaisedAt = at;
      }
      best = head;
      for (const e of endpoints) e.belowBest = null;
      return;
    }
    endpoint.belowBest ??= head;
    if (head - endpoint.belowBest < BigInt(BEST_HEAD_UNREACHED_BLOCKS)) return;
    const dropped = { head: best, from: bestFrom };
    const advanced = `${endpoint.label}: ${endpoint.belowBest} to ${head}`;
    best = head;
    bestFrom = endpoint.label;
    for (const e of endpoints) {
      e.belowBest = null;
      // An endpoint whose last answer was the dropped head is asked its head again before a read.
      if (e.head !== null && e.head >= dropped.head) e.head = null;
      else if (e.head !== null && e.head > best) {
        best = e.head;
        bestFrom = e.label;
      }
    }
    options.metrics?.bestHeadDropped.inc({ chain_id: chainLabel, endpoint: dropped.from });
    options.logger?.warn({
      msg: "best head seen never reached: dropped (the signer's nonce, stall and bump stages waited for it)",
      chain_id: options.chainId,
      dropped: String(dropped.head),
      shown_by: dropped.from,
      best: String(best),
      advanced,
      blocks: BEST_HEAD_UNREACHED_BLOCKS,
    });
  }

  /**
   * Does an endpoint other than `except` (not set aside) show our final block? Those that have not
   * shown it yet are asked it (at once); one that fails or lacks it is no answer.
   */
  async function finalShownElsewhere(
    except: Endpoint,
    ours: { number: bigint; hash: string; key: string },
  ): Promise<boolean> {
    const now = clock();
    const others = endpoints.filter((e) => e !== except && e.asideUntil <= now);
    if (others.some((e) => e.finalShown?.key === ours.key)) return true;
    const shown = await Promise.all(
      others.map(async (e) => {
        const json = await ask(e, "eth_getBlockByNumber", [
          `0x${ours.number.toString(16)}`,
          false,
        ]).catch(() => null);
        const hash = (json?.result as { hash?: unknown } | null | undefined)?.hash;
        if (typeof hash !== "string" || hash.toLowerCase() !== ours.hash) return false;
        e.finalShown = { key: ours.key, at: clock() };
        return true;
      }),
    );
    return shown.includes(true);
  }

  /** Is our final block (holdFinal) one the endpoint has yet to be asked? */
  function finalUnasked(endpoint: Endpoint): boolean {
    if (final === null || endpoint.finalShown?.key === final.key) return false;
    const now = clock();
    if (now - endpoint.finalUnknownAt < headProbeIntervalMs) return false;
    return endpoint.finalShown === null || now - endpoint.finalShown.at >= FINAL_RECHECK_MS;
  }

  /**
   * Is the endpoint on our chain? By its own word first: asked once (and again after a set-aside),
   * its `eth_chainId` not ours is another chain (OtherChainAnswer); no answer, or a refusal, is a
   * transport failure (the endpoint cools down and is asked again later), never a yes. Then by our
   * final block (holdFinal), when there is one it has yet to be asked: another block there is
   * another chain; no block (or a refusal) is a node that does not have it yet, used as one behind.
   */
  async function checkChain(endpoint: Endpoint): Promise<void> {
    if (endpoint.chainChecked && !finalUnasked(endpoint)) return;
    endpoint.checking ??= (async () => {
      if (!endpoint.chainChecked) {
        const json = await ask(endpoint, "eth_chainId", []);
        if (json.error) {
          const { message } = json.error;
          throw RATE_LIMIT_MESSAGE.test(message)
            ? new TransportFailure("rate_limited", message)
            : new TransportFailure("bad_body", `eth_chainId refused: ${message.slice(0, 200)}`);
        }
        const answer = json.result;
        if (typeof answer !== "string" || !/^0x[0-9a-fA-F]+$/.test(answer))
          throw new TransportFailure("bad_body", `eth_chainId answered ${String(answer)}`);
        const id = BigInt(answer);
        if (id !== BigInt(options.chainId))
          throw new OtherChainAnswer(`eth_chainId is ${id}, ours is ${options.chainId}`);
        endpoint.chainChecked = true;
      }
      const ours = final;
      if (ours === null || !finalUnasked(endpoint)) return;
      const json = await ask(endpoint, "eth_getBlockByNumber", [
        `0x${ours.number.toString(16)}`,
        false,
      ]);
      // A refusal tells nothing of the chain: as a node without the block.
      const block =
        json.error && !RATE_LIMIT_MESSAGE.test(json.error.message)
          ? null
          : unwrap("eth_getBlockByNumber", json, endpoint.label);
      const hash = (block as { hash?: unknown } | null)?.hash;
      if (typeof hash === "string" && hash.toLowerCase() === ours.hash) {
        endpoint.finalShown = { key: ours.key, at: clock() };
        return;
      }
      // Another block there is another network only while a node of ours shows our block: when
      // none does, the chain itself may have reorged below our final block, which is the halt's
      // and the operator's to judge (the node is used as before, and asked again a second later).
      if (typeof hash === "string" && (await finalShownElsewhere(endpoint, ours)))
        throw new OtherChainAnswer(
          `block ${ours.number} is ${hash}, our final block there is ${ours.hash} (as another endpoint shows)`,
        );
      endpoint.finalUnknownAt = clock();
    })().finally(() => {
      endpoint.checking = null;
    });
    return endpoint.checking;
  }

  /** One call of our own to the endpoint (its chain checks, its head): the response, whole. */
  async function ask(
    endpoint: Endpoint,
    method: string,
    params: unknown[],
  ): Promise<JsonRpcResponse> {
    const json = await post(endpoint, { jsonrpc: "2.0", id: nextId++, method, params }, [method]);
    if (!isResponse(json)) throw new TransportFailure("bad_body", "not a JSON-RPC response");
    return json;
  }

  /**
   * May the endpoint be asked for blocks up to `atLeast`? Yes when its head is there. When its head
   * is unknown or was behind a while ago: a read whose answer shows a missing block (`checked`)
   * just tries; any other read (eth_getLogs answers a range it lacks with no logs) asks
   * eth_blockNumber first. A head behind is believed for headProbeIntervalMs, unless the best
   * head rose since it was read (the chain moved: so did a node that was only a block behind).
   */
  async function reaches(endpoint: Endpoint, atLeast: bigint, checked: boolean): Promise<boolean> {
    if (endpoint.head !== null && endpoint.head >= atLeast) return true;
    if (
      endpoint.head !== null &&
      clock() - endpoint.headAt < headProbeIntervalMs &&
      endpoint.headAt >= bestRaisedAt
    )
      return false;
    if (checked) return true;
    const json = await ask(endpoint, "eth_blockNumber", []);
    const head = BigInt(unwrap("eth_blockNumber", json, endpoint.label) as string);
    observeHead(endpoint, head);
    return head >= atLeast;
  }

  async function askEveryHead(): Promise<bigint | null> {
    const now = clock();
    const asked = endpoints.filter((e) => e.asideUntil <= now && e.coolUntil <= now);
    await Promise.all(
      asked.map(async (endpoint) => {
        try {
          await checkChain(endpoint);
          const json = await ask(endpoint, "eth_blockNumber", []);
          const head = unwrap("eth_blockNumber", json, endpoint.label);
          if (typeof head !== "string" || !/^0x[0-9a-fA-F]+$/.test(head))
            throw new TransportFailure("bad_body", `eth_blockNumber answered ${String(head)}`);
          observeHead(endpoint, BigInt(head));
        } catch (error) {
          if (options.signal?.aborted) throw error;
          if (error instanceof OtherChainAnswer) {
            if (endpoint.asideUntil <= clock()) setAside(endpoint, error.reason);
          } else if (error instanceof TransportFailure) markFailed(endpoint, error);
          else if (!(error instanceof RpcResponseError)) throw error;
        }
      }),
    );
    return best;
  }

  /** Until when the endpoint is asked after the others for a read of these kinds (0: not). */
  function refusedUntil(endpoint: Endpoint, kinds: string[]): number {
    let until = 0;
    if (endpoint.refused.size === 0) return until;
    for (const kind of kinds) until = Math.max(until, endpoint.refused.get(kind)?.until ?? 0);
    return until;
  }

  // Healthy endpoints in priority order first (those that refused this kind of read lately after
  // the others), then cooling ones (soonest back first): we never refuse to try when everything is
  // cooling down or refusing. Endpoints set aside (another chain) are not asked at all.
  function order(kinds: string[]): Endpoint[] {
    const now = clock();
    const ours = endpoints.filter((e) => e.asideUntil <= now);
    const healthy = ours.filter((e) => e.coolUntil <= now);
    const answering = healthy.filter((e) => refusedUntil(e, kinds) <= now);
    const refusing = healthy
      .filter((e) => refusedUntil(e, kinds) > now)
      .sort((a, b) => refusedUntil(a, kinds) - refusedUntil(b, kinds));
    const cooling = ours.filter((e) => e.coolUntil > now).sort((a, b) => a.coolUntil - b.coolUntil);
    return [...answering, ...refusing, ...cooling];
  }

  /** The endpoint refused a read of these kinds: ask it after the others for them a while. */
  function markRefused(endpoint: Endpoint, kinds: string[]): void {
    for (const kind of kinds) {
      const times = (endpoint.refused.get(kind)?.times ?? 0) + 1;
      const wait = backoffMs(times - 1, { baseMs: 250, maxMs: 30_000, maxDoublings: 7 });
      endpoint.refused.set(kind, { until: clock() + wait, times });
    }
  }

  async function post(
    endpoint: Endpoint,
    body: JsonRpcRequest | JsonRpcRequest[],
    methods: string[],
  ): Promise<unknown> {
    for (const method of methods)
      options.metrics?.requests.inc({ chain_id: chainLabel, endpoint: endpoint.label, method });
    calls += methods.length;
    // The round trip: until the response's headers arrive (or the request fails).
    let stopTimer = options.metrics?.latency.startTimer({
      chain_id: chainLabel,
      endpoint: endpoint.label,
    });
    const stop = () => {
      stopTimer?.();
      stopTimer = undefined;
    };
    try {
      return await endpoint.wire.request({ body, onResponse: stop });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw transportFailure(error, timeoutMs);
    } finally {
      stop();
    }
  }

  /**
   * A batch to one endpoint: JSON-RPC batches of at most `maxBatchSize`, or single requests where
   * the endpoint refuses batches; all of it to this endpoint, so a batch's answers are one node's
   * (callers compare them with each other, e.g. block hashes on the finalized tag's chain). The
   * answers, in request order, or the body that was not an array (`validate` refuses it).
   */
  async function exchange(endpoint: Endpoint, body: JsonRpcRequest[]): Promise<unknown> {
    const parts: JsonRpcRequest[][] = [];
    for (let i = 0; i < body.length; i += maxBatchSize) parts.push(body.slice(i, i + maxBatchSize));
    const answers = await Promise.all(parts.map((part) => exchangePart(endpoint, part)));
    const wrong = answers.find((a) => !Array.isArray(a));
    return wrong ?? (answers as unknown[][]).flat();
  }

  async function exchangePart(endpoint: Endpoint, part: JsonRpcRequest[]): Promise<unknown> {
    if (part.length === 1 || endpoint.batchesRefused)
      return Promise.all(part.map((r) => post(endpoint, r, [r.method])));
    const json = await post(
      endpoint,
      part,
      part.map((r) => r.method),
    );
    // A provider that refuses batches answers with one error object; viem hands that same object
    // back once per call.
    if (
      Array.isArray(json) &&
      json.length > 1 &&
      json.every((r) => r === json[0]) &&
      typeof json[0] === "object" &&
      json[0] !== null &&
      "error" in json[0]
    ) {
      const message = String((json[0] as JsonRpcResponse).error?.message ?? "");
      if (RATE_LIMIT_MESSAGE.test(message)) throw new TransportFailure("rate_limited", message);
      endpoint.batchesRefused = true;
      options.logger?.info({
        msg: "rpc batches refused, sending single requests",
        chain_id: options.chainId,
        endpoint: endpoint.label,
      });
      return exchangePart(endpoint, part);
    }
    return json;
  }

  function markFailed(endpoint: Endpoint, failure: TransportFailure): void {
    endpoint.failures++;
    const backoff = backoffMs(endpoint.failures - 1, {
      baseMs: 250,
      maxMs: maxCoolDownMs,
      maxDoublings: 7,
    });
    endpoint.coolUntil = clock() + Math.max(backoff, failure.retryAfterMs ?? 0);
    options.metrics?.errors.inc({
      chain_id: chainLabel,
      endpoint: endpoint.label,
      kind: failure.kind,
    });
    options.logger?.warn({
      msg: "rpc endpoint failed, falling back",
      chain_id: options.chainId,
      endpoint: endpoint.label,
      kind: failure.kind,
      error: failure.message,
      failures: endpoint.failures,
    });
  }

  /** Send one payload with fallback; `validate` turns a well-formed body into the result. */
  async function send<T>(
    body: JsonRpcRequest | JsonRpcRequest[],
    methods: string[],
    validate: (json: unknown, endpoint: Endpoint) => T,
    read: SentRead = {},
  ): Promise<T> {
    const { atLeast } = read;
    // A read raised to the best head asks for blocks below it: a node's answer shows no block
    // missing there, only its head shows it is not at the best head.
    const checked = !!read.lacks && !read.atBestHead;
    // Only reads whose refusals (or incomplete answers) move on are reordered by them.
    const kinds =
      read.refusalMovesOn || read.incomplete
        ? [...new Set((Array.isArray(body) ? body : [body]).map(readKind))]
        : [];
    let lastFailure: unknown;
    let refused: RpcResponseError | undefined;
    let incomplete: IncompleteAnswer | undefined;
    let behind = 0;
    for (let round = 0; round < rounds; round++) {
      behind = 0;
      let aside = 0;
      let failed = 0;
      let refusals = 0;
      let partial = 0;
      const asked = order(kinds);
      // Every endpoint set aside (another chain): none of ours to ask.
      if (asked.length === 0) break;
      for (const endpoint of asked) {
        try {
          await checkChain(endpoint);
          if (atLeast !== undefined && !(await reaches(endpoint, atLeast, checked))) {
            behind++;
            continue;
          }
          const json = Array.isArray(body)
            ? await exchange(endpoint, body)
            : await post(endpoint, body, methods);
          const result = validate(json, endpoint);
          endpoint.failures = 0;
          endpoint.coolUntil = 0;
          if (endpoint.refused.size > 0) for (const kind of kinds) endpoint.refused.delete(kind);
          return result;
        } catch (error) {
          if (error instanceof EndpointBehind) {
            // The node answered, without the block: it is behind (or syncing), not broken.
            observeHead(endpoint, error.lacking - 1n, false);
            options.metrics?.behind.inc({ chain_id: chainLabel, endpoint: endpoint.label });
            behind++;
            continue;
          }
          if (error instanceof OtherChainAnswer) {
            // Not our chain's answer, whatever it says: another endpoint is asked. (Reads that
            // shared one chain id check are told its answer together: set aside once.)
            if (endpoint.asideUntil <= clock()) setAside(endpoint, error.reason);
            aside++;
            continue;
          }
          if (error instanceof IncompleteAnswer) {
            // An answer, without a field the caller needs: another node may have it whole.
            incomplete ??= error;
            partial++;
            markRefused(endpoint, kinds);
            options.metrics?.incomplete.inc({
              chain_id: chainLabel,
              endpoint: endpoint.label,
              field: error.field,
            });
            continue;
          }
          if (read.refusalMovesOn && error instanceof RpcResponseError) {
            // A healthy node that would not answer this read: the next one is asked, and this one
            // after the others for reads of the refused method a while (no endpoint cool-down).
            refused ??= error;
            refusals++;
            markRefused(
              endpoint,
              kinds.filter((k) => k.split(":")[0] === error.meta.method),
            );
            continue;
          }
          if (!(error instanceof TransportFailure)) throw error;
          failed++;
          lastFailure = error;
          markFailed(endpoint, error);
        }
      }
      // Every endpoint answered, none has the block yet (or would give it): the caller decides.
      if (behind + refusals + partial + aside > 0 && failed === 0) break;
      if (round < rounds - 1) {
        const delay = backoffMs(round, { baseMs: 200, maxMs: 5_000, jitter: "equal" });
        await new Promise((r) => setTimeout(r, delay));
        if (options.signal?.aborted) throw options.signal.reason;
      }
    }
    if (incomplete) return incomplete.value as T;
    if (refused) throw refused;
    if (atLeast !== undefined && behind > 0)
      throw new NoHealthyEndpointError(
        methods[0] ?? "batch",
        options.chainId,
        atLeast,
        endpoints.map((e) => `${e.label}: ${e.head ?? "?"}`).join(", "),
        lastFailure,
      );
    throw new RpcUnavailableError(methods[0] ?? "batch", options.chainId, lastFailure);
  }

  function unwrap(method: string, response: JsonRpcResponse, endpoint?: string): unknown {
    if (response.error) {
      if (RATE_LIMIT_MESSAGE.test(response.error.message))
        throw new TransportFailure("rate_limited", response.error.message);
      options.metrics?.errors.inc({
        chain_id: chainLabel,
        endpoint: endpoint ?? "unknown",
        kind: "rpc_error",
      });
      throw new RpcResponseError(
        method,
        response.error.code,
        response.error.message,
        response.error.data,
      );
    }
    if (!("result" in response)) throw new TransportFailure("bad_body", "no result and no error");
    return response.result;
  }

  function isResponse(x: unknown): x is JsonRpcResponse {
    return typeof x === "object" && x !== null && "id" in x;
  }

  /** Heads seen in answers: eth_blockNumber, and the `latest` block. */
  function watchHead(endpoint: Endpoint, call: RpcCall, result: unknown): void {
    if (call.method === "eth_blockNumber" && typeof result === "string")
      observeHead(endpoint, BigInt(result));
    else if (
      call.method === "eth_getBlockByNumber" &&
      call.params[0] === "latest" &&
      result !== null &&
      typeof result === "object" &&
      "number" in result
    )
      observeHead(endpoint, BigInt((result as { number: string }).number));
  }

  /**
   * A read at the best head seen first, when the caller prefers it (ReadOptions.preferBestHead)
   * and it is above the read's own height; no endpoint there: the read as asked.
   */
  async function preferringBestHead<T>(
    read: ReadOptions,
    run: (read: SentRead) => Promise<T>,
  ): Promise<T> {
    const { preferBestHead, ...asked } = read;
    const at = best;
    if (preferBestHead && at !== null && (asked.atLeast === undefined || at > asked.atLeast)) {
      try {
        return await run({ ...asked, atLeast: at, atBestHead: true });
      } catch (error) {
        if (!(error instanceof NoHealthyEndpointError)) throw error;
      }
    }
    return run(asked);
  }

  async function request<T>(
    method: string,
    params: unknown[] = [],
    read: ReadOptions = {},
  ): Promise<T> {
    return preferringBestHead(read, (r) => requestAt<T>(method, params, r));
  }

  async function requestAt<T>(method: string, params: unknown[], read: SentRead): Promise<T> {
    const id = nextId++;
    const call = { method, params };
    return send(
      { jsonrpc: "2.0", id, method, params },
      [method],
      (json, endpoint) => {
        if (!isResponse(json)) throw new TransportFailure("bad_body", "not a JSON-RPC response");
        const result = unwrap(method, json, endpoint.label);
        watchHead(endpoint, call, result);
        const lacking = read.lacks?.([result], [call], read.atLeast) ?? null;
        if (lacking !== null) throw new EndpointBehind(lacking);
        const other = read.otherChain?.([result], [call]) ?? null;
        if (other !== null) throw new OtherChainAnswer(other);
        const field = read.incomplete?.([result], [call]) ?? null;
        if (field !== null) throw new IncompleteAnswer(result, field);
        return result as T;
      },
      read,
    );
  }

  async function batch<T>(list: RpcCall[], read: ReadOptions): Promise<T[]> {
    if (list.length === 0) return [];
    return preferringBestHead(read, (r) => batchAt<T>(list, r));
  }

  async function batchAt<T>(list: RpcCall[], read: SentRead): Promise<T[]> {
    if (list.length === 1) return [await requestAt<T>(list[0]!.method, list[0]!.params, read)];
    const first = nextId;
    nextId += list.length;
    const body = list.map((c, i) => ({
      jsonrpc: "2.0" as const,
      id: first + i,
      method: c.method,
      params: c.params,
    }));
    return send(
      body,
      list.map((c) => c.method),
      (json, endpoint) => {
        if (!Array.isArray(json) || json.length !== list.length || !json.every(isResponse))
          throw new TransportFailure("bad_body", "batch response does not match the request");
        const byId = new Map(json.map((r) => [r.id, r]));
        const results = list.map((c, i) => {
          const r = byId.get(first + i);
          if (!r) throw new TransportFailure("bad_body", "batch response is missing an id");
          const result = unwrap(c.method, r, endpoint.label);
          watchHead(endpoint, c, result);
          return result as T;
        });
        const lacking = read.lacks?.(results, list, read.atLeast) ?? null;
        if (lacking !== null) throw new EndpointBehind(lacking);
        const other = read.otherChain?.(results, list) ?? null;
        if (other !== null) throw new OtherChainAnswer(other);
        const field = read.incomplete?.(results, list) ?? null;
        if (field !== null) throw new IncompleteAnswer(results, field);
        return results;
      },
      read,
    );
  }

  return {
    request,
    batch: <T>(list: RpcCall[], read: ReadOptions = {}) => batch<T>(list, read),
    callCount: () => calls,
    heads: () => endpoints.map((e) => ({ endpoint: e.label, head: e.head, observedAt: e.headAt })),
    bestHead: () => best,
    askEveryHead,
    holdFinal(block) {
      const hash = block?.hash.toLowerCase();
      final =
        block === null
          ? null
          : { number: block.number, hash: hash!, key: `${block.number}:${hash}` };
    },
    endpoints: options.urls,
  };
}
