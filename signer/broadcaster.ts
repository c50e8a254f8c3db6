/**
 * The broadcaster for one (chain, hot wallet), run only while holding the wallet's lease:
 *
 * - intake: pending requests get the next nonces, are signed through KMS, and the signed bytes are
 *   stored with the nonce in one transaction BEFORE anything is sent. A crash before that commit
 *   leaves nothing (the signature is thrown away unsent); after it, the bytes are resent.
 * - send: only stored bytes are ever sent; node errors are classified (nodeErrors.ts), one
 *   response each.
 * - bump: an attempt not mined within the chain's bump interval is replaced at the same nonce
 *   with higher fees (fees.ts), never above the cap; the cap raises an alert instead.
 * - track: receipts to the confirmation rule; a reorg that drops a mined tx returns it to
 *   `broadcast` and its stored bytes are resent; final outcomes ring the tx-outcomes doorbell.
 */
import {
  createPublicClient,
  fallback,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  type TransactionReceipt,
  type TransactionSerializable,
} from "viem";
import type { Common } from "../ops/common.js";
import type { ChainConfig } from "../ops/config.js";
import type { Pool } from "../ops/db.js";
import { jobId, type QueueFactory } from "../ops/queues.js";
import { bumpFees, estimateFees, type Fees } from "./fees.js";
import type { KmsAccount } from "./kmsAccount.js";
import type { Lease } from "./lease.js";
import { signerMetrics } from "./metrics.js";
import { classifyNodeError, errorText, type NodeErrorClass } from "./nodeErrors.js";
import { TX_OUTCOMES_QUEUE, type TxOutcomeJob, type TxRequestStatus } from "./requests.js";
import { transferPosition } from "./transferPosition.js";

/** Deterministic crash points for kill -9 tests (`SIGNER_CRASH_AT=after_sign:17`). */
export type CrashPoint = "before_sign" | "after_sign" | "after_commit" | "after_send";
export type CrashAt = { point: CrashPoint; count: number };

export function parseCrashAt(value: string | undefined): CrashAt | undefined {
  if (!value) return undefined;
  const m = /^(before_sign|after_sign|after_commit|after_send):(\d+)$/.exec(value);
  if (!m) throw new Error(`SIGNER_CRASH_AT must look like after_sign:17, got ${value}`);
  return { point: m[1] as CrashPoint, count: Number(m[2]) };
}

export type SignerAccount = Pick<KmsAccount, "address" | "signTransaction">;

export type BroadcasterOptions = {
  common: Common;
  pool: Pool;
  queues: QueueFactory;
  chain: ChainConfig;
  account: SignerAccount;
  publicClient?: PublicClient;
  /** Requests taken per intake round. */
  batchSize?: number;
  /** Concurrent KMS Sign calls. */
  signConcurrency?: number;
  crashAt?: CrashAt | undefined;
};

type Attempt = {
  id: string;
  requestId: string;
  nonce: bigint;
  purpose: "send" | "cancel";
  txHash: Hex;
  raw: Hex;
  status: "signed" | "broadcast" | "mined" | "replaced" | "rejected";
  gasLimit: bigint;
  fees: Fees;
  sentAt: number | null;
  createdAt: number;
  lastErrorClass: NodeErrorClass | null;
};

type OpenRequest = {
  id: string;
  kind: string;
  refId: string;
  status: TxRequestStatus;
  nonce: bigint;
  to: Hex;
  value: bigint;
  data: Hex;
  txHash: Hex | null;
  blockNumber: bigint | null;
  blockHash: Hex | null;
  createdAt: number;
};

export type Broadcaster = {
  /** After taking the lease: nonce from Postgres raised to the chain's pending count; resend stored bytes. */
  resync: (lease: Lease) => Promise<void>;
  /** One round of intake, sending, bumping and tracking. Returns true if it did any intake. */
  tick: (lease: Lease) => Promise<{ signed: number }>;
  /** Ring doorbells owed for final requests (also done by tick). */
  ringOwedDoorbells: () => Promise<void>;
  nextNonce: () => bigint | undefined;
};

const ATTEMPT_COLUMNS = `id::text, request_id, nonce::text, purpose, tx_hash, raw_tx, status, gas_limit::text,
  max_fee_per_gas::text, max_priority_fee_per_gas::text, gas_price::text,
  extract(epoch from broadcast_at) * 1000 AS sent_at, extract(epoch from created_at) * 1000 AS created_at,
  last_error_class`;

function attemptFromRow(r: Record<string, string | null>): Attempt {
  return {
    id: r.id!,
    requestId: r.request_id!,
    nonce: BigInt(r.nonce!),
    purpose: r.purpose as Attempt["purpose"],
    txHash: r.tx_hash as Hex,
    raw: r.raw_tx as Hex,
    status: r.status as Attempt["status"],
    gasLimit: BigInt(r.gas_limit!),
    fees:
      r.gas_price !== null
        ? { type: "legacy", gasPrice: BigInt(r.gas_price!) }
        : {
            type: "eip1559",
            maxFeePerGas: BigInt(r.max_fee_per_gas!),
            maxPriorityFeePerGas: BigInt(r.max_priority_fee_per_gas!),
          },
    sentAt: r.sent_at === null ? null : Number(r.sent_at),
    createdAt: Number(r.created_at),
    lastErrorClass: r.last_error_class as NodeErrorClass | null,
  };
}

/** Permanent refusals: these signed bytes can never be included anywhere. */
const DEAD: ReadonlySet<NodeErrorClass> = new Set([
  "intrinsic_gas_too_low",
  "gas_limit_too_high",
  "fee_cap_exceeded",
  "execution_reverted",
]);

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

export function createChainClient(chain: ChainConfig): PublicClient {
  // cacheTime 0: the tracker must see the head as it is, not as it was 4 s ago.
  return createPublicClient({
    cacheTime: 0,
    // JSON-RPC batching: a round's sends and receipt lookups go out as one HTTP request each.
    transport: fallback(
      chain.rpcUrls.map((u) =>
        http(u, { retryCount: 1, timeout: 10_000, batch: { batchSize: 200, wait: 0 } }),
      ),
    ),
  }) as PublicClient;
}

export function createBroadcaster(options: BroadcasterOptions): Broadcaster {
  const { common, pool, queues, chain, account } = options;
  const from = account.address.toLowerCase() as Hex;
  const client = options.publicClient ?? createChainClient(chain);
  const batchSize = options.batchSize ?? 100;
  const signConcurrency = options.signConcurrency ?? 16;
  const log = common.logger.child({ component: "signer", chain_id: chain.chainId, wallet: from });
  const metrics = signerMetrics(common.metrics.registry);
  const labels = { chain_id: String(chain.chainId), wallet: from };
  const crashCounts = new Map<CrashPoint, number>();
  /** Requests whose nonce was used but none of whose attempts has a receipt: first seen at. */
  const missingSince = new Map<string, number>();
  let nextNonce: bigint | undefined;
  let lastBalanceAt = 0;

  function crashPoint(point: CrashPoint) {
    const at = options.crashAt;
    if (!at || at.point !== point) return;
    const n = (crashCounts.get(point) ?? 0) + 1;
    crashCounts.set(point, n);
    if (n === at.count) {
      log.warn({ msg: "crash point reached, killing the process", point, count: n });
      process.kill(process.pid, "SIGKILL");
    }
  }

  function alert(name: string, fields: Record<string, unknown>) {
    metrics.alerts.inc({ ...labels, alert: name });
    log.error({ msg: "signer alert", alert: name, ...fields });
  }

  async function signAttempt(
    tx: { nonce: bigint; to: Hex; value: bigint; data: Hex; gasLimit: bigint },
    fees: Fees,
  ): Promise<{ raw: Hex; hash: Hex }> {
    const base = {
      chainId: chain.chainId,
      nonce: Number(tx.nonce),
      to: tx.to,
      value: tx.value,
      data: tx.data,
      gas: tx.gasLimit,
    };
    const serializable: TransactionSerializable =
      fees.type === "legacy"
        ? { ...base, type: "legacy", gasPrice: fees.gasPrice }
        : {
            ...base,
            type: "eip1559",
            maxFeePerGas: fees.maxFeePerGas,
            maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
          };
    const raw = (await account.signTransaction(serializable)) as Hex;
    return { raw, hash: keccak256(raw) };
  }

  async function storeAttempt(
    lease: Lease,
    a: {
      requestId: string;
      nonce: bigint;
      purpose: "send" | "cancel";
      hash: Hex;
      raw: Hex;
      gasLimit: bigint;
      fees: Fees;
    },
  ) {
    await lease.query(
      `INSERT INTO custody.tx_attempts (request_id, chain_id, from_address, nonce, purpose, tx_hash, raw_tx,
         gas_limit, max_fee_per_gas, max_priority_fee_per_gas, gas_price)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        a.requestId,
        chain.chainId,
        from,
        a.nonce.toString(),
        a.purpose,
        a.hash,
        a.raw,
        a.gasLimit.toString(),
        a.fees.type === "eip1559" ? a.fees.maxFeePerGas.toString() : null,
        a.fees.type === "eip1559" ? a.fees.maxPriorityFeePerGas.toString() : null,
        a.fees.type === "legacy" ? a.fees.gasPrice.toString() : null,
      ],
    );
  }

  /** Send stored bytes; returns the error class (undefined: accepted). */
  async function send(raw: Hex): Promise<{ cls?: NodeErrorClass; message?: string }> {
    try {
      await client.sendRawTransaction({ serializedTransaction: raw });
      return {};
    } catch (error) {
      const cls = classifyNodeError(error);
      if (cls === "already_known") return {};
      metrics.sendErrors.inc({ ...labels, class: cls });
      log.info({ msg: "node refused a send", class: cls, error: errorText(error).slice(0, 300) });
      return { cls, message: errorText(error).slice(0, 500) };
    }
  }

  /** Record the node's answer for an attempt and apply its class's response. */
  async function recordSend(
    lease: Lease,
    attempt: { id: string; requestId: string; nonce: bigint },
    result: { cls?: NodeErrorClass; message?: string },
  ) {
    const { cls, message } = result;
    // Transient/unknown/insufficient funds: the bytes stay `signed` (resent every tick).
    const stillUnsent = cls === "transient" || cls === "unknown" || cls === "insufficient_funds";
    if (cls === "insufficient_funds") alert("insufficient_funds", { nonce: String(attempt.nonce) });
    if (cls === "unknown") log.warn({ msg: "unrecognised node error", error: message });
    const status = cls && DEAD.has(cls) ? "rejected" : stillUnsent ? "signed" : "broadcast";
    await lease.query(
      `UPDATE custody.tx_attempts
         SET status = CASE WHEN status IN ('signed', 'broadcast') THEN $2 ELSE status END,
             broadcast_at = CASE WHEN $2 = 'broadcast' THEN COALESCE(broadcast_at, now()) ELSE broadcast_at END,
             last_error_class = $3, last_error = $4
       WHERE id = $1`,
      [attempt.id, status, cls ?? null, message ?? null],
    );
    if (status === "broadcast") {
      await lease.query(
        `UPDATE custody.tx_requests SET status = 'broadcast', updated_at = now()
         WHERE id = $1 AND status = 'signed'`,
        [attempt.requestId],
      );
    }
  }

  async function estimateGas(
    r: { to: Hex; value: bigint; data: Hex },
    codeCache: Map<string, Promise<Hex | undefined>>,
  ): Promise<bigint> {
    if (r.data === "0x") {
      // A plain transfer to an account without code costs exactly 21000.
      let code = codeCache.get(r.to);
      if (!code) {
        code = client.getCode({ address: r.to });
        codeCache.set(r.to, code);
      }
      const bytecode = await code;
      if (!bytecode || bytecode === "0x") return 21_000n;
    }
    const estimate = await client.estimateGas({
      account: from,
      to: r.to,
      value: r.value,
      data: r.data,
    });
    // Headroom for state changing between estimate and inclusion.
    return (estimate * 12n) / 10n;
  }

  async function failBeforeNonce(lease: Lease, id: string, code: string, message: string) {
    await lease.query(
      `UPDATE custody.tx_requests SET status = 'failed', error_code = $2, error_message = $3, updated_at = now()
       WHERE id = $1 AND status = 'pending'`,
      [id, code, message.slice(0, 500)],
    );
  }

  /** Take pending requests: estimate, allocate nonces, sign, store, then send. */
  async function intake(lease: Lease): Promise<number> {
    if (nextNonce === undefined) throw new Error("resync must run before intake");
    const { rows } = await pool.query(
      `SELECT id, to_address, value::text, data, gas_limit::text
       FROM custody.tx_requests
       WHERE chain_id = $1 AND from_address = $2 AND status = 'pending'
       ORDER BY created_at, id LIMIT $3`,
      [chain.chainId, from, batchSize],
    );
    if (rows.length === 0) return 0;
    const fees = await estimateFees(client, chain);
    const ready: { id: string; to: Hex; value: bigint; data: Hex; gasLimit: bigint }[] = [];
    const codeCache = new Map<string, Promise<Hex | undefined>>();
    await mapLimit(rows, 16, async (r) => {
      const req = { to: r.to_address as Hex, value: BigInt(r.value), data: r.data as Hex };
      try {
        const gasLimit = r.gas_limit ? BigInt(r.gas_limit) : await estimateGas(req, codeCache);
        ready.push({ id: r.id, ...req, gasLimit });
      } catch (error) {
        const cls = classifyNodeError(error);
        if (cls === "execution_reverted") {
          // Refused before a nonce was taken: failing it leaves no gap.
          await failBeforeNonce(lease, r.id, "ESTIMATE_REVERTED", errorText(error));
          await ringFor([r.id]);
        } else {
          if (cls === "insufficient_funds") alert("insufficient_funds", { request_id: r.id });
          log.warn({
            msg: "gas estimate failed, request stays pending",
            request_id: r.id,
            class: cls,
          });
        }
      }
    });
    // Keep arrival order among the ready ones (estimates finish in any order).
    const order = new Map(rows.map((r, i) => [r.id as string, i]));
    ready.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    const base = nextNonce;
    const planned = ready.map((r, i) => ({ ...r, nonce: base + BigInt(i) }));
    crashPoint("before_sign");
    const signed = await mapLimit(planned, signConcurrency, async (p) => {
      try {
        return await signAttempt(p, fees);
      } catch (error) {
        log.warn({ msg: "KMS signing failed", request_id: p.id, err: error });
        return undefined;
      }
    });
    // Only a gap-free prefix is stored: a nonce after a failed signature would leave a hole.
    const prefix: ((typeof planned)[number] & { raw: Hex; hash: Hex })[] = [];
    for (let i = 0; i < planned.length; i++) {
      const s = signed[i];
      if (!s) break;
      prefix.push({ ...planned[i]!, ...s });
    }
    if (prefix.length === 0) return 0;
    crashPoint("after_sign");
    // One statement each for the whole batch: the nonces and the signed bytes commit together.
    const stored = await lease.transaction(async () => {
      const upd = await lease.query(
        `UPDATE custody.tx_requests r
           SET status = 'signed', nonce = v.nonce, tx_hash = v.hash,
               gas_limit = COALESCE(r.gas_limit, v.gas), updated_at = now()
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::numeric[]) AS v(id, nonce, hash, gas)
         WHERE r.id = v.id AND r.status = 'pending'`,
        [
          prefix.map((p) => p.id),
          prefix.map((p) => p.nonce.toString()),
          prefix.map((p) => p.hash),
          prefix.map((p) => p.gasLimit.toString()),
        ],
      );
      if (upd.rowCount !== prefix.length) throw new Error("a request is no longer pending");
      const ins = await lease.query(
        `INSERT INTO custody.tx_attempts (request_id, chain_id, from_address, nonce, purpose, tx_hash, raw_tx,
           gas_limit, max_fee_per_gas, max_priority_fee_per_gas, gas_price)
         SELECT v.id, $1, $2, v.nonce, 'send', v.hash, v.raw, v.gas, $3, $4, $5
         FROM unnest($6::text[], $7::bigint[], $8::text[], $9::text[], $10::numeric[]) AS v(id, nonce, hash, raw, gas)
         RETURNING ${ATTEMPT_COLUMNS}`,
        [
          chain.chainId,
          from,
          fees.type === "eip1559" ? fees.maxFeePerGas.toString() : null,
          fees.type === "eip1559" ? fees.maxPriorityFeePerGas.toString() : null,
          fees.type === "legacy" ? fees.gasPrice.toString() : null,
          prefix.map((p) => p.id),
          prefix.map((p) => p.nonce.toString()),
          prefix.map((p) => p.hash),
          prefix.map((p) => p.raw),
          prefix.map((p) => p.gasLimit.toString()),
        ],
      );
      return ins.rows.map(attemptFromRow).sort((x, y) => (x.nonce < y.nonce ? -1 : 1));
    });
    nextNonce = base + BigInt(prefix.length);
    metrics.attempts.inc({ ...labels, kind: "first" }, prefix.length);
    crashPoint("after_commit");
    await sendInOrder(lease, stored);
    return prefix.length;
  }

  async function sendInOrder(lease: Lease, attempts: Attempt[]) {
    // One batched request, in nonce order; a node given a later nonce first just queues it.
    const results = await Promise.all(attempts.map(async (a) => ({ a, r: await send(a.raw) })));
    crashPoint("after_send");
    await lease.transaction(async () => {
      // Accepted sends in two statements; the rest one by one (they are rare).
      const ok = results.filter(({ r }) => !r.cls);
      if (ok.length > 0) {
        await lease.query(
          `UPDATE custody.tx_attempts
             SET status = 'broadcast', broadcast_at = COALESCE(broadcast_at, now()),
                 last_error_class = NULL, last_error = NULL
           WHERE id = ANY($1::bigint[]) AND status IN ('signed', 'broadcast')`,
          [ok.map(({ a }) => a.id)],
        );
        await lease.query(
          `UPDATE custody.tx_requests SET status = 'broadcast', updated_at = now()
           WHERE id = ANY($1) AND status = 'signed'`,
          [ok.map(({ a }) => a.requestId)],
        );
      }
      for (const { a, r } of results) if (r.cls) await recordSend(lease, a, r);
    });
    for (const { a, r } of results) {
      if (r.cls === "underpriced")
        log.info({ msg: "attempt underpriced, bumping", nonce: String(a.nonce) });
      if (r.cls && DEAD.has(r.cls)) await cancelIfDead(lease, a.requestId, a.nonce);
    }
    if (results.some(({ r }) => r.cls === "nonce_gap"))
      await resendLive(lease, { onlyUnsent: false });
  }

  async function liveAttempts(minNonce?: bigint): Promise<Attempt[]> {
    const { rows } = await pool.query(
      `SELECT ${ATTEMPT_COLUMNS} FROM custody.tx_attempts
       WHERE chain_id = $1 AND from_address = $2 AND status IN ('signed', 'broadcast')
         AND nonce >= $3
       ORDER BY nonce, id`,
      [chain.chainId, from, (minNonce ?? 0n).toString()],
    );
    return rows.map(attemptFromRow);
  }

  /** The newest live attempt per nonce (the one with the highest fees). */
  function newestPerNonce(attempts: Attempt[]): Attempt[] {
    const byNonce = new Map<bigint, Attempt>();
    for (const a of attempts) byNonce.set(a.nonce, a);
    return [...byNonce.values()].sort((x, y) => (x.nonce < y.nonce ? -1 : 1));
  }

  /** Resend stored bytes: after a lease change (everything live) or each tick (unsent only). */
  async function resendLive(lease: Lease, { onlyUnsent }: { onlyUnsent: boolean }) {
    const latest = BigInt(await client.getTransactionCount({ address: from, blockTag: "latest" }));
    const newest = newestPerNonce(await liveAttempts(latest));
    const toSend = onlyUnsent ? newest.filter((a) => a.status === "signed") : newest;
    if (toSend.length === 0) return;
    const results: { a: Attempt; r: { cls?: NodeErrorClass; message?: string } }[] = [];
    for (const a of toSend) results.push({ a, r: await send(a.raw) });
    await lease.transaction(async () => {
      for (const { a, r } of results) {
        // An older attempt bounced by its own replacement is still fine: nothing to record.
        if (r.cls === "replacement_underpriced" || r.cls === "nonce_too_low") {
          if (a.status === "signed") await recordSend(lease, a, {});
          continue;
        }
        await recordSend(lease, a, r);
      }
    });
    for (const { a, r } of results) {
      if (r.cls && DEAD.has(r.cls)) await cancelIfDead(lease, a.requestId, a.nonce);
    }
  }

  /**
   * The attempt at this nonce can never be included and no other attempt lives: use the nonce
   * with a 0-value self-transfer, so later nonces are not stuck behind a hole, and fail the
   * request when the cancel confirms.
   */
  async function cancelIfDead(lease: Lease, requestId: string, nonce: bigint) {
    const live = (await liveAttempts(nonce)).filter((a) => a.nonce === nonce);
    if (live.length > 0) return;
    const fees = await estimateFees(client, chain);
    const { raw, hash } = await signAttempt(
      { nonce, to: from, value: 0n, data: "0x", gasLimit: 21_000n },
      fees,
    );
    await lease.transaction(() =>
      storeAttempt(lease, {
        requestId,
        nonce,
        purpose: "cancel",
        hash,
        raw,
        gasLimit: 21_000n,
        fees,
      }),
    );
    metrics.attempts.inc({ ...labels, kind: "cancel" });
    alert("nonce_cancelled", { request_id: requestId, nonce: String(nonce) });
    const [a] = (await liveAttempts(nonce)).filter((x) => x.txHash === hash);
    if (a) await sendInOrder(lease, [a]);
  }

  /** Replace attempts not mined within the bump interval (or refused as underpriced). */
  async function bump(lease: Lease, open: OpenRequest[], latest: bigint) {
    const now = Date.now();
    const newest = newestPerNonce(await liveAttempts(latest));
    const due = newest.filter(
      (a) =>
        a.lastErrorClass === "underpriced" ||
        (a.status === "broadcast" && now - (a.sentAt ?? a.createdAt) >= chain.bumpIntervalMs),
    );
    if (due.length === 0) return;
    const market = await estimateFees(client, chain);
    const requests = new Map(open.map((r) => [r.id, r]));
    for (const a of due) {
      const req = requests.get(a.requestId);
      if (!req) continue;
      const result = bumpFees(a.fees, market, chain.maxFeePerGas);
      if (result.capped) {
        metrics.feeCapHits.inc(labels);
        alert("fee_cap", {
          request_id: a.requestId,
          nonce: String(a.nonce),
          cap: chain.maxFeePerGas.toString(),
        });
        await lease.query(
          "UPDATE custody.tx_requests SET fee_capped_at = COALESCE(fee_capped_at, now()), updated_at = now() WHERE id = $1",
          [a.requestId],
        );
      }
      if (!result.replace) {
        // No valid replacement under the cap: keep the current attempt, resend it, wait.
        await send(a.raw);
        await lease.query("UPDATE custody.tx_attempts SET broadcast_at = now() WHERE id = $1", [
          a.id,
        ]);
        continue;
      }
      const tx =
        a.purpose === "cancel"
          ? { nonce: a.nonce, to: from, value: 0n, data: "0x" as Hex, gasLimit: 21_000n }
          : { nonce: a.nonce, to: req.to, value: req.value, data: req.data, gasLimit: a.gasLimit };
      const { raw, hash } = await signAttempt(tx, result.fees);
      await lease.transaction(() =>
        storeAttempt(lease, {
          requestId: a.requestId,
          nonce: a.nonce,
          purpose: a.purpose,
          hash,
          raw,
          gasLimit: tx.gasLimit,
          fees: result.fees,
        }),
      );
      metrics.attempts.inc({ ...labels, kind: "bump" });
      log.info({
        msg: "attempt bumped",
        request_id: a.requestId,
        nonce: String(a.nonce),
        tx_hash: hash,
      });
      const [stored] = (await liveAttempts(a.nonce)).filter((x) => x.txHash === hash);
      if (stored) await sendInOrder(lease, [stored]);
    }
  }

  async function openRequests(): Promise<OpenRequest[]> {
    const { rows } = await pool.query(
      `SELECT id, kind, ref_id, status, nonce::text, to_address, value::text, data, tx_hash,
              block_number::text, block_hash, extract(epoch from created_at) * 1000 AS created_at
       FROM custody.tx_requests
       WHERE chain_id = $1 AND from_address = $2 AND status IN ('signed', 'broadcast', 'mined')
       ORDER BY nonce`,
      [chain.chainId, from],
    );
    return rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      refId: r.ref_id,
      status: r.status,
      nonce: BigInt(r.nonce),
      to: r.to_address,
      value: BigInt(r.value),
      data: r.data,
      txHash: r.tx_hash,
      blockNumber: r.block_number === null ? null : BigInt(r.block_number),
      blockHash: r.block_hash,
      createdAt: Number(r.created_at),
    }));
  }

  async function receiptOf(hash: Hex): Promise<TransactionReceipt | undefined> {
    try {
      return await client.getTransactionReceipt({ hash });
    } catch (error) {
      if ((error as { name?: string }).name === "TransactionReceiptNotFoundError") return undefined;
      throw error;
    }
  }

  async function markMined(
    lease: Lease,
    req: OpenRequest,
    winner: Attempt,
    receipt: TransactionReceipt,
  ) {
    const fee = receipt.gasUsed * receipt.effectiveGasPrice;
    const position =
      winner.purpose === "send" && receipt.status === "success"
        ? transferPosition(
            { from, to: req.to, value: req.value, data: req.data },
            receipt.logs,
            chain.tokens.map((t) => t.address),
          )
        : null;
    await lease.transaction(async () => {
      await lease.query(
        `UPDATE custody.tx_requests
           SET status = 'mined', tx_hash = $2, block_number = $3, block_hash = $4, receipt_success = $5,
               gas_used = $6, effective_gas_price = $7, fee = $8, transfer_position = $9,
               transfer_log_index = $10, updated_at = now()
         WHERE id = $1`,
        [
          req.id,
          winner.txHash,
          receipt.blockNumber.toString(),
          receipt.blockHash,
          receipt.status === "success",
          receipt.gasUsed.toString(),
          receipt.effectiveGasPrice.toString(),
          fee.toString(),
          position?.position ?? null,
          position?.logIndex ?? null,
        ],
      );
      await lease.query(
        `UPDATE custody.tx_attempts SET status = CASE WHEN id = $2 THEN 'mined' ELSE 'replaced' END
         WHERE request_id = $1 AND status IN ('signed', 'broadcast', 'mined', 'replaced')`,
        [req.id, winner.id],
      );
    });
    metrics.timeToMine.observe(labels, Math.max(0, (Date.now() - req.createdAt) / 1000));
  }

  /** A mined tx left the canonical chain: back to broadcast, resend the bytes that had mined. */
  async function unmine(lease: Lease, req: OpenRequest) {
    log.warn({
      msg: "mined transaction reorged out, resending its bytes",
      request_id: req.id,
      tx_hash: req.txHash,
    });
    await lease.transaction(async () => {
      await lease.query(
        `UPDATE custody.tx_requests
           SET status = 'broadcast', block_number = NULL, block_hash = NULL, receipt_success = NULL,
               gas_used = NULL, effective_gas_price = NULL, fee = NULL, transfer_position = NULL,
               transfer_log_index = NULL, reorg_count = reorg_count + 1, updated_at = now()
         WHERE id = $1 AND status = 'mined'`,
        [req.id],
      );
      await lease.query(
        `UPDATE custody.tx_attempts SET status = 'broadcast', broadcast_at = now()
         WHERE request_id = $1 AND status IN ('mined', 'replaced')`,
        [req.id],
      );
    });
    const winner = (await liveAttempts(req.nonce)).find((a) => a.txHash === req.txHash);
    if (winner) await send(winner.raw);
  }

  async function finalise(
    lease: Lease,
    req: OpenRequest,
    winnerPurpose: "send" | "cancel",
    success: boolean,
  ) {
    const status: TxRequestStatus = winnerPurpose === "send" && success ? "confirmed" : "failed";
    const code = winnerPurpose === "cancel" ? "CANCELLED" : success ? null : "REVERTED";
    await lease.query(
      `UPDATE custody.tx_requests SET status = $2, error_code = COALESCE($3, error_code), updated_at = now()
       WHERE id = $1 AND status = 'mined'`,
      [req.id, status, code],
    );
    metrics.outcomes.inc({ ...labels, status });
  }

  async function confirmationsMet(
    head: bigint,
    blockNumber: bigint,
    finalizedNumber: () => Promise<bigint | null>,
  ): Promise<boolean> {
    if (chain.confirmations.kind === "blocks") {
      return head - blockNumber + 1n >= BigInt(Math.max(1, chain.confirmations.blocks));
    }
    const finalized = await finalizedNumber();
    return finalized !== null && finalized >= blockNumber;
  }

  async function track(lease: Lease, open: OpenRequest[], latest: bigint) {
    const head = await client.getBlockNumber();
    const attempts = await pool.query(
      `SELECT ${ATTEMPT_COLUMNS} FROM custody.tx_attempts
       WHERE chain_id = $1 AND from_address = $2 AND request_id = ANY($3) AND status <> 'rejected'
       ORDER BY id DESC`,
      [chain.chainId, from, open.map((r) => r.id)],
    );
    const byRequest = new Map<string, Attempt[]>();
    for (const row of attempts.rows) {
      const a = attemptFromRow(row);
      byRequest.set(a.requestId, [...(byRequest.get(a.requestId) ?? []), a]);
    }
    // Phase 1, concurrent: read the chain and decide. Phase 2, one at a time: write through the
    // lease connection (one connection cannot interleave transactions).
    type Action =
      | { do: "unmine"; req: OpenRequest }
      | { do: "mined"; req: OpenRequest; winner: Attempt; receipt: TransactionReceipt }
      | { do: "final"; req: OpenRequest; purpose: "send" | "cancel"; success: boolean }
      | { do: "nonce_used_elsewhere"; req: OpenRequest };
    let finalized: Promise<bigint | null> | undefined;
    const finalizedNumber = () => {
      finalized ??= client.getBlock({ blockTag: "finalized" }).then((b) => b.number);
      return finalized;
    };
    const decide = async (req: OpenRequest): Promise<Action | undefined> => {
      const mine = byRequest.get(req.id) ?? [];
      if (req.status === "mined") {
        if (req.nonce >= latest) return { do: "unmine", req };
        if (!(await confirmationsMet(head, req.blockNumber!, finalizedNumber))) return undefined;
        const receipt = await receiptOf(req.txHash!);
        if (!receipt) return { do: "unmine", req };
        const winner = mine.find((a) => a.txHash === req.txHash);
        if (receipt.blockHash !== req.blockHash && winner) {
          // Re-included in another block: record it; confirmations count from there.
          return { do: "mined", req, winner, receipt };
        }
        return {
          do: "final",
          req,
          purpose: winner?.purpose ?? "send",
          success: receipt.status === "success",
        };
      }
      if (req.nonce >= latest) return undefined;
      // The nonce is used: find which of our attempts mined.
      for (const a of mine) {
        const receipt = await receiptOf(a.txHash);
        if (receipt) {
          missingSince.delete(req.id);
          return { do: "mined", req, winner: a, receipt };
        }
      }
      const since = missingSince.get(req.id) ?? Date.now();
      missingSince.set(req.id, since);
      if (Date.now() - since > Math.max(30_000, 5 * chain.blockTimeMs)) {
        missingSince.delete(req.id);
        return { do: "nonce_used_elsewhere", req };
      }
      return undefined;
    };
    const actions = await mapLimit(open, 16, decide);
    const finals: string[] = [];
    for (const action of actions) {
      if (!action) continue;
      const { req } = action;
      if (action.do === "unmine") await unmine(lease, req);
      else if (action.do === "mined") await markMined(lease, req, action.winner, action.receipt);
      else if (action.do === "final") {
        await finalise(lease, req, action.purpose, action.success);
        finals.push(req.id);
      } else {
        alert("nonce_used_outside_signer", { request_id: req.id, nonce: String(req.nonce) });
        await lease.query(
          `UPDATE custody.tx_requests SET status = 'failed', error_code = 'NONCE_USED_ELSEWHERE',
             error_message = 'the nonce was used by a transaction the signer did not send', updated_at = now()
           WHERE id = $1 AND status IN ('signed', 'broadcast')`,
          [req.id],
        );
        finals.push(req.id);
      }
    }
    await ringFor(finals);
  }

  /** Ring tx-outcomes for final requests, then note it (a lost ring is re-rung by the sweep). */
  async function ringFor(ids: string[]) {
    if (ids.length === 0) return;
    const { rows } = await pool.query(
      `SELECT id, kind, ref_id, status FROM custody.tx_requests
       WHERE id = ANY($1) AND status IN ('confirmed', 'failed')`,
      [ids],
    );
    if (rows.length === 0) return;
    const rung = await queues.ring<TxOutcomeJob>(
      TX_OUTCOMES_QUEUE,
      rows.map((r) => ({
        name: "outcome",
        data: { requestId: r.id, kind: r.kind, refId: r.ref_id, status: r.status },
        opts: { jobId: jobId(r.id, r.status) },
      })),
    );
    if (!rung) return; // Redis away: never wait on it; ringOwedDoorbells rings again later
    await pool.query(
      "UPDATE custody.tx_requests SET notified_at = now() WHERE id = ANY($1) AND notified_at IS NULL",
      [rows.map((r) => r.id)],
    );
  }

  async function ringOwedDoorbells() {
    const { rows } = await pool.query(
      `SELECT id FROM custody.tx_requests
       WHERE status IN ('confirmed', 'failed') AND notified_at IS NULL AND chain_id = $1 AND from_address = $2
       LIMIT 500`,
      [chain.chainId, from],
    );
    await ringFor(rows.map((r) => r.id));
  }

  async function observe(open: OpenRequest[]) {
    for (const status of ["signed", "broadcast", "mined"]) {
      metrics.open.set({ ...labels, status }, open.filter((r) => r.status === status).length);
    }
    if (Date.now() - lastBalanceAt > 10_000) {
      lastBalanceAt = Date.now();
      metrics.balance.set(labels, Number(await client.getBalance({ address: from })));
    }
  }

  return {
    nextNonce: () => nextNonce,
    async resync(lease) {
      const { rows } = await lease.query(
        `SELECT max(nonce)::text AS max FROM custody.tx_requests
         WHERE chain_id = $1 AND from_address = $2 AND nonce IS NOT NULL`,
        [chain.chainId, from],
      );
      const stored = rows[0].max === null ? 0n : BigInt(rows[0].max) + 1n;
      const pending = BigInt(
        await client.getTransactionCount({ address: from, blockTag: "pending" }),
      );
      nextNonce = stored > pending ? stored : pending;
      log.info({
        msg: "nonce resynced",
        next_nonce: String(nextNonce),
        stored_next: String(stored),
        chain_pending: String(pending),
      });
      await resendLive(lease, { onlyUnsent: false });
    },
    async tick(lease) {
      const signed = await intake(lease);
      await resendLive(lease, { onlyUnsent: true });
      const open = await openRequests();
      if (open.length > 0) {
        const latest = BigInt(
          await client.getTransactionCount({ address: from, blockTag: "latest" }),
        );
        await track(lease, open, latest);
        const stillOpen = await openRequests();
        await bump(lease, stillOpen, latest);
        await observe(stillOpen);
      } else {
        await observe(open);
      }
      await ringOwedDoorbells();
      return { signed };
    },
    ringOwedDoorbells,
  };
}
