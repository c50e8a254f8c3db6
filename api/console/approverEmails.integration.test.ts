/**
 * Approving keys without a person (email) while console SSO is configured: the api role names them
 * in one warning at start (ids and owners, never secrets), and `custody-node apikeys set-email`
 * gives a key its person (audited), refusing an unknown, revoked or session key, a bad address or
 * an empty --by/--reason with the field named and nothing changed, and refusing a change of email
 * while the key requested or decided on a withdrawal still waiting for approvals (the change would
 * re-read that request or decision as another person's). Real Postgres, the real CLI process, and
 * anvil for the withdrawal.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealth } from "../../foundation/health.js";
import { createTestContext, type TestContext } from "../../ops/testing/context.js";
import { capturedLogger, type LogLine } from "../../ops/testing/logs.js";
import { spawnCli } from "../../ops/testing/process.js";
import { waitFor } from "../../ops/testing/wait.js";
import { createApiKey, revokeApiKey, setApiKeyEmail } from "../apiKeys.js";
import { buildApp } from "../app.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { createV1Plugin } from "../v1.js";

const OIDC = {
  issuer: "https://login.example.com",
  clientId: "custody-console",
  redirectUrl: "https://custody.example.com/console/sso/callback",
  groups: { "custody-approvers": ["withdrawals:approve"] },
};

/** Builds the app as the api role does, on `ctx`, and returns the log lines its start wrote. */
async function startLines(ctx: TestContext): Promise<LogLine[]> {
  const { logger, lines } = capturedLogger();
  const common = { ...ctx.common, logger };
  const app = await buildApp({
    common,
    health: createHealth(),
    plugins: [createV1Plugin({ common, pool: ctx.db.pool, redis: ctx.redis.redis })],
  });
  await app.ready();
  await app.close();
  return lines;
}

const personless = (lines: LogLine[]) =>
  lines.filter((l) => String(l.msg).includes("can approve but name no person"));

describe("approving keys without a person, with console SSO", () => {
  let sso: TestContext;
  let plain: TestContext;
  beforeAll(async () => {
    sso = await createTestContext({ file: { api: { console: { oidc: OIDC } } } });
    plain = await createTestContext();
  }, 120_000);
  afterAll(async () => {
    await sso?.cleanup();
    await plain?.cleanup();
  }, 180_000);

  async function cli(args: string[]) {
    const p = spawnCli(args, { DATABASE_URL: sso.db.url, LOG_LEVEL: "silent" });
    const { code } = await p.exited;
    return { code, out: p.output() };
  }

  it("names them at start, once, by id and owner, and set-email takes a key off the list", async () => {
    const pool = sso.db.pool;
    const anna = await createApiKey(pool, { owner: "anna", scopes: ["withdrawals:approve"] });
    const root = await createApiKey(pool, { owner: "root", scopes: ["admin"] });
    const ben = await createApiKey(pool, {
      owner: "ben",
      email: "ben@example.com",
      scopes: ["withdrawals:approve"],
    });
    const bot = await createApiKey(pool, { owner: "bot", scopes: ["ledger:read"] });
    const gone = await createApiKey(pool, { owner: "gone", scopes: ["withdrawals:approve"] });
    await revokeApiKey(pool, gone.key.id);

    const warned = personless(await startLines(sso));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({
      level: 40,
      keys: [`${anna.key.id} (anna)`, `${root.key.id} (root)`],
    });
    const text = JSON.stringify(warned[0]);
    for (const other of [ben, bot, gone]) expect(text).not.toContain(other.key.id);
    for (const secret of [anna, root]) expect(text).not.toContain(secret.plaintext.slice(20));

    // The same keys on a service without SSO: their decisions are not refused, nothing to say.
    await createApiKey(plain.db.pool, { owner: "anna", scopes: ["withdrawals:approve"] });
    expect(personless(await startLines(plain))).toEqual([]);

    const set = await cli([
      "apikeys",
      "set-email",
      "--id",
      anna.key.id,
      "--email",
      " Anna@Example.com ",
      "--by",
      "ops-carol",
      "--reason",
      "anna confirmed the key is hers",
    ]);
    expect(set.code, set.out).toBe(0);
    expect(set.out).toContain(`${anna.key.id}  anna <anna@example.com>`);
    const listed = await cli(["apikeys", "list"]);
    expect(listed.out).toContain(`${anna.key.id}  anna <anna@example.com>  withdrawals:approve`);
    const audit = await pool.query(
      "SELECT actor, details FROM audit.audit_log WHERE action = 'apikey.email_set' AND entity_id = $1",
      [anna.key.id],
    );
    expect(audit.rows).toEqual([
      {
        actor: "ops-carol",
        details: {
          owner: "anna",
          from: null,
          to: "anna@example.com",
          reason: "anna confirmed the key is hers",
        },
      },
    ]);
    expect(personless(await startLines(sso))[0]).toMatchObject({
      keys: [`${root.key.id} (root)`],
    });
  }, 120_000);

  it("refuses an unknown or revoked key, a bad address and an empty --by/--reason, naming the field and changing nothing", async () => {
    const pool = sso.db.pool;
    const key = await createApiKey(pool, { owner: "dora", scopes: ["withdrawals:approve"] });
    const revoked = await createApiKey(pool, { owner: "ed", scopes: ["withdrawals:approve"] });
    await revokeApiKey(pool, revoked.key.id);
    const base = { by: "ops-carol", reason: "checked" };
    const refusals: [Parameters<typeof setApiKeyEmail>[1], RegExp][] = [
      [{ ...base, id: "0123456789abcdef", email: "x@example.com" }, /^--id: no API key/],
      [{ ...base, id: revoked.key.id, email: "ed@example.com" }, /^--id: .* is revoked/],
      [{ ...base, id: key.key.id, email: "dora" }, /^--email: email must be one address/],
      [{ ...base, id: key.key.id, email: "dora@example.com", by: " " }, /^--by: /],
      [{ ...base, id: key.key.id, email: "dora@example.com", reason: "" }, /^--reason: /],
    ];
    for (const [args, message] of refusals)
      await expect(setApiKeyEmail(pool, args), JSON.stringify(args)).rejects.toMatchObject({
        code: "APIKEY_EMAIL_CHANGE_REFUSED",
        message: expect.stringMatching(message),
      });
    const cliRefused = await cli([
      "apikeys",
      "set-email",
      "--id",
      revoked.key.id,
      "--email",
      "ed@example.com",
      "--by",
      "ops-carol",
      "--reason",
      "checked",
    ]);
    expect(cliRefused.code).not.toBe(0);
    expect(cliRefused.out).toContain("--id:");
    const { rows } = await pool.query(
      "SELECT id, email FROM api.api_keys WHERE id = ANY($1) ORDER BY id",
      [[key.key.id, revoked.key.id]],
    );
    expect(rows.every((r) => r.email === null)).toBe(true);
    const audit = await pool.query(
      "SELECT count(*)::int AS n FROM audit.audit_log WHERE entity_id = ANY($1) AND action = 'apikey.email_set'",
      [[key.key.id, revoked.key.id]],
    );
    expect(audit.rows[0].n).toBe(0);
  }, 120_000);
});

describe("set-email and withdrawals waiting for approvals", () => {
  const ETH = 10n ** 18n;
  let t: WithdrawalApiTestContext;
  beforeAll(async () => {
    t = await createWithdrawalApiTestContext({
      policy: {
        perTransaction: 10n * ETH,
        rolling24h: 100n * ETH,
        approvalThreshold: ETH,
        requiredApprovals: 3,
      },
      fund: { customers: ["carol"], amount: 10n * ETH },
    });
  }, 120_000);
  afterAll(async () => {
    await t?.cleanup();
  }, 180_000);

  it("refuses changing the person of a key that requested or decided on one, until it is decided", async () => {
    const pool = t.ctx.db.pool;
    const requester = await createApiKey(pool, {
      owner: "backend",
      email: "anna@example.com",
      scopes: ["withdrawals:write"],
    });
    const approver = await createApiKey(pool, {
      owner: "ben",
      email: "ben@example.com",
      scopes: ["withdrawals:approve"],
    });
    const nobody = await createApiKey(pool, { owner: "cleo", scopes: ["withdrawals:approve"] });
    const w = await t.withdrawNative(requester.plaintext, "carol", 2n * ETH);
    expect(w.status).toBe("pending_approval");
    for (const k of [approver, nobody]) {
      const res = await t.call(k.plaintext, {
        method: "POST",
        url: `/v1/withdrawals/${w.id}/approve`,
        headers: { "idempotency-key": `approve-${k.key.id}` },
        payload: {},
      });
      expect(res.statusCode, res.body).toBe(200);
    }
    const args = { by: "ops-carol", reason: "key handed over" };
    // Anna's request re-read as Ben's would let Anna approve it herself (through SSO); Ben's
    // approval re-read as Dan's would let Ben approve again through his own SSO session.
    for (const [key, email] of [
      [requester, "ben@example.com"],
      [approver, "dan@example.com"],
    ] as const)
      await expect(setApiKeyEmail(pool, { ...args, id: key.key.id, email })).rejects.toMatchObject({
        code: "APIKEY_EMAIL_CHANGE_REFUSED",
        message: expect.stringContaining(w.id),
      });
    const emails = await pool.query("SELECT id, email FROM api.api_keys WHERE id = ANY($1)", [
      [requester.key.id, approver.key.id],
    ]);
    expect(Object.fromEntries(emails.rows.map((r) => [r.id, r.email]))).toEqual({
      [requester.key.id]: "anna@example.com",
      [approver.key.id]: "ben@example.com",
    });
    // A key that had no person gains one: it only joins more deciders into one person.
    expect(
      (await setApiKeyEmail(pool, { ...args, id: nobody.key.id, email: "cleo@example.com" }))
        .changed,
    ).toBe(true);
    // Once the withdrawal is decided, its decisions are never counted again.
    const rejected = await t.call(t.keys["withdrawals:approve"], {
      method: "POST",
      url: `/v1/withdrawals/${w.id}/reject`,
      headers: { "idempotency-key": "reject-it" },
      payload: { reason: "test" },
    });
    expect(rejected.statusCode, rejected.body).toBe(200);
    expect(
      (await setApiKeyEmail(pool, { ...args, id: approver.key.id, email: "dan@example.com" }))
        .changed,
    ).toBe(true);
  }, 180_000);

  it("waits for a decision in flight under the key, then sees it and refuses", async () => {
    const pool = t.ctx.db.pool;
    const requester = await createApiKey(pool, {
      owner: "backend-2",
      email: "fay@example.com",
      scopes: ["withdrawals:write"],
    });
    const approver = await createApiKey(pool, {
      owner: "gil",
      email: "gil@example.com",
      scopes: ["withdrawals:approve"],
    });
    const w = await t.withdrawNative(requester.plaintext, "carol", 2n * ETH);
    // A decision's transaction as decide() runs it: the caller's key row held FOR SHARE, its
    // approval written, not committed yet.
    const decision = await pool.connect();
    try {
      await decision.query("BEGIN");
      await decision.query("SELECT email FROM api.api_keys WHERE id = $1 FOR SHARE", [
        approver.key.id,
      ]);
      await decision.query(
        `INSERT INTO api.withdrawal_approvals (withdrawal_id, approver, api_key_id, decision)
         VALUES ($1, 'gil', $2, 'approve')`,
        [w.id, approver.key.id],
      );
      const change = setApiKeyEmail(pool, {
        id: approver.key.id,
        email: "hal@example.com",
        by: "ops-carol",
        reason: "key handed over",
      }).then(
        () => "changed",
        (error: { code?: string }) => error.code,
      );
      await waitFor("set-email waiting for the key's row", async () => {
        const { rows } = await pool.query(
          `SELECT 1 FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND query LIKE '%FOR UPDATE OF k%'`,
        );
        return rows.length > 0;
      });
      await decision.query("COMMIT");
      expect(await change).toBe("APIKEY_EMAIL_CHANGE_REFUSED");
    } finally {
      decision.release();
    }
    const { rows } = await pool.query("SELECT email FROM api.api_keys WHERE id = $1", [
      approver.key.id,
    ]);
    expect(rows[0].email).toBe("gil@example.com");
  }, 180_000);
});
