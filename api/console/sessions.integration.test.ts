/**
 * Console sessions through the HTTP surface (inject, real Postgres): sign-in needs its CSRF token
 * and a valid key; an idle session ends (key revoked, back to sign-in); /v1 refuses an idle or
 * expired session's key on its own, before the console notices; a revoked signing-in key ends its
 * sessions (refused on /v1 at once); a session's own key cannot sign in; a foreign cookie that does
 * not decode is ignored; the audit page checks the log against the heads runs recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendAudit, readAuditHead } from "../../foundation/audit.js";
import { revokeApiKey } from "../apiKeys.js";
import { type ApiTestContext, createApiTestContext } from "../testing/apiTestContext.js";
import { SESSION_COOKIE } from "./plugin.js";
import { consoleGet, consoleSignIn } from "./testing/inject.js";

let t: ApiTestContext;
beforeAll(async () => {
  t = await createApiTestContext();
});
afterAll(async () => {
  await t?.cleanup();
});

const signIn = (key: string) => consoleSignIn(t.app, key);
const get = (session: string, url: string) => consoleGet(t.app, session, url);

describe("console sessions", () => {
  it("refuses sign-in without its CSRF token or with a bad key, and changes nothing", async () => {
    const before = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.console_sessions");
    const noToken = await t.app.inject({
      method: "POST",
      url: "/console/sign-in",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: new URLSearchParams({ apiKey: t.keys.admin }).toString(),
    });
    expect(noToken.statusCode).toBe(403);
    expect(noToken.body).toContain("CONSOLE_CSRF");
    const bad = await signIn("cn_0000000000000000_nope");
    expect(bad.res.statusCode).toBe(401);
    expect(bad.session).toBeUndefined();
    const after = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.console_sessions");
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it("ends an idle session: its key is revoked and the browser goes back to sign-in", async () => {
    const { res, session } = await signIn(t.keys["recon:read"]);
    expect(res.statusCode).toBe(303);
    expect(res.headers["set-cookie"]).toEqual(
      expect.arrayContaining([expect.stringMatching(/HttpOnly; SameSite=Strict/)]),
    );
    expect((await get(session!, "/console/recon")).statusCode).toBe(200);
    // 16 minutes without a request (default idle timeout 15)
    await t.ctx.db.pool.query(
      "UPDATE api.console_sessions SET last_seen_at = now() - interval '16 minutes' WHERE key_id = $1",
      [session!.split("_")[1]],
    );
    const idle = await get(session!, "/console/recon");
    expect(idle.statusCode).toBe(303);
    expect(idle.headers.location).toBe("/console/sign-in");
    const row = await t.ctx.db.pool.query(
      "SELECT ended_reason FROM api.console_sessions WHERE key_id = $1",
      [session!.split("_")[1]],
    );
    expect(row.rows[0].ended_reason).toBe("idle timeout");
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(401);
  });

  it("refuses an idle session's key on /v1 before the console has seen it idle", async () => {
    const { session } = await signIn(t.keys["recon:read"]);
    const keyId = session!.split("_")[1];
    // A console request slides the idle deadline; /v1 takes the session key directly meanwhile.
    expect((await get(session!, "/console/recon")).statusCode).toBe(200);
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(200);
    const { rows } = await t.ctx.db.pool.query(
      `SELECT idle_expires_at > now() + interval '14 minutes' AS slid FROM api.console_sessions
        WHERE key_id = $1`,
      [keyId],
    );
    expect(rows[0].slid).toBe(true);
    // 16 minutes pass with no console request: no one touches the session row but the clock.
    await t.ctx.db.pool.query(
      `UPDATE api.console_sessions SET last_seen_at = now() - interval '16 minutes',
              idle_expires_at = now() - interval '1 minute' WHERE key_id = $1`,
      [keyId],
    );
    const refused = await t.call(session!, { method: "GET", url: "/v1/recon/runs" });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().detail).toMatch(/console session ended/);
    // The console, seeing it next, ends it properly (reason, audit) and still refuses.
    expect((await get(session!, "/console/recon")).statusCode).toBe(303);
    const ended = await t.ctx.db.pool.query(
      `SELECT s.ended_reason, (SELECT count(*)::int FROM audit.audit_log a
                                WHERE a.entity_id = s.key_id AND a.action = 'console.signed_out') AS outs
         FROM api.console_sessions s WHERE s.key_id = $1`,
      [keyId],
    );
    expect(ended.rows[0]).toEqual({ ended_reason: "idle timeout", outs: 1 });
    // An ordinary API key (no session row) is untouched by any of this.
    expect(
      (await t.call(t.keys["recon:read"], { method: "GET", url: "/v1/recon/runs" })).statusCode,
    ).toBe(200);
  });

  it("refuses a session's key on /v1 past its absolute end", async () => {
    const { session } = await signIn(t.keys["recon:read"]);
    const keyId = session!.split("_")[1];
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(200);
    await t.ctx.db.pool.query(
      "UPDATE api.console_sessions SET expires_at = now() - interval '1 second' WHERE key_id = $1",
      [keyId],
    );
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(401);
    expect((await get(session!, "/console/recon")).statusCode).toBe(303);
    const ended = await t.ctx.db.pool.query(
      "SELECT ended_reason FROM api.console_sessions WHERE key_id = $1",
      [keyId],
    );
    expect(ended.rows[0].ended_reason).toBe("session expired");
  });

  it("gives an API-key session an absolute end (8 h by default) that activity does not move", async () => {
    const { res, session } = await signIn(t.keys["recon:read"]);
    const keyId = session!.split("_")[1];
    expect(res.headers["set-cookie"]).toEqual(
      expect.arrayContaining([expect.stringMatching(/^cn_console=.*; Max-Age=28800(;|$)/)]),
    );
    const endOf = async () =>
      (
        await t.ctx.db.pool.query<{ left_s: number }>(
          `SELECT extract(epoch FROM expires_at - now())::float8 AS left_s
             FROM api.console_sessions WHERE key_id = $1`,
          [keyId],
        )
      ).rows[0]!.left_s;
    const left = await endOf();
    expect(left).toBeGreaterThan(8 * 3600 - 60);
    expect(left).toBeLessThanOrEqual(8 * 3600);
    // Seven hours and 59 minutes of use later (the end moved back as the clock would), one more
    // request slides the idle deadline but not the end: a minute later it is over.
    await t.ctx.db.pool.query(
      `UPDATE api.console_sessions SET created_at = created_at - interval '479 minutes',
              expires_at = expires_at - interval '479 minutes' WHERE key_id = $1`,
      [keyId],
    );
    expect((await get(session!, "/console/recon")).statusCode).toBe(200);
    expect(await endOf()).toBeLessThanOrEqual(60);
    await t.ctx.db.pool.query(
      "UPDATE api.console_sessions SET expires_at = expires_at - interval '1 minute' WHERE key_id = $1",
      [keyId],
    );
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(401);
    expect((await get(session!, "/console/recon")).statusCode).toBe(303);
  });

  it("ends the sessions of a key that is revoked", async () => {
    const key = await t.newKey("ops-dora", ["recon:read"]);
    const { session } = await signIn(key);
    expect((await get(session!, "/console/recon")).statusCode).toBe(200);
    await revokeApiKey(t.ctx.db.pool, key.split("_")[1]!);
    const after = await get(session!, "/console/recon");
    expect(after.statusCode).toBe(303);
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(401);
  });

  it("a revoked key's sessions are refused on /v1 at once, with no console request in between", async () => {
    const key = await t.newKey("ops-mallory", ["recon:read"]);
    const { session } = await signIn(key);
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(200);
    await revokeApiKey(t.ctx.db.pool, key.split("_")[1]!);
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(401);
  });

  it("a session's key cannot sign in (a session of a session would outlive both), and changes nothing", async () => {
    const key = await t.newKey("ops-eve", ["recon:read"]);
    const { session } = await signIn(key);
    const before = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.console_sessions");
    const again = await signIn(session!);
    expect(again.res.statusCode).toBe(401);
    expect(again.res.body).toContain("cannot sign in");
    expect(again.session).toBeUndefined();
    const after = await t.ctx.db.pool.query("SELECT count(*)::int AS n FROM api.console_sessions");
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it("a cookie of the host that is not percent-encoded is ignored, not a 500", async () => {
    const { session } = await signIn(t.keys.admin);
    const res = await t.app.inject({
      method: "GET",
      url: "/console/recon",
      headers: { cookie: `other=%E0%A4%A; ${SESSION_COOKIE}=${encodeURIComponent(session!)}` },
    });
    expect(res.statusCode).toBe(200);
    const signInPage = await t.app.inject({
      method: "GET",
      url: "/console/sign-in",
      headers: { cookie: "other=%E0%A4%A" },
    });
    expect(signInPage.statusCode).toBe(200);
  });

  // Last in this file: it cuts the audit log.
  it("the audit page checks the chain against the heads reconciliation runs recorded (rows cut from the end)", async () => {
    const pool = t.ctx.db.pool;
    const { session } = await signIn(t.keys.admin);
    const keep = (await readAuditHead(pool))!.seq;
    for (let i = 0; i < 3; i++)
      await appendAudit(pool, {
        actor: "ops",
        action: "withdrawal.approved_by",
        entityType: "withdrawal",
        entityId: `w-${i}`,
      });
    // A completed reconciliation run records the head, as each one does.
    const head = (await readAuditHead(pool))!;
    await pool.query(
      `INSERT INTO recon.runs (chain_id, block_number, mode, status, audit_head)
       VALUES (31337, 1, 'full', 'completed', $1)`,
      [{ seq: head.seq, hash: head.hash }],
    );
    expect((await get(session!, "/console/audit")).body).toContain("Hash chain verified");
    // Someone with the table owner's rights removes the last three entries, past the row trigger.
    await pool.query("ALTER TABLE audit.audit_log DISABLE TRIGGER USER");
    await pool.query("DELETE FROM audit.audit_log WHERE seq > $1", [keep]);
    await pool.query("ALTER TABLE audit.audit_log ENABLE TRIGGER USER");
    // (Signing in wrote entries after `keep` too: they are cut as well, the session stands.)
    const page = await get(session!, "/console/audit");
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("Hash chain broken");
  });
});
