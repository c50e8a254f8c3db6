/**
 * Console sessions. Signing in with an API key mints a session key of its own (same owner and
 * scopes, description `console session`): the cookie carries it, and the console calls /v1 with it,
 * so every page and action passes the API's own auth, scope checks, idempotency and audit. The row
 * here adds what a browser session needs: a CSRF token (hash), the idle timeout and the end.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Pool } from "../../ops/db.js";
import { withTransaction } from "../../ops/db.js";
import { type ApiKey, createApiKey, revokeApiKey, verifyApiKey } from "../apiKeys.js";
import { appendAudit } from "../audit.js";

export type ConsoleSession = { key: ApiKey; plaintext: string; csrf: string };

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

/** Exchanges an API key for a session, or says why not (the same reasons as the API's auth). */
export async function signIn(
  pool: Pool,
  apiKeyPlaintext: string,
): Promise<{ ok: true; session: ConsoleSession } | { ok: false; reason: string }> {
  const verified = await verifyApiKey(pool, apiKeyPlaintext.trim());
  if (!verified.ok) return verified;
  const parent = verified.key;
  return withTransaction(pool, async (c) => {
    const { key, plaintext } = await createApiKey(c, {
      owner: parent.owner,
      scopes: parent.scopes,
      description: `console session of key ${parent.id}`,
    });
    const csrf = csrfTokenOf(plaintext);
    await c.query(
      `INSERT INTO api.console_sessions (key_id, signed_in_with, csrf_hash) VALUES ($1, $2, $3)`,
      [key.id, parent.id, sha256(csrf)],
    );
    await appendAudit(c, {
      actor: parent.owner,
      action: "console.signed_in",
      entityType: "console_session",
      entityId: key.id,
      details: { apiKeyId: parent.id, scopes: parent.scopes },
    });
    return { ok: true as const, session: { key, plaintext, csrf } };
  });
}

/**
 * The live session a cookie names, touching its idle clock; a session past its idle timeout (or
 * whose signing-in key was revoked) is ended here and its key revoked.
 */
export async function resumeSession(
  pool: Pool,
  cookie: string | undefined,
  idleTimeoutMs: number,
): Promise<ConsoleSession | null> {
  if (!cookie) return null;
  const verified = await verifyApiKey(pool, cookie);
  if (!verified.ok) return null;
  const { rows } = await pool.query<{ idle: boolean; parent_revoked: boolean; ended: boolean }>(
    `SELECT s.last_seen_at < now() - make_interval(secs => $2::double precision / 1000) AS idle,
            p.revoked_at IS NOT NULL AS parent_revoked, s.ended_at IS NOT NULL AS ended
       FROM api.console_sessions s JOIN api.api_keys p ON p.id = s.signed_in_with
      WHERE s.key_id = $1`,
    [verified.key.id, idleTimeoutMs],
  );
  const row = rows[0];
  if (!row || row.ended) return null;
  if (row.idle || row.parent_revoked) {
    await endSession(pool, verified.key, row.idle ? "idle timeout" : "API key revoked");
    return null;
  }
  await pool.query(`UPDATE api.console_sessions SET last_seen_at = now() WHERE key_id = $1`, [
    verified.key.id,
  ]);
  return { key: verified.key, plaintext: cookie, csrf: csrfTokenOf(cookie) };
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
