/**
 * API keys: `cn_<id>_<secret>`. Only SHA-256(secret) is stored; the full key is shown once, at
 * creation. Scopes gate routes; `admin` implies every scope. `owner` names the person or service
 * behind the key; `email`, when set, names the person (the same one as an SSO sign-in with that
 * email): approvals count distinct persons (`personsAmong`).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { appendAudit } from "../foundation/audit.js";
import { type Pool, type PoolClient, withTransaction } from "../foundation/db.js";
import { ApiKeyEmailChangeRefusedError } from "./errors.js";

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
  /** The person behind the key (normalised), or null: then the owner alone names them. */
  email: string | null;
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
  /** Absent in rows of the previous revision's `RETURNING *` during a rolling deploy: none. */
  email?: string | null;
  description: string;
  scopes: string[];
  secret_hash: string;
  created_at: Date;
  revoked_at: Date | null;
};

/**
 * A key owner's identity: Unicode NFKC, case-folded, trimmed, so `anna`, ` ANNA ` and fullwidth
 * `ａｎｎａ` are one approver (approvals count distinct persons: `personsAmong`).
 */
export function normalizeOwner(owner: string): string {
  return owner.normalize("NFKC").toLowerCase().normalize("NFKC").trim();
}

/**
 * Whose Idempotency-Keys a key's requests use (api/idempotency.ts): its owner, the service or
 * person the key belongs to, not the key itself, so a retry under a rotated key (old and new both
 * valid during the rotation) is the same request, answered once, never a second withdrawal.
 */
export function principalOf(key: Pick<ApiKey, "owner">): string {
  return normalizeOwner(key.owner);
}

/** An email as a person's identity (normalised as owners are), or why it is not one. */
export function parseEmail(value: string): string {
  const email = normalizeOwner(value);
  if (email.length < 3 || email.length > 254 || !/^[^@\s]+@[^@\s]+$/.test(email))
    throw new TypeError(`email must be one address like anna@example.com (got "${value}")`);
  return email;
}

/**
 * The identities a decision is known by: the owner, and the person's email when known. Two
 * deciders sharing either are one person (approvals count persons; the requester is a person too).
 */
export function identitiesOf(k: { owner: string; email?: string | null }): string[] {
  const owner = normalizeOwner(k.owner);
  return k.email ? [owner, normalizeOwner(k.email)] : [owner];
}

/**
 * Who is one person among these keys: two sharing an owner or an email are one, and so are two
 * sharing neither that others join (`a` and `c` through `b`, who shares an identity with each).
 * Returns each key's person: the one identity its group is known by (a key not among `keys`: its
 * own owner's group, or its owner alone).
 */
export function personsAmong(keys: readonly { owner: string; email?: string | null }[]) {
  const parent = new Map<string, string>();
  const root = (identity: string): string => {
    let r = identity;
    for (let up = parent.get(r); up !== undefined; up = parent.get(r)) r = up;
    return r;
  };
  for (const k of keys) {
    const [first, ...rest] = identitiesOf(k).map(root);
    for (const r of rest) if (r !== first) parent.set(r, first!);
  }
  return (k: { owner: string }) => root(normalizeOwner(k.owner));
}

function fromRow(row: Row): ApiKey {
  return {
    id: row.id,
    // Keys stored before owners were normalised are read as their normalised identity.
    owner: normalizeOwner(row.owner),
    email: row.email ?? null,
    description: row.description,
    scopes: row.scopes as Scope[],
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

/** Creates a key and returns it with its plaintext (shown once, never stored). */
export async function createApiKey(
  db: Pool | PoolClient,
  input: {
    owner: string;
    scopes: readonly string[];
    description?: string;
    /** The person behind the key (absent: the owner alone names them). */
    email?: string | null | undefined;
  },
): Promise<{ key: ApiKey; plaintext: string }> {
  const scopes = parseScopes(input.scopes);
  const owner = normalizeOwner(input.owner);
  if (!owner || owner.length > 100) throw new TypeError("owner must be 1-100 chars");
  const email = input.email ? parseEmail(input.email) : null;
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const { rows } = await db.query<Row>(
    `INSERT INTO api.api_keys (id, owner, email, description, secret_hash, scopes)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [id, owner, email, input.description ?? "", hashSecret(secret), scopes],
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

/**
 * Sets the person (email) behind a key: `custody-node apikeys set-email`, audited
 * (`apikey.email_set`: who, why, from, to). Refused, changing nothing, for an unknown or revoked
 * key, a console session's key (it carries its parent's or its SSO sign-in's email), an address
 * that is not one, and for a change that drops the key's earlier email while it requested or
 * decided on a withdrawal still waiting for approvals.
 *
 * Why a person cannot approve their own request (or approve twice) through a change: decisions
 * compare persons at decision time, reading the requester's and earlier deciders' emails from their
 * key rows as they are then (api/withdrawals/decisions.ts). A change that only adds an identity (no
 * email before) joins more deciders into one person, never fewer, so it is always safe. A change
 * from one email to another would make the key's past request or decision on a pending withdrawal
 * read as someone else (Anna's request re-read as Ben's lets Anna approve it through SSO): refused
 * while any such withdrawal waits. The key row is held FOR UPDATE to the end; a decision holds its
 * caller's key row FOR SHARE and reads the email under it, so a decision is either committed before
 * this check (and seen by it) or made with the new email; a withdrawal settled (approved, rejected,
 * cancelled) is not decided on again, so its old decisions are never recounted.
 */
export async function setApiKeyEmail(
  pool: Pool,
  args: { id: string; email: string; by: string; reason: string },
): Promise<{ key: ApiKey; previous: string | null; changed: boolean }> {
  let email: string;
  try {
    email = parseEmail(args.email);
  } catch (error) {
    throw new ApiKeyEmailChangeRefusedError("email", (error as Error).message);
  }
  const by = args.by.trim();
  const reason = args.reason.trim();
  if (!by) throw new ApiKeyEmailChangeRefusedError("by", "must name the operator (not empty)");
  if (!reason) throw new ApiKeyEmailChangeRefusedError("reason", "must say why (not empty)");
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<Row & { session: boolean }>(
      `SELECT k.*, EXISTS (SELECT 1 FROM api.console_sessions s WHERE s.key_id = k.id) AS session
         FROM api.api_keys k WHERE k.id = $1 FOR UPDATE OF k`,
      [args.id],
    );
    const row = rows[0];
    if (!row) throw new ApiKeyEmailChangeRefusedError("id", `no API key ${args.id}`);
    if (row.revoked_at)
      throw new ApiKeyEmailChangeRefusedError(
        "id",
        `API key ${args.id} is revoked (since ${row.revoked_at.toISOString()}): create a new one with --email`,
      );
    if (row.session)
      throw new ApiKeyEmailChangeRefusedError(
        "id",
        `${args.id} is a console session's key: it carries the email of the key or SSO sign-in it came from; set the email of that key`,
      );
    const previous = row.email ?? null;
    if (previous === email) return { key: fromRow(row), previous, changed: false };
    if (previous !== null) {
      // Taken after the key's row, as a decision takes its shared form after its caller's row:
      // a decision by another key of this person is committed before this check or sees the change.
      await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [PERSONS_LOCK]);
      const waiting = await waitingOnPersonOf(client, args.id, row);
      if (waiting.length > 0)
        throw new ApiKeyEmailChangeRefusedError(
          "id",
          `API key ${args.id} (${previous}) or another key of its person requested or decided on withdrawals still waiting for approvals (${waiting.join(", ")}): changing its person now would re-read those as another person's; retry once they are decided, or create a new key with --email`,
        );
    }
    const { rows: updated } = await client.query<Row>(
      "UPDATE api.api_keys SET email = $2 WHERE id = $1 RETURNING *",
      [args.id, email],
    );
    await appendAudit(client, {
      actor: by,
      action: "apikey.email_set",
      entityType: "api_key",
      entityId: args.id,
      details: { owner: normalizeOwner(row.owner), from: previous, to: email, reason },
    });
    return { key: fromRow(updated[0]!), previous, changed: true };
  });
}

/**
 * Decisions hold this advisory lock shared while they compare persons, and `setApiKeyEmail` holds
 * it exclusively while it checks and changes one: a change cannot slip between a decision by
 * another key of the person and its commit.
 */
export const PERSONS_LOCK = "api.persons";

/**
 * What every key, revoked or not, says about persons: its owner and its email are one. A revoked
 * key still counts: the person it named did not change when it was rotated out, and leaving it out
 * would split `anna` (no email) from `anna.smith` <anna@…> once the `anna` <anna@…> key that joined
 * them is revoked, letting Anna approve what she requested (approvals count persons).
 */
export async function personLinks(
  db: Pool | PoolClient,
): Promise<{ owner: string; email: string | null }[]> {
  const { rows } = await db.query<{ owner: string; email: string | null }>(
    "SELECT DISTINCT owner, email FROM api.api_keys WHERE email IS NOT NULL",
  );
  return rows;
}

/**
 * The withdrawals still waiting for approvals (up to 5 ids) that this key, or another key of its
 * person, requested or decided on, counting persons as a decision on each does
 * (api/withdrawals/decisions.ts `personsOf`: every key's links, and the parties' own). Not only
 * the key's own: a key that joins two of a person's identities (`anna` with no email and
 * `anna.smith` <anna@…>, through `anna` <anna@…>) re-pointed to another email would split them,
 * letting Anna approve what she requested under her `anna` key.
 */
async function waitingOnPersonOf(
  client: PoolClient,
  id: string,
  key: { owner: string; email?: string | null },
): Promise<string[]> {
  const { rows: parties } = await client.query<{
    withdrawal_id: string;
    key_id: string;
    owner: string;
    email: string | null;
  }>(
    `SELECT w.id::text AS withdrawal_id, w.api_key_id AS key_id, w.requested_by AS owner, k.email
       FROM api.withdrawals w LEFT JOIN api.api_keys k ON k.id = w.api_key_id
      WHERE w.status = 'pending_approval'
     UNION ALL
     SELECT w.id::text, a.api_key_id, a.approver, k.email
       FROM api.withdrawals w JOIN api.withdrawal_approvals a ON a.withdrawal_id = w.id
       LEFT JOIN api.api_keys k ON k.id = a.api_key_id
      WHERE w.status = 'pending_approval'`,
  );
  if (parties.length === 0) return [];
  const personOf = personsAmong([...(await personLinks(client)), key, ...parties]);
  const mine = personOf(key);
  const waiting = new Set(
    parties.filter((p) => p.key_id === id || personOf(p) === mine).map((p) => p.withdrawal_id),
  );
  return [...waiting].sort().slice(0, 5);
}

export async function listApiKeys(db: Pool | PoolClient): Promise<ApiKey[]> {
  const { rows } = await db.query<Row>(`SELECT * FROM api.api_keys ORDER BY created_at, id`);
  return rows.map(fromRow);
}

/**
 * Active keys that can approve (`withdrawals:approve` or `admin`) but name no person (no email):
 * with console SSO configured each of their decisions is refused (APPROVER_PERSON_UNKNOWN), so the
 * api role names them at start. A console session's key is left out: it copies its parent key's
 * email (or the SSO sign-in's) and ends with its session; the parent is what an operator fixes.
 */
export async function approvingKeysWithoutEmail(
  db: Pool | PoolClient,
): Promise<{ id: string; owner: string; description: string }[]> {
  const { rows } = await db.query<{ id: string; owner: string; description: string }>(
    `SELECT k.id, k.owner, k.description FROM api.api_keys k
      WHERE k.revoked_at IS NULL AND k.email IS NULL
        AND k.scopes && ARRAY['withdrawals:approve', 'admin']::text[]
        AND NOT EXISTS (SELECT 1 FROM api.console_sessions s WHERE s.key_id = k.id)
      ORDER BY k.created_at, k.id`,
  );
  return rows.map((r) => ({ ...r, owner: normalizeOwner(r.owner) }));
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
): Promise<
  | {
      ok: true;
      key: ApiKey;
      /**
       * An SSO console session's key: the groups it signed in with (api/auth.ts maps them), and
       * how long ago the provider gave them (its sign-in, by the database's clock).
       */
      sso: { groups: unknown; ageMs: number } | null;
    }
  | { ok: false; reason: string }
> {
  const match = KEY_FORMAT.exec(plaintext);
  if (!match) return { ok: false, reason: "malformed API key" };
  const { rows } = await db.query<
    Row & { console_session_over: boolean; sso: boolean; oidc_groups: unknown; sso_age_ms: number }
  >(
    `SELECT k.*, COALESCE(s.ended_at IS NOT NULL OR s.idle_expires_at <= now()
                          OR s.expires_at <= now() OR p.revoked_at IS NOT NULL, false)
                 AS console_session_over,
            COALESCE(s.oidc_issuer IS NOT NULL, false) AS sso, s.oidc_groups,
            EXTRACT(EPOCH FROM now() - s.created_at)::float8 * 1000 AS sso_age_ms
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
  return {
    ok: true,
    key: fromRow(row),
    sso: row.sso ? { groups: row.oidc_groups ?? null, ageMs: row.sso_age_ms } : null,
  };
}
