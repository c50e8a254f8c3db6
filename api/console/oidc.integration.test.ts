/**
 * Console sign-in through OIDC against a real provider: panva's `oidc-provider` on loopback with a
 * registered confidential client (PKCE required) and its development login/consent forms, driven
 * with fetch and a cookie jar; the console through `inject`, real Postgres, and anvil for the
 * withdrawal that two OIDC users approve. Shows: a mapped group gives a session with its scopes,
 * owner `oidc:<email>` and an audit entry; no mapped group is refused (audit, no session), and so
 * is an email marked unverified by the string "false" (no session as that email's owner); a forged
 * or mismatched state is refused; two OIDC users are two distinct approvers, one person twice is
 * one, and so is one person's API key (carrying their email) and SSO session; with SSO configured
 * a key without a person cannot decide; a person removed from their group at the provider acts
 * no more once the provider's word on their groups is older than `groupsFreshForMs` (reads go on);
 * idle and absolute timeouts end the session and /v1 refuses its key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey, type Scope } from "../apiKeys.js";
import {
  createWithdrawalApiTestContext,
  type WithdrawalApiTestContext,
} from "../testing/apiTestContext.js";
import { SESSION_COOKIE } from "./plugin.js";
import { csrfTokenOf } from "./sessions.js";
import {
  consoleOidcOptions,
  startTestOidcProvider,
  type TestOidcProvider,
} from "./testing/oidcProvider.js";

const ETH = 10n ** 18n;
const DEST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
// Never reached over the network: the test hands the provider's redirect to the app by inject.
const REDIRECT = "http://127.0.0.1:9/console/sso/callback";
/** The provider's users and their groups (the dev login form takes any password). */
const GROUPS: Record<string, string[]> = {
  anna: ["custody-approvers", "staff"],
  ben: ["custody-approvers"],
  mallory: ["interns", "contractors"],
  eve: ["custody-approvers"],
  zoe: ["custody-approvers", "staff"],
};
/** eve's provider lets her set any email, and says (as a string, as Entra ID does) it is unverified. */
const EMAILS = { eve: { email: "anna@example.test", email_verified: "false" } };

let provider: TestOidcProvider;
let issuer: string;
let t: WithdrawalApiTestContext;
let requester: string;

beforeAll(async () => {
  provider = await startTestOidcProvider({
    redirectUri: REDIRECT,
    users: GROUPS,
    emails: EMAILS,
  });
  issuer = provider.issuer;
  t = await createWithdrawalApiTestContext({
    policy: {
      perTransaction: 10n * ETH,
      rolling24h: 12n * ETH,
      approvalThreshold: ETH,
      requiredApprovals: 2,
    },
    fund: { customers: ["carol"], amount: 8n * ETH },
    ...consoleOidcOptions(provider, {
      redirectUrl: REDIRECT,
      groups: {
        "custody-approvers": ["withdrawals:approve", "recon:read"],
        staff: ["deposits:read"],
      },
    }),
  });
  requester = await t.newKey("exchange-backend", ["withdrawals:write"]);
}, 120_000);
afterAll(async () => {
  await provider?.close();
  // Dropping the test database took up to a minute on the loaded shared machine.
  await t?.cleanup();
}, 180_000);

const setCookies = (h: string | string[] | undefined) => (Array.isArray(h) ? h : h ? [h] : []);
const cookieOf = (h: string | string[] | undefined, name: string) => {
  const hit = setCookies(h).find((c) => c.startsWith(`${name}=`));
  return hit ? decodeURIComponent(hit.slice(name.length + 1).split(";")[0]!) : undefined;
};

/**
 * Logs `login` in at the provider, starting from its authorization URL, through its development
 * login and consent forms; returns the redirect back to the console (the callback URL).
 */
async function loginAtProvider(authorizationUrl: string, login: string): Promise<URL> {
  const jar = new Map<string, string>();
  let next: { url: string; method: "GET" | "POST"; body?: URLSearchParams } = {
    url: authorizationUrl,
    method: "GET",
  };
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(next.url, {
      method: next.method,
      redirect: "manual",
      headers: {
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(next.body ? { "content-type": "application/x-www-form-urlencoded" } : {}),
      },
      ...(next.body ? { body: next.body.toString() } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair!.indexOf("=");
      jar.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      const target = new URL(location, next.url);
      if (target.href.startsWith(REDIRECT)) return target;
      next = { url: target.href, method: "GET" };
      continue;
    }
    const page = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(page)?.[1];
    if (res.status !== 200 || !action)
      throw new Error(`provider answered ${res.status} without a form: ${page.slice(0, 300)}`);
    const body = new URLSearchParams();
    for (const m of page.matchAll(
      /<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g,
    ))
      body.set(m[1]!, m[2]!);
    if (/name="login"/.test(page)) {
      body.set("login", login);
      body.set("password", "any");
    }
    next = { url: new URL(action.replaceAll("&amp;", "&"), next.url).href, method: "POST", body };
  }
  throw new Error("the provider did not redirect back within 20 hops");
}

/** The console's SSO start: the provider URL to go to and the flow cookie it set. */
async function startSso() {
  const res = await t.app.inject({ method: "GET", url: "/console/sso/start" });
  expect(res.statusCode).toBe(303);
  const flow = cookieOf(res.headers["set-cookie"], "cn_console_oidc");
  expect(flow).toBeTruthy();
  expect(setCookies(res.headers["set-cookie"]).join()).toMatch(
    /Path=\/console\/sso; HttpOnly; SameSite=Lax/,
  );
  return { location: String(res.headers.location), flow: flow! };
}

const callback = (callbackUrl: URL, flow: string | undefined) =>
  t.app.inject({
    method: "GET",
    url: `/console/sso/callback${callbackUrl.search}`,
    headers: flow ? { cookie: `cn_console_oidc=${encodeURIComponent(flow)}` } : {},
  });

/** A full SSO sign-in as `login`; the callback's response and the session key it set. */
async function ssoSignIn(login: string) {
  const { location, flow } = await startSso();
  const back = await loginAtProvider(location, login);
  const res = await callback(back, flow);
  return { res, session: cookieOf(res.headers["set-cookie"], SESSION_COOKIE) };
}

const consoleGet = (session: string, url: string) =>
  t.app.inject({
    method: "GET",
    url,
    headers: { cookie: `${SESSION_COOKIE}=${encodeURIComponent(session)}` },
  });
const count = async (sql: string, params: unknown[] = []) =>
  (await t.ctx.db.pool.query(sql, params)).rows[0].n as number;

describe("console sign-in through OIDC", () => {
  it("offers SSO on the sign-in page and sends the browser to the provider with PKCE, state and nonce", async () => {
    const page = await t.app.inject({ method: "GET", url: "/console/sign-in" });
    expect(page.body).toContain('href="/console/sso/start"');
    const { location } = await startSso();
    const url = new URL(location);
    expect(url.origin).toBe(issuer);
    expect(url.searchParams.get("client_id")).toBe(provider.clientId);
    expect(url.searchParams.get("redirect_uri")).toBe(REDIRECT);
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get("state")).toBeTruthy();
    expect(url.searchParams.get("nonce")).toBeTruthy();
    expect(url.searchParams.get("scope")).toBe("openid email groups");
  });

  it("signs a mapped user in: session with the mapped scopes, owner oidc:<email>, audit entry", async () => {
    const { res, session } = await ssoSignIn("anna");
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('http-equiv="refresh" content="0;url=/console"');
    expect(setCookies(res.headers["set-cookie"]).join()).toMatch(
      /cn_console=[^;]+; Path=\/console; HttpOnly; SameSite=Strict; Max-Age=28800/,
    );
    const keyId = session!.split("_")[1]!;
    const { rows } = await t.ctx.db.pool.query(
      `SELECT k.owner, k.scopes, s.signed_in_with, s.oidc_issuer, s.oidc_subject,
              s.expires_at - s.created_at AS lifetime
         FROM api.console_sessions s JOIN api.api_keys k ON k.id = s.key_id WHERE s.key_id = $1`,
      [keyId],
    );
    expect(rows[0]).toMatchObject({
      owner: "oidc:anna@example.test",
      signed_in_with: null,
      oidc_issuer: issuer,
      oidc_subject: "anna",
    });
    // custody-approvers + staff
    expect([...rows[0].scopes].sort()).toEqual([
      "deposits:read",
      "recon:read",
      "withdrawals:approve",
    ]);
    expect(rows[0].lifetime.hours).toBe(8);
    const audit = await t.ctx.db.pool.query(
      `SELECT actor, details FROM audit.audit_log WHERE action = 'console.signed_in' AND entity_id = $1`,
      [keyId],
    );
    expect(audit.rows).toHaveLength(1);
    expect(audit.rows[0].actor).toBe("oidc:anna@example.test");
    expect(audit.rows[0].details).toMatchObject({ via: "oidc", issuer, subject: "anna" });
    // The session works in the console and, with exactly its scopes, on /v1.
    const recon = await consoleGet(session!, "/console/recon");
    expect(recon.statusCode).toBe(200);
    expect(recon.body).toContain("oidc:anna@example.test");
    expect((await t.call(session!, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(200);
    expect((await t.call(session!, { method: "GET", url: "/v1/audit" })).statusCode).toBe(403);
  });

  it("refuses a user none of whose groups is mapped: a clear page, an audit entry, no session", async () => {
    const sessions = await count("SELECT count(*)::int AS n FROM api.console_sessions");
    const keys = await count("SELECT count(*)::int AS n FROM api.api_keys");
    const { res, session } = await ssoSignIn("mallory");
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain("CONSOLE_OIDC_NO_SCOPES");
    expect(res.body).toContain("none of your groups");
    expect(session).toBeUndefined();
    expect(await count("SELECT count(*)::int AS n FROM api.console_sessions")).toBe(sessions);
    expect(await count("SELECT count(*)::int AS n FROM api.api_keys")).toBe(keys);
    const audit = await t.ctx.db.pool.query(
      `SELECT actor, entity_type, details FROM audit.audit_log
        WHERE action = 'console.sign_in_refused' ORDER BY id DESC LIMIT 1`,
    );
    expect(audit.rows[0]).toMatchObject({
      actor: "oidc:mallory@example.test",
      entity_type: "oidc_subject",
      details: { subject: "mallory", groups: ["interns", "contractors"] },
    });
  });

  it('refuses an email the provider says is unverified as the string "false": no session as another person', async () => {
    const sessions = await count("SELECT count(*)::int AS n FROM api.console_sessions");
    const { res, session } = await ssoSignIn("eve");
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain("not verified");
    expect(session).toBeUndefined();
    expect(await count("SELECT count(*)::int AS n FROM api.console_sessions")).toBe(sessions);
    const audit = await t.ctx.db.pool.query(
      `SELECT actor, details FROM audit.audit_log
        WHERE action = 'console.sign_in_refused' ORDER BY id DESC LIMIT 1`,
    );
    expect(audit.rows[0]).toMatchObject({ actor: "oidc:eve", details: { subject: "eve" } });
  });

  it("refuses a forged, mismatched or unbound state and creates nothing", async () => {
    const sessions = await count("SELECT count(*)::int AS n FROM api.console_sessions");
    // A real code for flow A, presented with flow B's cookie (another sign-in in this browser).
    const a = await startSso();
    const backA = await loginAtProvider(a.location, "ben");
    const b = await startSso();
    const mismatched = await callback(backA, b.flow);
    expect(mismatched.statusCode).toBe(400);
    expect(mismatched.body).toContain("CONSOLE_OIDC_STATE");
    // The same response with a forged state and flow A's own cookie.
    const forgedUrl = new URL(backA);
    forgedUrl.searchParams.set("state", "forged-state");
    const forged = await callback(forgedUrl, a.flow);
    expect(forged.statusCode).toBe(400);
    expect(forged.body).toContain("CONSOLE_OIDC_STATE");
    // No flow cookie at all: a response this browser never asked for (login CSRF).
    const unbound = await callback(backA, undefined);
    expect(unbound.statusCode).toBe(400);
    expect(unbound.body).toContain("CONSOLE_OIDC_STATE");
    for (const r of [mismatched, forged, unbound])
      expect(cookieOf(r.headers["set-cookie"], SESSION_COOKIE)).toBeUndefined();
    expect(await count("SELECT count(*)::int AS n FROM api.console_sessions")).toBe(sessions);
    // A tampered PKCE verifier with the right state: the provider refuses the code exchange.
    const c = await startSso();
    const backC = await loginAtProvider(c.location, "ben");
    const flowC = JSON.parse(Buffer.from(c.flow, "base64url").toString("utf8"));
    const tampered = Buffer.from(JSON.stringify({ ...flowC, verifier: "x".repeat(43) })).toString(
      "base64url",
    );
    const pkce = await callback(backC, tampered);
    expect(pkce.statusCode).toBe(401);
    expect(pkce.body).toContain("CONSOLE_OIDC_REFUSED");
    expect(await count("SELECT count(*)::int AS n FROM api.console_sessions")).toBe(sessions);
  });

  it("counts two OIDC users as two distinct approvers, and one user signed in twice as one", async () => {
    const created = await t.call(requester, {
      method: "POST",
      url: "/v1/withdrawals",
      headers: { "idempotency-key": "oidc-w1" },
      payload: {
        customerId: "carol",
        chain: "local-a",
        asset: "native",
        to: DEST,
        amount: (2n * ETH).toString(),
      },
    });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    expect(created.json().status).toBe("pending_approval");
    const approveAs = async (session: string, idem: string) => {
      const page = await consoleGet(session, "/console/withdrawals");
      const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
      return t.app.inject({
        method: "POST",
        url: `/console/withdrawals/${id}/approve`,
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          cookie: `${SESSION_COOKIE}=${encodeURIComponent(session)}`,
        },
        payload: new URLSearchParams({ _csrf: csrf, _idem: idem, reason: "ok" }).toString(),
      });
    };
    const anna1 = (await ssoSignIn("anna")).session!;
    const anna2 = (await ssoSignIn("anna")).session!;
    const ben = (await ssoSignIn("ben")).session!;
    expect((await approveAs(anna1, "oidc-a1")).statusCode).toBe(303);
    // Anna's second session is the same person: refused.
    const again = await approveAs(anna2, "oidc-a2");
    expect(again.statusCode).toBe(409);
    const one = (await t.call(requester, { method: "GET", url: `/v1/withdrawals/${id}` })).json();
    expect(one.status).toBe("pending_approval");
    expect((await approveAs(ben, "oidc-b1")).statusCode).toBe(303);
    const two = (await t.call(requester, { method: "GET", url: `/v1/withdrawals/${id}` })).json();
    expect(two.status).not.toBe("pending_approval");
    expect(two.approvals.map((a: { approver: string }) => a.approver).sort()).toEqual([
      "oidc:anna@example.test",
      "oidc:ben@example.test",
    ]);
  });

  it("counts a person's API key (with their email) and SSO session as one approver; a key without a person cannot decide", async () => {
    const keyOf = async (owner: string, scopes: Scope[], email?: string) =>
      (await createApiKey(t.ctx.db.pool, { owner, scopes, ...(email ? { email } : {}) })).plaintext;
    const request = async (key: string, idem: string) => {
      const res = await t.call(key, {
        method: "POST",
        url: "/v1/withdrawals",
        headers: { "idempotency-key": idem },
        payload: {
          customerId: "carol",
          chain: "local-a",
          asset: "native",
          to: DEST,
          amount: ((12n * ETH) / 10n).toString(),
        },
      });
      expect(res.statusCode).toBe(201);
      expect(res.json().status).toBe("pending_approval");
      return res.json().id as string;
    };
    const approveByKey = (key: string, id: string, idem: string) =>
      t.call(key, {
        method: "POST",
        url: `/v1/withdrawals/${id}/approve`,
        headers: { "idempotency-key": idem },
        payload: {},
      });
    const id = await request(requester, "oidc-w2");
    const annaKey = await keyOf("anna", ["withdrawals:approve"], "anna@example.test");
    expect((await approveByKey(annaKey, id, "oidc-k1")).statusCode).toBe(200);
    // The same person through SSO: already decided.
    const annaSso = (await ssoSignIn("anna")).session!;
    const again = await t.call(annaSso, {
      method: "POST",
      url: `/v1/withdrawals/${id}/approve`,
      headers: { "idempotency-key": "oidc-k2" },
      payload: {},
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe("ALREADY_DECIDED");
    // A key naming no person could be anyone, Anna included: refused while SSO is configured.
    const nameless = await keyOf("treasury-bot", ["withdrawals:approve"]);
    const unknown = await approveByKey(nameless, id, "oidc-k3");
    expect(unknown.statusCode).toBe(403);
    expect(unknown.json().code).toBe("APPROVER_PERSON_UNKNOWN");
    const w = (await t.call(requester, { method: "GET", url: `/v1/withdrawals/${id}` })).json();
    expect(w.status).toBe("pending_approval");
    expect(w.approvals.map((a: { approver: string }) => a.approver)).toEqual(["anna"]);

    // Anna requests under a key of hers; her SSO session cannot approve it.
    const annaWriter = await keyOf("anna-backend", ["withdrawals:write"], "anna@example.test");
    const mine = await request(annaWriter, "oidc-w3");
    const self = await t.call(annaSso, {
      method: "POST",
      url: `/v1/withdrawals/${mine}/approve`,
      headers: { "idempotency-key": "oidc-k4" },
      payload: {},
    });
    expect(self.statusCode).toBe(403);
    expect(self.json().code).toBe("APPROVER_IS_REQUESTER");
  });

  it("a person removed from their group at the provider cannot approve once the provider's word is older than groupsFreshForMs", async () => {
    const created = await t.call(requester, {
      method: "POST",
      url: "/v1/withdrawals",
      headers: { "idempotency-key": "oidc-w4" },
      payload: {
        customerId: "carol",
        chain: "local-a",
        asset: "native",
        to: DEST,
        amount: ((12n * ETH) / 10n).toString(),
      },
    });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const zoe = (await ssoSignIn("zoe")).session!;
    // Zoe is offboarded from approving at the provider; her console session is an hour old.
    GROUPS.zoe = ["staff"];
    await t.ctx.db.pool.query(
      "UPDATE api.console_sessions SET created_at = now() - interval '1 hour' WHERE key_id = $1",
      [zoe.split("_")[1]],
    );
    const approve = (session: string, idem: string) =>
      t.call(session, {
        method: "POST",
        url: `/v1/withdrawals/${id}/approve`,
        headers: { "idempotency-key": idem },
        payload: {},
      });
    // Every console page tells her why she cannot act and offers the new sign-in; a decision
    // posted from a page she loaded while fresh is refused with that offer too (old code:
    // "/console: expected '<!doctype html>…' to contain '<a class="button primary" href="/cons…'":
    // only "Refused by the API — AUTH_SSO_GROUPS_STALE", the sign-in named as a path in its text).
    const signInAgain = '<a class="button primary" href="/console/sso/start">Sign in again</a>';
    for (const url of ["/console", "/console/withdrawals", `/console/withdrawals/${id}`]) {
      const page = await consoleGet(zoe, url);
      expect(page.body, url).toContain(signInAgain);
      expect(page.body, url).not.toContain(`aria-label="Approve withdrawal ${id.slice(0, 8)}"`);
    }
    const posted = await t.app.inject({
      method: "POST",
      url: `/console/withdrawals/${id}/approve`,
      headers: {
        cookie: `${SESSION_COOKIE}=${encodeURIComponent(zoe)}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      payload: new URLSearchParams({ _csrf: csrfTokenOf(zoe), _idem: "oidc-z0" }).toString(),
    });
    expect(posted.statusCode).toBe(403);
    expect(posted.body).toContain("AUTH_SSO_GROUPS_STALE");
    expect(posted.body).toContain(signInAgain);
    // before the fix: expected 200 to be 403 (the hour-old session approved with the groups it
    // signed in with)
    const stale = await approve(zoe, "oidc-z1");
    expect(stale.statusCode, stale.body).toBe(403);
    expect(stale.json().code).toBe("AUTH_SSO_GROUPS_STALE");
    expect(stale.json().detail).toContain("/console/sso/start");
    // Reading goes on (recon:read, from the groups she signed in with).
    expect((await t.call(zoe, { method: "GET", url: "/v1/recon/runs" })).statusCode).toBe(200);
    // Signing in again asks the provider, which no longer puts her in custody-approvers.
    const again = (await ssoSignIn("zoe")).session!;
    const refused = await approve(again, "oidc-z2");
    expect(refused.statusCode, refused.body).toBe(403);
    expect(refused.json().code).toBe("AUTH_SCOPE_MISSING");
    const w = (await t.call(requester, { method: "GET", url: `/v1/withdrawals/${id}` })).json();
    expect(w.status).toBe("pending_approval");
    expect(w.approvals).toEqual([]);
    // A session the provider vouched for within groupsFreshForMs is shown the buttons, and approves.
    const ben = (await ssoSignIn("ben")).session!;
    const fresh = (await consoleGet(ben, "/console/withdrawals")).body;
    expect(fresh).toContain(`aria-label="Approve withdrawal ${id.slice(0, 8)}"`);
    expect(fresh).not.toContain(signInAgain);
    expect((await approve(ben, "oidc-z3")).statusCode).toBe(200);
  });

  it("ends an OIDC session at its idle timeout and at its absolute end; /v1 refuses the key first", async () => {
    for (const [column, reason] of [
      ["idle_expires_at", "idle timeout"],
      ["expires_at", "session expired"],
    ] as const) {
      const { session } = await ssoSignIn("ben");
      const keyId = session!.split("_")[1]!;
      expect((await consoleGet(session!, "/console/recon")).statusCode).toBe(200);
      await t.ctx.db.pool.query(
        `UPDATE api.console_sessions SET ${column} = now() - interval '1 second' WHERE key_id = $1`,
        [keyId],
      );
      const v1 = await t.call(session!, { method: "GET", url: "/v1/recon/runs" });
      expect(v1.statusCode).toBe(401);
      const page = await consoleGet(session!, "/console/recon");
      expect(page.statusCode).toBe(303);
      expect(page.headers.location).toBe("/console/sign-in");
      const row = await t.ctx.db.pool.query(
        "SELECT ended_reason FROM api.console_sessions WHERE key_id = $1",
        [keyId],
      );
      expect(row.rows[0].ended_reason).toBe(reason);
    }
  });
});
