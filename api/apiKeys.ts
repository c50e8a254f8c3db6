/**
 * API keys: `cn_<id>_<secret>`. Only SHA-256(secret) is stored; the full key is shown once, at
 * creation. Scopes gate routes; `admin` implies every scope. `owner` names the person or service
 * behind the key (approvals count distinct owners).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Pool, PoolClient } from "../foundation/db.js";

export const SCOPES = [
  "deposits:read",
  "deposits:write",
  "withdrawals:write",
  "withdrawals:approve",
  "ledger:read",
  "recon:read",
  "admin",
] as const;
export type Scope = (typeof SCOPES)[number];

export type ApiKey = {
  id: string;
  owner: string;
  description: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
};

const KEY_FORMAT = /^cn_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function parseScopes(values: readonly string[]): Scope[] {
  const bad = values.filter((v) => !(SCOPES as readonly string[]).includes(v));
  if (bad.length > 0 || values.length === 0)
    throw new TypeError(
      `unknown scope(s) ${bad.join(", ") || "(none given)"}; valid: ${SCOPES.join(", ")}`,
    );
  return [...new Set(values)] as Scope[];
}

export function hasScope(key: Pick<ApiKey, "scopes">, scope: Scope): boolean {
  return key.scopes.includes("admin") || key.scopes.includes(scope);
}

type Row = {
  id: string;
  owner: string;
  description: string;
  scopes: string[];
  secret_hash: string;
  created_at: Date;
  revoked_at: Date | null;
};

/**
 * A key owner's identity: Unicode NFKC, case-folded, trimmed, so `anna`, ` ANNA ` and fullwidth
 * `ａｎｎａ` are one approver (approvals count distinct owners; the requester cannot approve).
 */
export function normalizeOwner(owner: string): string {
  return owner.normalize("NFKC").toLowerCase().normalize("NFKC").trim();
}

function fromRow(row: Row): ApiKey {
  return {
    id: row.id,
    // Keys stored before owners were normalised are read as their normalised identity.
    owner: normalizeOwner(row.owner),
    description: row.description,
    scopes: row.scopes as Scope[],
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

/** Creates a key and returns it with its plaintext (shown once, never stored). */
export async function createApiKey(
  db: Pool | PoolClient,
  input: { owner: string; scopes: readonly string[]; description?: string },
): Promise<{ key: ApiKey; plaintext: string }> {
  const scopes = parseScopes(input.scopes);
  const owner = normalizeOwner(input.owner);
  if (!owner || owner.length > 100) throw new TypeError("owner must be 1-100 chars");
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const { rows } = await db.query<Row>(
    `INSERT INTO api.api_keys (id, owner, description, secret_hash, scopes)
     VALUES ($1, $2, $3, $4, $5) RETURNING *`,
    [id, owner, input.description ?? "", hashSecret(secret), scopes],
  );
  return { key: fromRow(rows[0]!), plaintext: `cn_${id}_${secret}` };
}

/** Revokes a key (idempotent). Returns false when no such key exists. */
export async function revokeApiKey(db: Pool | PoolClient, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE api.api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1`,
    [id],
  );
  return (rowCount ?? 0) > 0;
}

export async function listApiKeys(db: Pool | PoolClient): Promise<ApiKey[]> {
  const { rows } = await db.query<Row>(`SELECT * FROM api.api_keys ORDER BY created_at, id`);
  return rows.map(fromRow);
}

/**
 * The active key for a presented plaintext, or a reason it is not acceptable. A console session's
 * key (api/console/sessions.ts) is refused once its session is over (ended, idle past its slid
 * deadline, past its absolute end, or the key it was signed in with revoked: revoking is effective
 * at once for its sessions too), even before the console notices; the console itself passes
 * `consoleSessionOver: "accept"` to end such a session properly.
 */
export async function verifyApiKey(
  db: Pool | PoolClient,
  plaintext: string,
  options: { consoleSessionOver?: "refuse" | "accept" } = {},
): Promise<{ ok: true; key: ApiKey } | { ok: false; reason: string }> {
  const match = KEY_FORMAT.exec(plaintext);
  if (!match) return { ok: false, reason: "malformed API key" };
  const { rows } = await db.query<Row & { console_session_over: boolean }>(
    `SELECT k.*, COALESCE(s.ended_at IS NOT NULL OR s.idle_expires_at <= now()
                          OR s.expires_at <= now() OR p.revoked_at IS NOT NULL, false)
                 AS console_session_over
       FROM api.api_keys k LEFT JOIN api.console_sessions s ON s.key_id = k.id
       LEFT JOIN api.api_keys p ON p.id = s.signed_in_with
      WHERE k.id = $1`,
    [match[1]],
  );
  const row = rows[0];
  // Compare hashes in constant time even for an unknown id, so timing says nothing about ids.
  const expected = Buffer.from(row?.secret_hash ?? "0".repeat(64), "hex");
  const actual = Buffer.from(hashSecret(match[2]!), "hex");
  if (!row || !timingSafeEqual(expected, actual)) return { ok: false, reason: "unknown API key" };
  if (row.revoked_at) return { ok: false, reason: "revoked API key" };
  if (row.console_session_over && options.consoleSessionOver !== "accept")
    return { ok: false, reason: "console session ended (idle, expired or signed out)" };
  return { ok: true, key: fromRow(row) };
}
