/** `custody-node apikeys create|revoke|list` as a real process against a real database. */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfigPath } from "../foundation/config.js";
import { createTestDatabase, type TestDatabase } from "../ops/testing/database.js";
import { spawnCli } from "../ops/testing/process.js";
import { verifyApiKey } from "./apiKeys.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function cli(args: string[], env: Record<string, string> = {}) {
  const p = spawnCli(args, { DATABASE_URL: db.url, LOG_LEVEL: "silent", ...env });
  const { code } = await p.exited;
  return { code, out: p.output() };
}

describe("custody-node apikeys", () => {
  it("creates a key shown once (stored hashed), lists it, revokes it, and audits both", async () => {
    const created = await cli([
      "apikeys",
      "create",
      "--owner",
      "treasury-anna",
      "--scopes",
      "withdrawals:approve,ledger:read",
      "--json",
    ]);
    expect(created.code).toBe(0);
    const key = JSON.parse(created.out.trim().split("\n").at(-1)!);
    expect(key).toMatchObject({
      owner: "treasury-anna",
      scopes: ["withdrawals:approve", "ledger:read"],
    });
    const verified = await verifyApiKey(db.pool, key.key);
    expect(verified).toMatchObject({ ok: true, key: { id: key.id } });
    const { rows } = await db.pool.query("SELECT secret_hash FROM api.api_keys WHERE id = $1", [
      key.id,
    ]);
    // The secret is everything after `cn_<id>_` (base64url: it may hold `_` itself).
    const secret = key.key.slice(`cn_${key.id}_`.length);
    expect(secret).toHaveLength(43);
    expect(rows[0].secret_hash).not.toContain(secret);

    const listed = await cli(["apikeys", "list"]);
    expect(listed.out).toContain(
      `${key.id}  treasury-anna  withdrawals:approve,ledger:read  active`,
    );

    const revoked = await cli(["apikeys", "revoke", key.id]);
    expect(revoked.code).toBe(0);
    expect(await verifyApiKey(db.pool, key.key)).toEqual({ ok: false, reason: "revoked API key" });
    const audit = await db.pool.query(
      "SELECT action, actor FROM audit.audit_log WHERE entity_id = $1 ORDER BY id",
      [key.id],
    );
    expect(audit.rows).toEqual([
      { action: "apikey.created", actor: "cli" },
      { action: "apikey.revoked", actor: "cli" },
    ]);
  });

  it("refuses unknown scopes and unknown ids with a message and a non-zero exit", async () => {
    const bad = await cli(["apikeys", "create", "--owner", "x", "--scopes", "root"]);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain("unknown scope(s) root");
    const missing = await cli(["apikeys", "revoke", "0123456789abcdef"]);
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain("No API key 0123456789abcdef");
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM api.api_keys");
    expect(rows[0].n).toBe(1);
  });

  it("with console SSO configured, refuses an approving key without --email, and stores and lists it", async () => {
    const file = JSON.parse(readFileSync(defaultConfigPath, "utf8"));
    const sso = {
      CUSTODY_CONFIG_JSON: JSON.stringify({
        ...file,
        api: {
          ...file.api,
          console: {
            oidc: {
              issuer: "https://login.example.com",
              clientId: "custody-console",
              redirectUrl: "https://custody.example.com/console/sso/callback",
              groups: { "custody-approvers": ["withdrawals:approve"] },
            },
          },
        },
      }),
    };
    const count = async () =>
      (await db.pool.query("SELECT count(*)::int AS n FROM api.api_keys")).rows[0].n as number;
    const before = await count();
    for (const scopes of ["withdrawals:approve", "admin,ledger:read"]) {
      const refused = await cli(
        ["apikeys", "create", "--owner", "anna", "--scopes", scopes, "--json"],
        sso,
      );
      expect(refused.code, scopes).not.toBe(0);
      expect(refused.out).toContain("--email");
    }
    expect(await count()).toBe(before);
    // A key that cannot approve needs no person.
    const reader = await cli(
      ["apikeys", "create", "--owner", "bot", "--scopes", "ledger:read"],
      sso,
    );
    expect(reader.code).toBe(0);
    const created = await cli(
      [
        "apikeys",
        "create",
        "--owner",
        "anna",
        "--email",
        "Anna@Example.com",
        "--scopes",
        "withdrawals:approve",
        "--json",
      ],
      sso,
    );
    expect(created.code).toBe(0);
    const key = JSON.parse(created.out.trim().split("\n").at(-1)!);
    expect(key).toMatchObject({ owner: "anna", email: "anna@example.com" });
    const listed = await cli(["apikeys", "list"]);
    expect(listed.out).toContain(`${key.id}  anna <anna@example.com>  withdrawals:approve  active`);
    const bad = await cli(
      ["apikeys", "create", "--owner", "x", "--email", "not-an-email", "--scopes", "ledger:read"],
      sso,
    );
    expect(bad.code).not.toBe(0);
    expect(bad.out).toContain("email");
  });
});
