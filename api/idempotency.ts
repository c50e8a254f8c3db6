/**
 * Idempotency for every POST under /v1: the first request with an `Idempotency-Key` is recorded with
 * a hash of what it asked (route, params, body); a repeat with the same hash gets the stored
 * response, with another hash a 409 naming the key (and while the first is still in flight, a 409
 * IDEMPOTENCY_IN_PROGRESS until its lease lapses). Keys are the calling principal's (the API
 * keys' owner, `principalOf`), not one API key's: a retry under a rotated key of the same service
 * is the same request (a row with no principal, from before api migration 0021 or the previous
 * revision, stays its API key's). Only 2xx answers are stored: after a 4xx (which changed
 * nothing) the caller can fix the request and retry with the same key. A 5xx may come after the
 * effect committed: its key stays bound to its request, unanswered, as a crash leaves it, so only
 * that same request may take it over and run again.
 * Each handler is idempotent by its own ids when run again (a treasury move by chain id + tx
 * hash, a deposit address by customer + chain, an operator's fail by the withdrawal's state);
 * those that move money, and those that decide from a state that may have moved on by the retry
 * (a break a later run reopened, a re-driven delivery that died again), also make their own row
 * unique on the key and answer its retry with the result (a withdrawal's create, approve, reject
 * and cancel; a break's acknowledgement or resolution; a re-drive), which holds even for an answer
 * lost some other way.
 */
import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Pool, PoolClient } from "../foundation/db.js";
import { type ApiKey, principalOf } from "./apiKeys.js";
import {
  IdempotencyConflictError,
  IdempotencyInProgressError,
  IdempotencyKeyMissingError,
  InvalidFieldError,
} from "./errors.js";

declare module "fastify" {
  interface FastifyRequest {
    /**
     * `holder`: the API key its row is recorded under (the first request's: maybe another key of
     * the caller's principal, for a retry under a rotated key).
     */
    idempotency: { key: string; holder: string; replayed: boolean } | null;
  }
}

/**
 * A request in flight holds its key under a lease its process renews every RENEW_MS; a process
 * that dies (kill -9) stops renewing, so the key is taken over LEASE_S later at most. Rows written
 * before leases existed (lease_until NULL) are free ABANDONED_AFTER_S after they were created.
 */
export const LEASE_S = 10;
const RENEW_MS = 3000;
const ABANDONED_AFTER_S = 120;
const ABANDONED = `COALESCE(lease_until, created_at + make_interval(secs => ${ABANDONED_AFTER_S})) < now()`;
const KEY_FORMAT = /^[\x21-\x7e]{1,200}$/;

/** Stable JSON (sorted keys) so the same body with reordered fields hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object")
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(value) ?? "null";
}

export function requestHash(request: FastifyRequest): string {
  return createHash("sha256")
    .update(
      canonicalJson({
        method: request.method,
        route: request.routeOptions.url,
        params: request.params ?? {},
        body: request.body ?? null,
      }),
    )
    .digest("hex");
}

export function idempotencyKeyOf(request: FastifyRequest): string {
  const key = request.headers["idempotency-key"];
  if (key === undefined) throw new IdempotencyKeyMissingError();
  if (typeof key !== "string" || !KEY_FORMAT.test(key))
    throw new InvalidFieldError(
      "IDEMPOTENCY_KEY_INVALID",
      "headers.idempotency-key",
      "Idempotency-Key must be 1-200 printable ASCII characters",
    );
  return key;
}

/**
 * The row a caller recorded under an Idempotency-Key, in a table with `principal`, `api_key_id`
 * and `idempotency_key` (a request's record, a withdrawal, a decision, a break's decision, a
 * re-drive): its principal's (any of its API keys: `principalOf`), or the API key's own for a row
 * with no principal (before api migration 0021/0022, or by the previous revision). A WHERE clause
 * with its order, for the parameters `callersKeyParams` gives ($1 to $3).
 */
export const CALLERS_KEY = `idempotency_key = $2 AND (principal = $1 OR api_key_id = $3)
  ORDER BY api_key_id = $3 DESC LIMIT 1`;

export function callersKeyParams(
  caller: Pick<ApiKey, "id" | "owner">,
  key: string,
): [principal: string, key: string, apiKeyId: string] {
  return [principalOf(caller), key, caller.id];
}

/**
 * Takes the lock of a caller's Idempotency-Key for a route that records what it decided under it
 * (`scope` names the route's locks: `withdrawal-key`, `recon-break-key`, `webhook-redrive-key`),
 * in the caller's transaction, before any other lock: the principal's (`principalOf`: a retry
 * under a rotated key of the same service waits for the first request), then the API key's own,
 * which a revision before principals takes (a rolling deploy runs both).
 */
export async function lockCallersKey(
  client: PoolClient,
  scope: string,
  caller: Pick<ApiKey, "id" | "owner">,
  key: string,
): Promise<void> {
  for (const name of [
    `${scope}:principal:${principalOf(caller)}:${key}`,
    `${scope}:${caller.id}:${key}`,
  ])
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [name]);
}

type StoredRow = {
  request_hash: string;
  method: string;
  route: string;
  status_code: number | null;
  response_body: string | null;
  content_type: string | null;
  abandoned: boolean;
};

/**
 * Moves the leases of keys in flight (`[holder, key]`) LEASE_S ahead. Only live leases: a lease
 * lapsed is free, and a renewal that read its keys before a 5xx lapsed one (released it) may
 * reach Postgres after the lapse, on a loaded pool; renewing it then would answer the same
 * request, retried at once, IDEMPOTENCY_IN_PROGRESS for LEASE_S after our own 5xx. Compared with
 * `clock_timestamp()`, re-read when the UPDATE waited for the lapse's row lock (`now()` is when
 * the statement started, which may be before the lapse's).
 */
export async function renewLeases(
  pool: Pool,
  keys: readonly (readonly [holder: string, key: string])[],
): Promise<void> {
  await pool.query(
    `UPDATE api.idempotency_keys k SET lease_until = now() + make_interval(secs => $3)
       FROM unnest($1::text[], $2::text[]) AS h(api_key_id, idempotency_key)
      WHERE k.api_key_id = h.api_key_id AND k.idempotency_key = h.idempotency_key
        AND k.status_code IS NULL AND k.lease_until > clock_timestamp()`,
    [keys.map((r) => r[0]), keys.map((r) => r[1]), LEASE_S],
  );
}

export async function registerIdempotency(app: FastifyInstance, pool: Pool): Promise<void> {
  app.decorateRequest("idempotency", null);
  // Keys this process holds in flight, renewed together (one UPDATE per tick, none when idle).
  // A row is named by its primary key: the API key it is recorded under and the Idempotency-Key.
  const held = new Map<string, [string, string]>();
  const hold = (holder: string, key: string) => held.set(`${holder}\u0000${key}`, [holder, key]);
  const release = (holder: string, key: string) => held.delete(`${holder}\u0000${key}`);
  const renew = setInterval(() => {
    if (held.size === 0) return;
    renewLeases(pool, [...held.values()]).catch((err) =>
      app.log.warn({ msg: "idempotency lease renewal failed", err }),
    );
  }, RENEW_MS);
  renew.unref();
  app.addHook("onClose", async () => clearInterval(renew));
  app.addHook("onResponse", async (request) => {
    if (request.idempotency) release(request.idempotency.holder, request.idempotency.key);
  });

  app.addHook("preHandler", async (request, reply) => {
    if (request.method !== "POST" || !request.apiKey) return;
    const key = idempotencyKeyOf(request);
    const hash = requestHash(request);
    const route = `${request.method} ${request.routeOptions.url}`;
    const apiKeyId = request.apiKey.id;
    const principal = principalOf(request.apiKey);
    // Taken if neither this API key nor another of its principal holds the key (either unique).
    const inserted = await pool.query(
      `INSERT INTO api.idempotency_keys
         (api_key_id, principal, idempotency_key, method, route, request_hash, lease_until)
       VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7)) ON CONFLICT DO NOTHING`,
      [apiKeyId, principal, key, request.method, route, hash, LEASE_S],
    );
    if (inserted.rowCount === 1) {
      request.idempotency = { key, holder: apiKeyId, replayed: false };
      hold(apiKeyId, key);
      return;
    }
    const { rows } = await pool.query<StoredRow & { holder: string }>(
      `SELECT api_key_id AS holder, request_hash, method, route, status_code, response_body,
              content_type, ${ABANDONED} AS abandoned
         FROM api.idempotency_keys WHERE ${CALLERS_KEY}`,
      callersKeyParams(request.apiKey, key),
    );
    const row = rows[0];
    if (!row) throw new IdempotencyInProgressError(key); // deleted after a 4xx just now: retry
    if (row.request_hash !== hash) throw new IdempotencyConflictError(key, row.route);
    if (row.status_code === null) {
      if (!row.abandoned) throw new IdempotencyInProgressError(key);
      // Take over an abandoned first attempt; handlers are idempotent on the key themselves.
      // One taker wins (the row's lease moves forward in the same statement).
      const taken = await pool.query(
        `UPDATE api.idempotency_keys
            SET created_at = now(), lease_until = now() + make_interval(secs => $3)
          WHERE api_key_id = $1 AND idempotency_key = $2 AND status_code IS NULL
            AND ${ABANDONED}`,
        [row.holder, key, LEASE_S],
      );
      if (taken.rowCount !== 1) throw new IdempotencyInProgressError(key);
      request.idempotency = { key, holder: row.holder, replayed: false };
      hold(row.holder, key);
      return;
    }
    request.idempotency = { key, holder: row.holder, replayed: true };
    reply
      .status(row.status_code)
      .header("idempotent-replayed", "true")
      .type(row.content_type ?? "application/json");
    return reply.send(row.response_body ?? "");
  });

  app.addHook("onSend", async (request, reply, payload) => {
    const idem = request.idempotency;
    if (!idem || idem.replayed) return payload;
    // A failure of ours (5xx) may come after the request's effect committed (a connection lost
    // on the way back), so it frees nothing: the key stays this request's, unanswered, its lease
    // lapsed. The same request sent again takes it over at once and runs again (each route is
    // idempotent by its own ids); another request under the key, on any route, is
    // IDEMPOTENCY_KEY_REUSED, as it is after a crash.
    if (reply.statusCode >= 500) {
      release(idem.holder, idem.key); // not renewed by a tick before onResponse
      await pool.query(
        `UPDATE api.idempotency_keys SET lease_until = now() - interval '1 second'
          WHERE api_key_id = $1 AND idempotency_key = $2 AND status_code IS NULL`,
        [idem.holder, idem.key],
      );
      return payload;
    }
    // Only a success is remembered: a refused request (4xx) changed nothing, so its key stays free
    // (and a bad request leaves no row behind in any table).
    if (reply.statusCode >= 400) {
      await pool.query(
        `DELETE FROM api.idempotency_keys WHERE api_key_id = $1 AND idempotency_key = $2`,
        [idem.holder, idem.key],
      );
      return payload;
    }
    await pool.query(
      `UPDATE api.idempotency_keys
          SET status_code = $3, response_body = $4, content_type = $5, completed_at = now()
        WHERE api_key_id = $1 AND idempotency_key = $2`,
      [
        idem.holder,
        idem.key,
        reply.statusCode,
        typeof payload === "string" ? payload : payload == null ? "" : String(payload),
        String(reply.getHeader("content-type") ?? "application/json"),
      ],
    );
    return payload;
  });
}
