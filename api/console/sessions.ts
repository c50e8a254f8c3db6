/**
 * Console sessions. Signing in with an API key mints a session key of its own (same owner and
 * scopes, description `console session`): the cookie carries it, and the console calls /v1 with it,
 * so every page and action passes the API's own auth, scope checks, idempotency and audit. The row
 * here adds what a browser session needs: a CSRF token (hash), the idle timeout and the absolute
 * end. An OIDC sign-in (oidc.ts) mints the same kind of session, recording the ID token's issuer
 * and subject instead of a parent key. The session key carries the person's email (the parent
 * key's, or the SSO sign-in's verified one), so approvals count it as that person.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { appendAudit } from "../../foundation/audit.js";
import type { Pool, PoolClient } from "../../foundation/db.js";
import { withTransaction } from "../../foundation/db.js";
import { type ApiKey, createApiKey, revokeApiKey, type Scope, verifyApiKey } from "../apiKeys.js";

export type ConsoleSession = {
  key: ApiKey;
  plaintext: string;
  csrf: string;
  /** An SSO session: the groups it signed in with and how long ago (verifyApiKey's `sso`). */
  sso: { groups: unknown; ageMs: number } | null;
};

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** The CSRF token of a session: derived from its key, so it needs no second secret in the cookie. */
export function csrfTokenOf(sessionPlaintext: string): string {
  return createHash("sha256").update(`csrf:${sessionPlaintext}`).digest("base64url");
}

export function csrfMatches(sessionPlaintext: string, presented: unknown): boolean {
  if (typeof presented !== "string") return false;
  const expected = Buffer.from(csrfTokenOf(sessionPlaintext));
  const actual = Buffer.from(presented);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Where a session came from: an API key pasted on the sign-in page, or an OIDC ID token. */
export type SessionOrigin =
  | { kind: "apiKey"; apiKeyId: string }
  | {
      kind: "oidc";
      issuer: string;
      subject: string;
      /** The ID token's groups claim as given: /v1 maps it to scopes per request (api/auth.ts). */
      groups: unknown;
    };

const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;
/** A session ends this long after sign-in however active (the OIDC config's default too). */
export const DEFAULT_ABSOLUTE_TIMEOUT_MS = 8 * 3_600_000;

/**
 * Mints a console session in the caller's transaction: a session key with the given owner and
 * scopes, its row (CSRF hash, origin, idle deadline, absolute end) and the `console.signed_in`
 * audit entry. Both sign-in paths end here, so /v1 auth, scope checks and audit stay one path.
 */
export async function mintSession(
  c: PoolClient,
  input: {
    owner: string;
    /** The person's email (absent: the owner alone names them). */
    email?: string | null | undefined;
    scopes: readonly Scope[];
    origin: SessionOrigin;
    idleTimeoutMs: number;
    /** The session ends this long after sign-in however active it is. */
    absoluteTimeoutMs: number;
    auditDetails?: Record<string, unknown>;
  },
): Promise<ConsoleSession> {
  const { origin } = input;
  const { key, plaintext } = await createApiKey(c, {
    owner: input.owner,
    email: input.email,
    scopes: input.scopes,
    description:
      origin.kind === "apiKey"
        ? `console session of key ${origin.apiKeyId}`
        : `console session (OIDC ${origin.issuer} sub ${origin.subject})`.slice(0, 500),
  });
  const csrf = csrfTokenOf(plaintext);
  await c.query(
    `INSERT INTO api.console_sessions
       (key_id, signed_in_with, oidc_issuer, oidc_subject, csrf_hash, idle_expires_at, expires_at,
        oidc_groups)
     VALUES ($1, $2, $3, $4, $5,
             now() + make_interval(secs => $6::double precision / 1000),
             now() + make_interval(secs => $7::double precision / 1000), $8::jsonb)`,
    [
      key.id,
      origin.kind === "apiKey" ? origin.apiKeyId : null,
      origin.kind === "oidc" ? origin.issuer : null,
      origin.kind === "oidc" ? origin.subject : null,
      sha256(csrf),
      input.idleTimeoutMs,
      input.absoluteTimeoutMs,
      origin.kind === "oidc" ? JSON.stringify(origin.groups ?? null) : null,
    ],
  );
  await appendAudit(c, {
    actor: key.owner,
    action: "console.signed_in",
    entityType: "console_session",
    entityId: key.id,
    details: {
      ...(origin.kind === "apiKey"
        ? { apiKeyId: origin.apiKeyId }
        : { via: "oidc", issuer: origin.issuer, subject: origin.subject }),
      scopes: key.scopes,
      ...input.auditDetails,
    },
  });
  return {
    key,
    plaintext,
    csrf,
    sso: origin.kind === "oidc" ? { groups: origin.groups ?? null, ageMs: 0 } : null,
  };
}

/**
 * Exchanges an API key for a session, or says why not (the same reasons as the API's auth). The
 * session ends `absoluteTimeoutMs` after sign-in however active, as an SSO session does.
 */
export async function signIn(
  pool: Pool,
  apiKeyPlaintext: string,
  idleTimeoutMs: number = DEFAULT_IDLE_TIMEOUT_MS,
  absoluteTimeoutMs: number = DEFAULT_ABSOLUTE_TIMEOUT_MS,
): Promise<{ ok: true; session: ConsoleSession } | { ok: false; reason: string }> {
  const verified = await verifyApiKey(pool, apiKeyPlaintext.trim());
  if (!verified.ok) return verified;
  const parent = verified.key;
  // Only a key of its own signs in: a session's key would start a session that outlives its own
  // (and its signing-in key's revocation, or an SSO session's absolute end).
  const { rowCount } = await pool.query("SELECT 1 FROM api.console_sessions WHERE key_id = $1", [
    parent.id,
  ]);
  if (rowCount !== 0)
    return { ok: false, reason: "a console session's key cannot sign in: use an API key" };
  return withTransaction(pool, async (c) => ({
    ok: true as const,
    session: await mintSession(c, {
      owner: parent.owner,
      email: parent.email,
      scopes: parent.scopes,
      origin: { kind: "apiKey", apiKeyId: parent.id },
      idleTimeoutMs,
      absoluteTimeoutMs,
    }),
  }));
}

/**
 * The live session a cookie names, sliding its idle deadline; a session past its idle timeout or
 * its absolute end (or whose signing-in key was revoked) is ended here and its key revoked. (/v1
 * already refuses such a key on its own: api/apiKeys.ts verifyApiKey.)
 */
export async function resumeSession(
  pool: Pool,
  cookie: string | undefined,
  idleTimeoutMs: number,
): Promise<ConsoleSession | null> {
  if (!cookie) return null;
  const verified = await verifyApiKey(pool, cookie, { consoleSessionOver: "accept" });
  if (!verified.ok) return null;
  const { rows } = await pool.query<{
    idle: boolean;
    expired: boolean;
    parent_revoked: boolean;
    ended: boolean;
  }>(
    `SELECT s.last_seen_at < now() - make_interval(secs => $2::double precision / 1000)
              OR s.idle_expires_at <= now() AS idle,
            COALESCE(s.expires_at <= now(), false) AS expired,
            COALESCE(p.revoked_at IS NOT NULL, false) AS parent_revoked,
            s.ended_at IS NOT NULL AS ended
       FROM api.console_sessions s LEFT JOIN api.api_keys p ON p.id = s.signed_in_with
      WHERE s.key_id = $1`,
    [verified.key.id, idleTimeoutMs],
  );
  const row = rows[0];
  if (!row || row.ended) return null;
  if (row.idle || row.expired || row.parent_revoked) {
    await endSession(
      pool,
      verified.key,
      row.expired ? "session expired" : row.idle ? "idle timeout" : "API key revoked",
    );
    return null;
  }
  await pool.query(
    `UPDATE api.console_sessions
        SET last_seen_at = now(),
            idle_expires_at = now() + make_interval(secs => $2::double precision / 1000)
      WHERE key_id = $1`,
    [verified.key.id, idleTimeoutMs],
  );
  return { key: verified.key, plaintext: cookie, csrf: csrfTokenOf(cookie), sso: verified.sso };
}

export async function endSession(pool: Pool, key: ApiKey, reason: string): Promise<void> {
  await withTransaction(pool, async (c) => {
    const { rowCount } = await c.query(
      `UPDATE api.console_sessions SET ended_at = now(), ended_reason = $2
        WHERE key_id = $1 AND ended_at IS NULL`,
      [key.id, reason],
    );
    await revokeApiKey(c, key.id);
    if ((rowCount ?? 0) > 0)
      await appendAudit(c, {
        actor: key.owner,
        action: "console.signed_out",
        entityType: "console_session",
        entityId: key.id,
        details: { reason },
      });
  });
}

export const newIdempotencyKey = () => `console-${randomBytes(12).toString("base64url")}`;
