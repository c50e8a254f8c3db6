/**
 * The operator console at /console (served by the api role next to /v1). Server-rendered pages, no
 * client framework and nothing loaded from elsewhere. Every page reads, and every action calls, the
 * /v1 API in-process (`inject`) with the session's own key, so scopes, validation, idempotency and
 * the audit log are the API's, not a second copy. Forms carry a CSRF token; the session cookie is
 * httpOnly and SameSite=Strict; an idle session ends, and every session ends at its absolute end.
 * Failed API-key sign-ins are limited per client address as /v1's failed authentications are.
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ChainConfig } from "../../chains/index.js";
import { parseTokenAmount } from "../../foundation/amounts.js";
import { verifyAuditChain } from "../../foundation/audit.js";
import type { Pool } from "../../foundation/db.js";
import { listAuditAnchors } from "../../ledger/recon/index.js";
import { approvingKeysWithoutEmail } from "../apiKeys.js";
import {
  type AuthFailureLimiter,
  createAuthFailureLimiter,
  DEFAULT_AUTH_FAILURE_LIMIT,
  ssoKey,
} from "../auth.js";
import { AuthRateLimitedError } from "../errors.js";
import {
  type AssetInfo,
  amount,
  CSS,
  formGuard,
  type Html,
  html,
  JS,
  layout,
  PAGES,
  type PageName,
  setSecurityHeaders,
  time,
} from "./html.js";
import { createOidcRoutes, type OidcOptions, scopesForGroups } from "./oidc.js";
import {
  type ConsoleSession,
  csrfMatches,
  DEFAULT_ABSOLUTE_TIMEOUT_MS,
  endSession,
  newIdempotencyKey,
  resumeSession,
  signIn,
} from "./sessions.js";

export type ConsoleOptions = {
  pool: Pool;
  /** The chains (hot wallet floor and ceiling for the overview). */
  chains?: readonly ChainConfig[];
  /** A session unused this long ends (default 15 minutes). */
  idleTimeoutMs?: number;
  /** Send the cookie with `Secure` (default: when the request came over https). */
  secureCookie?: boolean;
  /** Sign-in through OpenID Connect (oidc.ts); absent: API-key sign-in only. */
  oidc?: OidcOptions | undefined;
  /**
   * Failed sign-ins per client address (API-key form and SSO callback together); past the limit,
   * 429 AUTH_RATE_LIMITED before the key is looked up. Counted apart from /v1's failures (v1.ts
   * builds both, shared across api tasks in Redis): the console calls /v1 in-process from
   * 127.0.0.1, which a burst of bad sign-ins must not lock out. Default: this process's own count
   * at /v1's limit, 20 per minute.
   */
  signInFailures?: AuthFailureLimiter | undefined;
};

export const SESSION_COOKIE = "cn_console";
const LOGIN_CSRF_COOKIE = "cn_console_login";

type V1Result = { status: number; body: Record<string, unknown> };
/** A list read one item past its page: `more` when the API holds items the page does not show. */
type V1List = V1Result & { more: boolean };
type Json = Record<string, unknown>;

function cookiesOf(request: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const raw = part.slice(i + 1).trim();
    // Any cookie of the host reaches us: one that is not percent-encoded as ours are is kept raw
    // (never ours then), not a 500 on every console page.
    try {
      out[part.slice(0, i).trim()] = decodeURIComponent(raw);
    } catch {
      out[part.slice(0, i).trim()] = raw;
    }
  }
  return out;
}

declare module "fastify" {
  interface FastifyRequest {
    consoleSession: ConsoleSession | null;
  }
}

export function createConsolePlugin(options: ConsoleOptions) {
  const idleTimeoutMs = options.idleTimeoutMs ?? 15 * 60_000;
  // API-key sessions end when SSO sessions do (the OIDC config's absolute timeout, default 8 h).
  const absoluteTimeoutMs = options.oidc?.absoluteTimeoutMs ?? DEFAULT_ABSOLUTE_TIMEOUT_MS;
  const signInFailures =
    options.signInFailures ?? createAuthFailureLimiter({ limit: DEFAULT_AUTH_FAILURE_LIMIT });
  /**
   * An SSO session /v1 lets read but not act (AUTH_SSO_GROUPS_STALE: the provider's word on its
   * groups is older than groupsFreshForMs), decided by /v1's own rule (auth.ts ssoKey): every page
   * says so and offers the new sign-in, instead of only the API's refusals (an approver cannot
   * even list withdrawals then: reading them needs withdrawals:approve or :write).
   */
  const staleSso = (s: ConsoleSession): StaleSso | null => {
    const oidc = options.oidc;
    if (!oidc || !s.sso) return null;
    const { key, stale } = ssoKey(s.key, s.sso, {
      scopesFor: (groups) => scopesForGroups(oidc.groups, groups),
      groupsFreshForMs: oidc.groupsFreshForMs,
    });
    // Groups that gave only reading scopes lose nothing when stale: nothing to sign in again for.
    if (!stale || stale.key.scopes.every((x) => key.scopes.includes(x))) return null;
    return {
      ageS: Math.floor(s.sso.ageMs / 1000),
      freshForS: Math.floor(oidc.groupsFreshForMs / 1000),
    };
  };
  return async (app: FastifyInstance) => {
    const cookie = (request: FastifyRequest, name: string, value: string, maxAgeS: number) => {
      const secure = options.secureCookie ?? request.protocol === "https";
      return `${name}=${encodeURIComponent(value)}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? "; Secure" : ""}`;
    };
    const v1 = async (
      session: ConsoleSession,
      method: "GET" | "POST",
      url: string,
      payload?: Json,
      idempotencyKey?: string,
    ): Promise<V1Result> => {
      const res = await app.inject({
        method,
        url,
        headers: {
          authorization: `Bearer ${session.plaintext}`,
          ...(method === "POST"
            ? {
                "content-type": "application/json",
                "idempotency-key": idempotencyKey ?? newIdempotencyKey(),
              }
            : {}),
        },
        ...(payload ? { payload: JSON.stringify(payload) } : {}),
      });
      let body: Json = {};
      try {
        body = res.json() as Json;
      } catch {
        body = { title: res.body };
      }
      return { status: res.statusCode, body };
    };
    /**
     * GET a /v1 list (`field` of the body) asking one item more than `limit` shows (at most 1000,
     * the API's page), so a page that is cut says so instead of passing for the whole list.
     */
    const list = async (
      session: ConsoleSession,
      path: string,
      field: string,
      limit: number,
    ): Promise<V1List> => {
      const r = await v1(
        session,
        "GET",
        `${path}${path.includes("?") ? "&" : "?"}limit=${limit + 1}`,
      );
      const rows = r.status === 200 ? ((r.body[field] as Json[] | undefined) ?? []) : [];
      if (rows.length <= limit) return { ...r, more: false };
      return { status: r.status, body: { ...r.body, [field]: rows.slice(0, limit) }, more: true };
    };
    const problemText = (r: V1Result) =>
      `${String(r.body.code ?? r.status)}: ${String(r.body.detail ?? r.body.title ?? "refused")}`;

    // With SSO on, a decision by a key naming no person is refused (APPROVER_PERSON_UNKNOWN):
    // say at start which approving keys that is, by id and owner (never a secret), so the operator
    // gives them an email (`apikeys set-email`) before someone's approval is refused.
    if (options.oidc) {
      const keys = await approvingKeysWithoutEmail(options.pool);
      if (keys.length > 0)
        app.log.warn({
          msg: "console SSO is configured and these API keys can approve but name no person (no email): their decisions are refused (APPROVER_PERSON_UNKNOWN); custody-node apikeys set-email gives them one",
          keys: keys.map((k) => `${k.id} (${k.owner})`),
        });
    }
    // SSO routes sit outside the session guard below (nobody has a session yet).
    if (options.oidc)
      await app.register(
        createOidcRoutes({
          ...options,
          oidc: options.oidc,
          idleTimeoutMs,
          sessionCookie: SESSION_COOKIE,
          signInFailures,
        }),
      );
    await app.register(async (c) => {
      c.decorateRequest("consoleSession", null);
      // HTML pages, not API operations: kept out of the OpenAPI document.
      c.addHook("onRoute", (route) => {
        route.schema = { ...route.schema, hide: true };
      });
      c.addContentTypeParser(
        "application/x-www-form-urlencoded",
        { parseAs: "string", bodyLimit: 16_384 },
        (_req, body, done) => {
          done(null, Object.fromEntries(new URLSearchParams(String(body))));
        },
      );
      c.addHook("onSend", async (_request, reply, payload) => {
        setSecurityHeaders(reply);
        return payload;
      });
      const open = new Set([
        "/console/sign-in",
        "/console/assets/console.css",
        "/console/assets/console.js",
      ]);
      c.addHook("preHandler", async (request, reply) => {
        if (open.has(request.routeOptions.url ?? "")) return;
        const session = await resumeSession(
          options.pool,
          cookiesOf(request)[SESSION_COOKIE],
          idleTimeoutMs,
        );
        if (!session) {
          reply.header("set-cookie", cookie(request, SESSION_COOKIE, "", 0));
          if (request.method === "GET") return reply.redirect("/console/sign-in", 303);
          return reply
            .status(401)
            .type("text/html")
            .send(
              layout({
                title: "Signed out",
                page: "sign-in",
                error: "Your session has ended; sign in again.",
                body: html`<p><a href="/console/sign-in">Sign in</a></p>`,
              }),
            );
        }
        request.consoleSession = session;
        if (
          request.method === "POST" &&
          !csrfMatches(session.plaintext, (request.body as Json | undefined)?._csrf)
        )
          return reply
            .status(403)
            .type("text/html")
            .send(
              page(request, {
                title: "Refused",
                page: "overview",
                error:
                  "CONSOLE_CSRF: the form's CSRF token is missing or wrong; reload the page and try again.",
                body: html``,
              }),
            );
      });

      const page = (
        request: FastifyRequest,
        o: { title: string; page: PageName; body: Html; error?: string },
      ) => {
        const s = request.consoleSession!;
        const q = request.query as Json;
        const stale = staleSso(s);
        return layout({
          ...o,
          who: { owner: s.key.owner, scopes: s.key.scopes, csrf: s.csrf },
          notice: typeof q.notice === "string" ? q.notice : undefined,
          warning: stale ? staleSsoWarning(stale) : undefined,
        });
      };
      const send = (reply: FastifyReply, status: number, body: string) =>
        reply.status(status).type("text/html; charset=utf-8").send(body);
      const assetsOf = async (s: ConsoleSession) => {
        const r = await v1(s, "GET", "/v1/assets");
        const map = new Map<string, AssetInfo>();
        for (const a of (r.body.assets as Json[] | undefined) ?? [])
          map.set(String(a.assetId), { symbol: String(a.symbol), decimals: Number(a.decimals) });
        return map;
      };
      /** A section that needs a scope the key lacks says so instead of failing the page. */
      const section = (title: string, r: V1Result, body: (b: Json) => Html): Html =>
        r.status === 200
          ? html`<section aria-labelledby="${slug(title)}"><h2 id="${slug(title)}">${title}</h2>${body(r.body)}</section>`
          : html`<section aria-labelledby="${slug(title)}"><h2 id="${slug(title)}">${title}</h2><p class="error" role="alert">Refused by the API — ${problemText(r)}</p></section>`;
      /** POST to /v1 from a console form; back to `back` with a notice, or the API's refusal. */
      const act = async (
        request: FastifyRequest,
        reply: FastifyReply,
        url: string,
        payload: Json,
        back: string,
        /** The notice, or how to word it from the API's answer. */
        done: string | ((body: Json) => string),
        /** What the refusal page offers beyond a way back (the API's reason is always shown). */
        refused?: (r: V1Result) => Html | undefined,
      ) => {
        const s = request.consoleSession!;
        const form = (request.body ?? {}) as Json;
        const r = await v1(
          s,
          "POST",
          url,
          payload,
          typeof form._idem === "string" ? form._idem : undefined,
        );
        if (r.status >= 200 && r.status < 300) {
          const notice = typeof done === "string" ? done : done(r.body);
          return reply.redirect(`${back}?notice=${encodeURIComponent(notice)}`, 303);
        }
        return send(
          reply,
          r.status,
          page(request, {
            title: "Refused",
            // the page the form was on stays current in the navigation
            page: PAGES.find(([, href]) => href === back)?.[0] ?? "overview",
            error: problemText(r),
            body: html`${refused?.(r) ?? ""}<p><a href="${back}">Back</a></p>`,
          }),
        );
      };
      const reasonOf = (form: Json) =>
        typeof form.reason === "string" && form.reason.trim() !== ""
          ? form.reason.trim()
          : undefined;

      /**
       * Hot wallet native balances against the chain's floor and ceiling, as the chain's own latest
       * completed reconciliation run read them (the API has no live balance route; the row says
       * which run, at which block and when it finished). A read the API refuses shows as an error in
       * the chain's row, never as a chain without wallets.
       */
      const hotWallets = async (s: ConsoleSession, assets: Map<string, AssetInfo>) => {
        const chains = options.chains ?? [];
        const rows = await Promise.all(chains.map((chain) => hotWalletRows(s, chain, assets)));
        return html`<section aria-labelledby="hot-wallets"><h2 id="hot-wallets">Hot wallets</h2><table><thead><tr><th scope="col">Chain</th><th scope="col">Address</th><th scope="col" class="num">Balance</th><th scope="col" class="num">Floor</th><th scope="col" class="num">Ceiling</th><th scope="col">State</th></tr></thead><tbody>${rows}</tbody></table></section>`;
      };
      const hotWalletRows = async (
        s: ConsoleSession,
        chain: ChainConfig,
        assets: Map<string, AssetInfo>,
      ): Promise<Html[]> => {
        const whole = (text: Html | string) =>
          html`<tr><td>${chain.key}</td><td colspan="5">${text}</td></tr>`;
        const refused = (what: string, r: V1Result) =>
          whole(
            html`<span class="bad" role="alert">${what} refused by the API — ${problemText(r)}</span>`,
          );
        // Per chain: the last 50 runs of all chains are one busy chain's, not a rare one's.
        const runs = await v1(
          s,
          "GET",
          `/v1/recon/runs?chain_id=${chain.chainId}&status=completed&limit=1`,
        );
        if (runs.status !== 200) return [refused("Reconciliation runs", runs)];
        const latest = (runs.body.runs as Json[])[0];
        if (!latest) return [whole("no completed reconciliation run yet")];
        const report = await v1(s, "GET", `/v1/recon/runs/${String(latest.id)}`);
        if (report.status !== 200)
          return [refused(`The report of run ${String(latest.id)}`, report)];
        const native = `${chain.chainId}:0x0000000000000000000000000000000000000000`;
        const info = assets.get(native);
        const finished = (report.body.run as Json | undefined)?.finishedAt;
        const readBy = html`<small>run ${latest.id} at block ${latest.block}, finished ${time(typeof finished === "string" ? finished : null)}</small>${staleRun(finished)}`;
        const balances = ((report.body.balances as Json[] | undefined) ?? []).filter(
          (x) => x.scope === "hot" && x.assetId === native,
        );
        if (balances.length === 0)
          return [whole(html`no hot wallet balance in the latest completed run<br>${readBy}`)];
        // A limit of 0 is a limit (a ceiling of 0 sends every wei to cold, as the sweeper reads it):
        // only an absent one is "no limit".
        const floor = chain.nativeHotFloor ?? null;
        const ceiling = chain.nativeHotCeiling ?? null;
        return balances.map((b) => {
          const balance = BigInt(String(b.chain));
          const state =
            floor !== null && balance < floor
              ? html`<span class="bad">below floor: fund it</span>`
              : ceiling !== null && balance > ceiling
                ? html`<span class="bad">above ceiling: sweep to cold</span>`
                : html`<span class="ok">within range</span>`;
          return html`<tr><td>${chain.key}</td><td class="mono">${b.address}</td><td class="num">${amount(String(b.chain), info)}</td><td class="num">${floor === null ? "—" : amount(floor.toString(), info)}</td><td class="num">${ceiling === null ? "—" : amount(ceiling.toString(), info)}</td><td>${state}<br>${readBy}</td></tr>`;
        });
      };
      /** A run's HTML report, fetched from /v1 with the session's key (recon:read). */
      c.get<{ Params: { id: string } }>(
        "/console/recon/runs/:id/report",
        async (request, reply) => {
          const s = request.consoleSession!;
          if (!/^[0-9]{1,15}$/.test(request.params.id)) return reply.callNotFound();
          const res = await app.inject({
            method: "GET",
            url: `/v1/recon/runs/${request.params.id}?format=html`,
            headers: { authorization: `Bearer ${s.plaintext}` },
          });
          if (res.statusCode !== 200) {
            const r: V1Result = { status: res.statusCode, body: res.json() as Json };
            return send(
              reply,
              r.status,
              page(request, {
                title: "Report",
                page: "recon",
                error: problemText(r),
                body: html``,
              }),
            );
          }
          // The report is self-contained: its own inline stylesheet, nothing else (no script).
          reply.header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'");
          return reply.type("text/html; charset=utf-8").send(res.body);
        },
      );
      c.get("/console/assets/console.css", async (_q, reply) => reply.type("text/css").send(CSS));
      c.get("/console/assets/console.js", async (_q, reply) =>
        reply.type("text/javascript").send(JS),
      );

      c.get("/console/sign-in", async (request, reply) => {
        const token = randomBytes(24).toString("base64url");
        reply.header("set-cookie", cookie(request, LOGIN_CSRF_COOKIE, token, 600));
        return send(reply, 200, signInPage(token, undefined, Boolean(options.oidc)));
      });
      c.post("/console/sign-in", async (request, reply) => {
        const form = (request.body ?? {}) as Json;
        const expected = cookiesOf(request)[LOGIN_CSRF_COOKIE];
        if (!expected || form._csrf !== expected)
          return send(
            reply,
            403,
            signInPage(
              expected ?? "",
              "CONSOLE_CSRF: reload the sign-in page and try again.",
              Boolean(options.oidc),
            ),
          );
        // Before the key is looked up, as /v1's auth does: guessing keys costs no database work.
        const wait = await signInFailures.blockedFor(request.ip);
        if (wait > 0) {
          reply.header("retry-after", String(wait));
          throw new AuthRateLimitedError(wait);
        }
        const result = await signIn(
          options.pool,
          String(form.apiKey ?? ""),
          idleTimeoutMs,
          absoluteTimeoutMs,
        );
        if (!result.ok) {
          await signInFailures.fail(request.ip);
          return send(
            reply,
            401,
            signInPage(expected, `AUTH_REQUIRED: ${result.reason}`, Boolean(options.oidc)),
          );
        }
        reply.header("set-cookie", [
          cookie(
            request,
            SESSION_COOKIE,
            result.session.plaintext,
            Math.ceil(absoluteTimeoutMs / 1000),
          ),
          cookie(request, LOGIN_CSRF_COOKIE, "", 0),
        ]);
        return reply.redirect("/console", 303);
      });
      c.post("/console/sign-out", async (request, reply) => {
        await endSession(options.pool, request.consoleSession!.key, "signed out");
        reply.header("set-cookie", cookie(request, SESSION_COOKIE, "", 0));
        return reply.redirect("/console/sign-in", 303);
      });

      c.get("/console", async (request, reply) => {
        const s = request.consoleSession!;
        const [chains, queue, review, unknown, breaks, assets] = await Promise.all([
          v1(s, "GET", "/v1/chains"),
          list(s, "/v1/withdrawals?status=pending_approval", "withdrawals", 200),
          list(s, "/v1/withdrawals?status=needs_review", "withdrawals", 200),
          list(s, "/v1/withdrawals?status=receipt_unknown", "withdrawals", 200),
          list(s, "/v1/recon/breaks", "breaks", 200),
          assetsOf(s),
        ]);
        const count = (r: V1List, field: string) =>
          `${r.more ? "more than " : ""}${(r.body[field] as Json[]).length}`;
        const body = html`
            ${section("Chains", chains, (b) => chainsTable(b.chains as Json[]))}
            ${await hotWallets(s, assets)}
            ${section("Waiting for approval", queue, () => html`<p><a href="/console/withdrawals">${count(queue, "withdrawals")} withdrawal(s)</a> wait for approval.</p>`)}
            ${section("Needs review", review, (b) => html`${withdrawalsTable(b.withdrawals as Json[], assets)}${cut(review, "more are not shown: see the withdrawals page")}`)}
            ${section("Receipt unknown", unknown, (b) => html`<p>Its nonce was used but no receipt of any of its attempts is found on any endpoint: its hold stays and the signer keeps searching; it becomes needs_review once its nonce is consumed at a final block with none of its attempts in the chain (docs/runbooks/WithdrawalStuck.md).</p>${withdrawalsTable(b.withdrawals as Json[], assets)}${cut(unknown, "the oldest 200 are shown; more are not shown (GET /v1/withdrawals?status=receipt_unknown&after=…)")}`)}
            ${section("Open breaks", breaks, () => html`<p><a href="/console/recon">${count(breaks, "breaks")} open or acknowledged break(s)</a>.</p>`)}`;
        return send(reply, 200, page(request, { title: "Overview", page: "overview", body }));
      });

      c.get("/console/withdrawals", async (request, reply) => {
        const s = request.consoleSession!;
        const [queue, review, recent, assets] = await Promise.all([
          list(s, "/v1/withdrawals?status=pending_approval", "withdrawals", 200),
          list(s, "/v1/withdrawals?status=needs_review", "withdrawals", 200),
          // Newest first: the oldest 200 of a busy deployment would hide every new withdrawal.
          list(s, "/v1/withdrawals?order=newest", "withdrawals", 200),
          assetsOf(s),
        ]);
        if (recent.status !== 200)
          return send(
            reply,
            recent.status,
            page(request, {
              title: "Withdrawals",
              page: "withdrawals",
              error: `Refused by the API — ${problemText(recent)}`,
              body: html``,
            }),
          );
        const body = html`
            ${section("Approval queue", queue, (b) => html`${withdrawalsTable(b.withdrawals as Json[], assets, (w) => decisionForms(s, w))}${cut(queue, "the oldest 200 are shown; more are not shown: decide these first")}`)}
            ${section("Needs review", review, (b) => html`<p>Its nonce was used at a final block by none of our transactions. Check the chain first; failing it releases the customer's hold (admin; the same as <code>custody-node withdrawals fail</code>).</p>${withdrawalsTable(b.withdrawals as Json[], assets, (w) => failForm(s, w))}${cut(review, "the oldest 200 are shown; more are not shown")}`)}
            ${section("All withdrawals", recent, (b) => html`<p>Newest first.</p>${withdrawalsTable(b.withdrawals as Json[], assets)}${cut(recent, "the newest 200 are shown; older withdrawals are not shown here (GET /v1/withdrawals?order=newest&after=…)")}`)}`;
        return send(reply, 200, page(request, { title: "Withdrawals", page: "withdrawals", body }));
      });

      c.get<{ Params: { id: string } }>("/console/withdrawals/:id", async (request, reply) => {
        const s = request.consoleSession!;
        const [r, assets] = await Promise.all([
          v1(s, "GET", `/v1/withdrawals/${encodeURIComponent(request.params.id)}`),
          assetsOf(s),
        ]);
        if (r.status !== 200)
          return send(
            reply,
            r.status,
            page(request, {
              title: "Withdrawal",
              page: "withdrawals",
              error: problemText(r),
              body: html``,
            }),
          );
        const w = r.body;
        const body = html`
            ${withdrawalsTable([w], assets, w.status === "pending_approval" ? (x) => decisionForms(s, x) : w.status === "needs_review" ? (x) => failForm(s, x) : undefined)}
            <section aria-labelledby="timeline"><h2 id="timeline">Timeline to finality</h2>
            <ol>${(w.history as Json[]).map((h) => html`<li>${time(String(h.at))} — <strong>${h.action}</strong> by ${h.actor}${h.details && (h.details as Json).reason ? html` (“${(h.details as Json).reason}”)` : ""}</li>`)}</ol></section>`;
        return send(
          reply,
          200,
          page(request, {
            title: `Withdrawal ${String(w.id).slice(0, 8)}`,
            page: "withdrawals",
            body,
          }),
        );
      });

      c.post<{ Params: { id: string; action: string } }>(
        "/console/withdrawals/:id/:action",
        async (request, reply) => {
          const { id, action } = request.params;
          if (!["approve", "reject", "cancel", "fail"].includes(action))
            return reply.callNotFound();
          const reason = reasonOf((request.body ?? {}) as Json);
          return act(
            request,
            reply,
            `/v1/withdrawals/${encodeURIComponent(id)}/${action}`,
            reason ? { reason } : {},
            "/console/withdrawals",
            action === "fail"
              ? (w) =>
                  w.status === "failed"
                    ? `withdrawal ${id.slice(0, 8)}: failed, hold released`
                    : `withdrawal ${id.slice(0, 8)}: its nonce is being cancelled; it fails and its hold is released once the cancel is final`
              : `withdrawal ${id.slice(0, 8)}: ${action} recorded`,
          );
        },
      );

      c.get("/console/deposits", async (request, reply) => {
        const s = request.consoleSession!;
        const [recent, pending, orphaned, assets] = await Promise.all([
          // Newest first: the oldest 100 of a busy deployment are not "recent".
          list(s, "/v1/deposits?order=newest", "deposits", 100),
          list(s, "/v1/deposits?status=seen", "deposits", 100),
          list(s, "/v1/deposits?status=orphaned&order=newest", "deposits", 100),
          assetsOf(s),
        ]);
        const holds = await list(s, "/v1/deposits/holds", "holds", 999);
        const body = html`
            ${section("Reorg holds", holds, (b) => html`${holdsTable(b.holds as Json[], assets)}${cut(holds, "the first 999 are shown; more are not shown (GET /v1/deposits/holds?after=…)")}`)}
            ${section("Pending confirmations", pending, (b) => html`${depositsTable(b.deposits as Json[], assets)}${cut(pending, "the oldest 100 are shown; more are not shown")}`)}
            ${section("Orphaned by a reorg", orphaned, (b) => html`${depositsTable(b.deposits as Json[], assets)}${cut(orphaned, "the newest 100 are shown; older ones are not shown")}`)}
            ${section("Recent deposits", recent, (b) => html`<p>Newest first.</p>${depositsTable(b.deposits as Json[], assets)}${cut(recent, "the newest 100 are shown; older deposits are not shown here (GET /v1/deposits?order=newest&after=…)")}`)}`;
        return send(reply, 200, page(request, { title: "Deposits", page: "deposits", body }));
      });

      c.get("/console/recon", async (request, reply) => {
        const s = request.consoleSession!;
        const [breaks, runs, assets] = await Promise.all([
          list(s, "/v1/recon/breaks", "breaks", 200),
          v1(s, "GET", "/v1/recon/runs?limit=50"),
          assetsOf(s),
        ]);
        const body = html`
            ${section("Breaks", breaks, (b) => html`${breaksTable(b.breaks as Json[], assets, s)}${cut(breaks, `200 breaks are shown (newest first); more are open or acknowledged (GET /v1/recon/breaks?after=${encodeURIComponent(String((b.breaks as Json[]).at(-1)?.identity))} with a recon:read key)`)}`)}
            ${section("Runs", runs, (b) => runsTable(b.runs as Json[]))}`;
        return send(reply, 200, page(request, { title: "Reconciliation", page: "recon", body }));
      });
      c.post<{ Params: { ref: string; action: string } }>(
        "/console/recon/breaks/:ref/:action",
        async (request, reply) => {
          const { ref, action } = request.params;
          if (!["acknowledge", "resolve"].includes(action)) return reply.callNotFound();
          const form = (request.body ?? {}) as Json;
          const payload: Json = { reason: reasonOf(form) ?? "" };
          if (action === "resolve") payload.fixedBy = String(form.fixedBy ?? "").trim();
          return act(
            request,
            reply,
            `/v1/recon/breaks/${encodeURIComponent(ref)}/${action}`,
            payload,
            "/console/recon",
            `break ${action}d`,
          );
        },
      );

      c.get("/console/treasury", async (request, reply) => {
        const s = request.consoleSession!;
        const [moves, assets] = await Promise.all([
          list(s, "/v1/treasury/moves", "moves", 999),
          assetsOf(s),
        ]);
        // The form only where the key may book (the API's own answer to the list says so).
        const listed = moves.status === 200 ? await v1(s, "GET", "/v1/assets") : undefined;
        const body = html`${listed ? treasuryForm(s, (listed.body.assets as Json[] | undefined) ?? []) : ""}
            ${section("Treasury bookings", moves, (b) => html`${treasuryTable(b.moves as Json[], assets)}${cut(moves, "the oldest 999 bookings are shown; later ones are not shown (GET /v1/treasury/moves?after=…)")}`)}`;
        return send(reply, 200, page(request, { title: "Treasury", page: "treasury", body }));
      });
      /**
       * The treasury form: the asset picked from the listed ones gives the chain and token, and
       * amounts typed in token units become base units here (the API takes base units); the rest
       * goes to POST /v1/treasury/moves as typed, so its checks and refusals are the API's.
       */
      c.post("/console/treasury/moves", async (request, reply) => {
        const s = request.consoleSession!;
        const form = (request.body ?? {}) as Json;
        const field = (name: string) =>
          typeof form[name] === "string" ? (form[name] as string).trim() : "";
        const listed = ((await v1(s, "GET", "/v1/assets")).body.assets as Json[] | undefined) ?? [];
        const asset = listed.find((a) => a.assetId === field("asset"));
        const payload: Json = {
          move: field("move"),
          txHash: field("txHash"),
          wallet: field("wallet"),
          reason: field("reason"),
        };
        try {
          if (!asset) throw new TypeError("asset must be one of the listed assets");
          payload.chain = String(asset.chain);
          if (!asset.native) payload.token = String(asset.address);
          if (field("amount"))
            payload.amount = parseTokenAmount(field("amount"), Number(asset.decimals)).toString();
          const native = listed.find((a) => a.chainId === asset.chainId && a.native);
          if (field("fee"))
            payload.fee = parseTokenAmount(
              field("fee"),
              Number(native?.decimals ?? 18),
              "fee",
            ).toString();
        } catch (error) {
          return send(
            reply,
            400,
            page(request, {
              title: "Refused",
              page: "treasury",
              error: `CONSOLE_FORM_INVALID: ${(error as Error).message}; nothing was booked.`,
              body: html`<p><a href="/console/treasury">Back</a></p>`,
            }),
          );
        }
        return act(
          request,
          reply,
          "/v1/treasury/moves",
          payload,
          "/console/treasury",
          `treasury ${String(payload.move)} of ${String(payload.txHash).slice(0, 10)}… booked`,
        );
      });

      c.get("/console/webhooks", async (request, reply) => {
        const s = request.consoleSession!;
        const dead = await list(s, "/v1/webhooks/deliveries?status=dead", "deliveries", 200);
        const body = section(
          "Dead letters",
          dead,
          (b) =>
            html`${deadLettersTable(b.deliveries as Json[], s)}${cut(dead, "200 are shown; redrive these, then reload for more")}`,
        );
        return send(
          reply,
          dead.status === 200 ? 200 : dead.status,
          page(request, { title: "Webhooks", page: "webhooks", body }),
        );
      });
      /**
       * Re-drive a dead event. The API refuses one whose subject's later event the endpoint already
       * got (409 WEBHOOK_REDRIVE_OUT_OF_ORDER): the refusal lists those and offers the forced
       * re-drive, which is sent only with its confirm checked (the receiver must drop events older,
       * by sequence, than what it applied).
       */
      c.post<{ Params: { eventId: string } }>(
        "/console/webhooks/dead-letters/:eventId/redrive",
        async (request, reply) => {
          const { eventId } = request.params;
          const form = (request.body ?? {}) as Json;
          const force = form.force === "true";
          if (force && form.confirm !== "yes")
            return send(
              reply,
              400,
              page(request, {
                title: "Refused",
                page: "webhooks",
                error:
                  "CONSOLE_FORM_INVALID: confirm must be checked to re-drive out of order; nothing was re-driven.",
                body: html`<p><a href="/console/webhooks">Back</a></p>`,
              }),
            );
          return act(
            request,
            reply,
            `/v1/webhooks/dead-letters/${encodeURIComponent(eventId)}/redrive`,
            force ? { force: true } : {},
            "/console/webhooks",
            force ? "redriven out of order (forced)" : "redriven",
            (r) =>
              r.body.code === "WEBHOOK_REDRIVE_OUT_OF_ORDER"
                ? forceRedriveForm(request.consoleSession!, eventId, r.body.later)
                : undefined,
          );
        },
      );

      c.get("/console/audit", async (request, reply) => {
        const s = request.consoleSession!;
        // The newest entries (the API lists oldest first unless asked): the first 1000 of a long
        // log would hide every recent action.
        const entries = await list(s, "/v1/audit?order=newest", "entries", AUDIT_PAGE);
        if (entries.status !== 200)
          return send(
            reply,
            entries.status,
            page(request, {
              title: "Audit log",
              page: "audit",
              error: `Refused by the API — ${problemText(entries)}`,
              body: html``,
            }),
          );
        // Only after the API let this key read the log (admin) does the console verify the chain.
        // With the heads reconciliation runs recorded, as `custody-node audit verify` does: rows
        // cut from the end of the log are seen only against them.
        const verification = await verifyAuditChain(options.pool, {
          anchors: await listAuditAnchors(options.pool),
        });
        const status = verification.ok
          ? html`<p class="ok" role="status">Hash chain verified: ${verification.rows} rows intact (head #${verification.head?.seq ?? 0}).</p>`
          : html`<p class="bad" role="alert">Hash chain broken: ${verification.problem?.kind} at #${verification.problem?.seq} — ${verification.problem?.detail}</p>`;
        const rows = entries.body.entries as Json[];
        const older = cut(
          entries,
          `the newest ${AUDIT_PAGE} entries are shown; older entries are not shown here (GET /v1/audit?order=newest&after=${String(rows.at(-1)?.id)} with an admin key)`,
        );
        const body = html`${status}${older}<table><caption class="visually-hidden">Audit entries, newest first</caption>
            <thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Entity</th></tr></thead>
            <tbody>${rows.map((e) => html`<tr><td class="num">${e.id}</td><td>${time(String(e.at))}</td><td>${e.actor}</td><td>${e.action}</td><td class="mono">${e.entityType} ${e.entityId}</td></tr>`)}</tbody></table>`;
        return send(reply, 200, page(request, { title: "Audit log", page: "audit", body }));
      });
    });
  };
}

/**
 * A chain's latest completed run older than this is stale: ReconciliationStale's window
 * (ops/observability/alerts.yml: no run for 30 minutes of the reconciler's one-minute schedule).
 */
const RECON_STALE_MS = 30 * 60_000;

/**
 * Under a run's balances: a warning when the run is older than RECON_STALE_MS, so a stopped
 * reconciler's last numbers are not read as today's. No finish time is no evidence either way.
 */
function staleRun(finishedAt: unknown): Html {
  const at = typeof finishedAt === "string" ? Date.parse(finishedAt) : Number.NaN;
  const age = Date.now() - at;
  if (!(age > RECON_STALE_MS)) return html``;
  return html`<br><span class="bad">stale: no reconciliation run of this chain completed for ${Math.floor(age / 60_000)} minutes (docs/runbooks/ReconciliationStale.md)</span>`;
}

/** The audit page's length: the newest this many entries. */
const AUDIT_PAGE = 999;

/** What a list page that is cut says under it (nothing when the list is whole). */
function cut(r: V1List, text: string): Html {
  return r.more ? html`<p role="status" class="notice">List cut: ${text}.</p>` : html``;
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-");

function signInPage(csrf: string, error?: string, sso = false): string {
  return layout({
    title: "Sign in",
    page: "sign-in",
    error,
    body: html`${sso ? html`<p><a class="button primary" href="/console/sso/start">Sign in with SSO</a></p><p>Or with an API key:</p>` : ""}<form method="post" action="/console/sign-in">
      <input type="hidden" name="_csrf" value="${csrf}">
      <p><label for="apiKey">API key</label><br><input type="password" id="apiKey" name="apiKey" autocomplete="off" size="70" required autofocus></p>
      <p><button type="submit" class="primary">Sign in</button></p>
      <p>The key is exchanged for a session: the console never stores it. Production sign-in through SSO: see docs/console.md.</p>
    </form>`,
  });
}

function chainsTable(chains: Json[]): Html {
  return html`<table><caption class="visually-hidden">Chains</caption><thead><tr><th scope="col">Chain</th><th scope="col" class="num">Head</th><th scope="col" class="num">Indexed</th><th scope="col" class="num">Lag (blocks)</th><th scope="col">State</th></tr></thead>
    <tbody>${chains.map((ch) => html`<tr><td>${ch.name} (${ch.key}, ${ch.chainId})</td><td class="num">${ch.head ?? "—"}${ch.headEndpoint ? html`<br><small>from ${ch.headEndpoint}</small>` : ""}</td><td class="num">${ch.indexed ?? "—"}</td><td class="num">${ch.lag ?? "—"} / max ${ch.maxLagBlocks}</td><td>${chainState(ch)}</td></tr>`)}</tbody></table>`;
}

/** Halted first (an operator must act), then what the API's `healthy` says and why not. */
function chainState(ch: Json): Html {
  const halt = ch.halted as Json | null;
  if (halt)
    return html`<span class="bad">halted</span> since ${time(String(halt.since))}: ${halt.reason}<br><small>inspect with <code>custody-node chains halted</code>, then <code>custody-node chains resume</code> (docs/chain-halts.md)</small>`;
  if (ch.healthy) return html`<span class="ok">healthy</span>`;
  if (ch.head === null)
    return html`<span class="bad">RPC head unknown</span> (no endpoint answered)`;
  if (ch.indexed === null) return html`<span class="bad">not indexed yet</span>`;
  return html`<span class="bad">lagging</span>`;
}

function withdrawalsTable(
  rows: Json[],
  assets: Map<string, AssetInfo>,
  actions?: (w: Json) => Html,
): Html {
  if (rows.length === 0) return html`<p>None.</p>`;
  return html`<table><thead><tr><th scope="col">Withdrawal</th><th scope="col">Customer</th><th scope="col" class="num">Amount</th><th scope="col">To</th><th scope="col">Status</th><th scope="col">Approvals</th><th scope="col">Requested</th>${actions ? html`<th scope="col">Decision</th>` : ""}</tr></thead>
    <tbody>${rows.map((w) => html`<tr data-withdrawal="${w.id}"><td class="mono"><a href="/console/withdrawals/${w.id}">${String(w.id).slice(0, 8)}</a></td><td>${w.customerId}</td><td class="num">${amount(String(w.amount), assets.get(String(w.assetId)))}</td><td class="mono">${w.to}</td><td>${w.status}${statusNote(w)}</td><td>${(w.approvals as Json[]).filter((a) => a.decision === "approve").length} of ${w.requiredApprovals}${(w.approvals as Json[]).map((a) => html`<br>${a.decision} by ${a.approver}`)}</td><td>${time(String(w.createdAt))}</td>${actions ? html`<td>${actions(w)}</td>` : ""}</tr>`)}</tbody></table>`;
}

/** A withdrawal an operator failed while its nonce was unused: `broadcast` until the cancel decides. */
function statusNote(w: Json): Html {
  const f = w.failRequested as Json | null;
  if (!f) return html``;
  if (w.status === "failed") return html`<br><small>failed by ${f.by}</small>`;
  if (w.status === "confirmed" || w.status === "finalized")
    return html`<br><small>${f.by} failed it; its own send mined first</small>`;
  return html`<br><small>failing: its nonce is being cancelled (${f.by})</small>`;
}

/** An SSO session past groupsFreshForMs: how long ago it signed in, and the limit (seconds). */
type StaleSso = { ageS: number; freshForS: number };

const minutes = (s: number) => (s % 60 === 0 ? `${s / 60} min` : `${s} s`);

/** Above every page of a stale SSO session: why its actions are refused, and the way back. */
function staleSsoWarning(stale: StaleSso): Html {
  return html`You signed in through SSO ${Math.floor(stale.ageS / 60)} min ago: you can read, but approving, rejecting or any other action needs your identity provider's word on your groups from the last ${minutes(stale.freshForS)} (<code>AUTH_SSO_GROUPS_STALE</code>), so that a person removed from a group stops acting. <a class="button primary" href="/console/sso/start">Sign in again</a>`;
}

function decisionForms(s: ConsoleSession, w: Json): Html {
  const id = String(w.id);
  const short = id.slice(0, 8);
  return html`<form method="post" action="/console/withdrawals/${id}/approve" class="inline">${formGuard(s.csrf, newIdempotencyKey())}
      <label for="approve-reason-${id}" class="visually-hidden">Reason to approve ${short}</label><input type="text" id="approve-reason-${id}" name="reason" placeholder="reason (optional)">
      <button type="submit" class="primary" aria-label="Approve withdrawal ${short}">Approve</button></form>
    <form method="post" action="/console/withdrawals/${id}/reject" class="inline">${formGuard(s.csrf, newIdempotencyKey())}
      <label for="reject-reason-${id}" class="visually-hidden">Reason to reject ${short}</label><input type="text" id="reject-reason-${id}" name="reason" placeholder="reason">
      <button type="submit" aria-label="Reject withdrawal ${short}">Reject</button></form>`;
}

function failForm(s: ConsoleSession, w: Json): Html {
  const id = String(w.id);
  const short = id.slice(0, 8);
  return html`<form method="post" action="/console/withdrawals/${id}/fail" class="inline">${formGuard(s.csrf, newIdempotencyKey())}
      <label for="fail-reason-${id}" class="visually-hidden">What you checked on chain for ${short}</label><input type="text" id="fail-reason-${id}" name="reason" placeholder="what you checked on chain" required>
      <button type="submit" aria-label="Fail withdrawal ${short} and release its hold">Fail, release hold</button></form>`;
}

function depositsTable(rows: Json[], assets: Map<string, AssetInfo>): Html {
  if (rows.length === 0) return html`<p>None.</p>`;
  return html`<table><thead><tr><th scope="col">Customer</th><th scope="col" class="num">Amount</th><th scope="col">Status</th><th scope="col" class="num">Block</th><th scope="col">Transaction</th><th scope="col">Detected</th></tr></thead>
    <tbody>${rows.map((d) => html`<tr><td>${d.customerId}</td><td class="num">${amount(String(d.amount), assets.get(String(d.assetId)))}</td><td>${d.status}</td><td class="num">${d.blockNumber}</td><td class="mono">${d.txHash}:${d.position}</td><td>${time(String(d.detectedAt))}</td></tr>`)}</tbody></table>`;
}

function holdsTable(rows: Json[], assets: Map<string, AssetInfo>): Html {
  if (rows.length === 0) return html`<p>No reorg holds.</p>`;
  return html`<table><thead><tr><th scope="col">Customer</th><th scope="col" class="num">Deposit</th><th scope="col" class="num">Held</th><th scope="col" class="num">Shortfall</th><th scope="col" class="num">Orphaned at</th><th scope="col">Transaction</th><th scope="col">Since</th></tr></thead>
    <tbody>${rows.map((h) => {
      const info = assets.get(String(h.assetId));
      return html`<tr data-hold="${h.creditId}"><td>${h.customerId}</td><td class="num">${amount(String(h.amount), info)}</td><td class="num">${h.holdAmount === null ? "—" : amount(String(h.holdAmount), info)}</td><td class="num">${h.shortfallAmount === null ? "—" : amount(String(h.shortfallAmount), info)}</td><td class="num">${h.orphanedBlock ?? "—"}</td><td class="mono">${h.txHash}:${h.position}</td><td>${time(String(h.since))}</td></tr>`;
    })}</tbody></table>`;
}

function treasuryTable(rows: Json[], assets: Map<string, AssetInfo>): Html {
  if (rows.length === 0) return html`<p>No treasury bookings yet.</p>`;
  return html`<table><thead><tr><th scope="col">Move</th><th scope="col">Chain</th><th scope="col" class="num">Amount</th><th scope="col" class="num">Gas</th><th scope="col">Wallet</th><th scope="col">By</th><th scope="col">Why</th><th scope="col">Transaction</th><th scope="col">When</th></tr></thead>
    <tbody>${rows.map((m) => {
      const native = assets.get(`${m.chainId}:0x0000000000000000000000000000000000000000`);
      return html`<tr data-move="${m.id}"><td>${m.move}</td><td class="num">${m.chainId}</td><td class="num">${m.amount === null ? "—" : amount(String(m.amount), assets.get(String(m.assetId)))}</td><td class="num">${m.fee === null ? "—" : amount(String(m.fee), native)}</td><td class="mono">${m.wallet}</td><td>${m.by}</td><td>${m.reason}</td><td class="mono">${m.txHash}</td><td>${time(String(m.at))}</td></tr>`;
    })}</tbody></table>`;
}

function treasuryForm(s: ConsoleSession, assets: Json[]): Html {
  return html`<section aria-labelledby="book-a-move"><h2 id="book-a-move">Book a move</h2>
    <p>Book a hot wallet's funding or defunding, or the gas of an operator transaction, against its transaction (the same as <code>custody-node treasury</code>). Amounts in token units; leave the amount empty to take it from the indexed transaction.</p>
    <form method="post" action="/console/treasury/moves" class="stacked">${formGuard(s.csrf, newIdempotencyKey())}
      <p><label for="tm-move">Move</label><select id="tm-move" name="move"><option value="fund">fund: into a hot wallet</option><option value="defund">defund: out of a hot wallet</option><option value="gas">gas: paid by a hot wallet for an operator transaction</option></select></p>
      <p><label for="tm-asset">Asset</label><select id="tm-asset" name="asset">${assets.map((a) => html`<option value="${a.assetId}">${a.chain}: ${a.symbol}${a.native ? " (native)" : html` (${a.address})`}</option>`)}</select></p>
      <p><label for="tm-tx">Transaction hash</label><input type="text" id="tm-tx" name="txHash" class="mono" size="70" required autocomplete="off" spellcheck="false"></p>
      <p><label for="tm-wallet">Hot wallet</label><input type="text" id="tm-wallet" name="wallet" class="mono" size="46" required autocomplete="off" spellcheck="false"></p>
      <p><label for="tm-amount">Amount (token units)</label><input type="text" id="tm-amount" name="amount" inputmode="decimal" size="30" placeholder="e.g. 100" autocomplete="off"></p>
      <p><label for="tm-fee">Gas of a defund (native units)</label><input type="text" id="tm-fee" name="fee" inputmode="decimal" size="30" placeholder="only for defund" autocomplete="off"></p>
      <p><label for="tm-reason">Why</label><input type="text" id="tm-reason" name="reason" size="70" maxlength="500" required></p>
      <p><button type="submit" class="primary">Book move</button></p>
    </form></section>`;
}

function breaksTable(rows: Json[], assets: Map<string, AssetInfo>, s: ConsoleSession): Html {
  if (rows.length === 0) return html`<p>No open or acknowledged breaks.</p>`;
  return html`<table><thead><tr><th scope="col">Break</th><th scope="col">Type</th><th scope="col" class="num">Difference</th><th scope="col">State</th><th scope="col">Action</th></tr></thead>
    <tbody>${rows.map((b) => {
      const ref = String(b.identity);
      const label = `${String(b.type)} ${String(b.key)}`;
      return html`<tr data-break="${ref}"><td class="mono">${b.chainId} ${b.key}</td><td>${b.type}</td><td class="num">${amount(String(b.lastDifference), assets.get(String(b.assetId)))}</td><td>${b.state}</td><td>
        ${b.state === "open" ? html`<form method="post" action="/console/recon/breaks/${ref}/acknowledge" class="inline">${formGuard(s.csrf, newIdempotencyKey())}<label for="ack-${ref}">Why</label><input type="text" id="ack-${ref}" name="reason" required><button type="submit" aria-label="Acknowledge ${label}">Acknowledge</button></form>` : ""}
        <form method="post" action="/console/recon/breaks/${ref}/resolve" class="inline">${formGuard(s.csrf, newIdempotencyKey())}<label for="res-${ref}">Why</label><input type="text" id="res-${ref}" name="reason" required><label for="fix-${ref}">Fixed by</label><input type="text" id="fix-${ref}" name="fixedBy" placeholder="transfer id or tx:position" required><button type="submit" aria-label="Resolve ${label}">Resolve</button></form></td></tr>`;
    })}</tbody></table>`;
}

function runsTable(rows: Json[]): Html {
  if (rows.length === 0) return html`<p>No runs yet.</p>`;
  return html`<table><thead><tr><th scope="col" class="num">Run</th><th scope="col">Chain</th><th scope="col" class="num">Block</th><th scope="col">Status</th><th scope="col" class="num">Breaks</th><th scope="col">Started</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr><td class="num"><a href="/console/recon/runs/${r.id}/report">${r.id}</a></td><td>${r.chainId}</td><td class="num">${r.block}</td><td>${r.status}</td><td class="num">${r.breakCount}</td><td>${time(String(r.startedAt))}</td></tr>`)}</tbody></table>`;
}

/**
 * A refused re-drive: the later events the endpoint already got or is being sent, and the forced
 * re-drive.
 */
function forceRedriveForm(s: ConsoleSession, eventId: string, later: unknown): Html {
  const rows = Array.isArray(later) ? (later as Json[]) : [];
  return html`<section aria-labelledby="delivered-later"><h2 id="delivered-later">Later events</h2>
    <p>These later events of the same deposit or withdrawal already reached the endpoint (delivered) or are being sent to it (pending: wait for them to be delivered or to die): re-driven now, event <span class="mono">${eventId}</span> would arrive after them, and a receiver applying events as they come would end in its older state. Usually nothing needs sending: the later event carries the newer state.</p>
    <table><thead><tr><th scope="col">Endpoint</th><th scope="col">Event</th><th scope="col">Type</th><th scope="col" class="num">Sequence</th><th scope="col">Status</th></tr></thead>
    <tbody>${rows.map((l) => html`<tr><td class="mono">${l.endpoint}</td><td class="mono">${l.eventId}</td><td>${l.type}</td><td class="num">${l.sequence}</td><td>${l.status ?? "delivered"}</td></tr>`)}</tbody></table>
    <form method="post" action="/console/webhooks/dead-letters/${eventId}/redrive" class="stacked">${formGuard(s.csrf, newIdempotencyKey())}<input type="hidden" name="force" value="true">
      <p><input type="checkbox" id="force-confirm" name="confirm" value="yes" required> <label for="force-confirm">The receiver drops events older (by <code>sequence</code> of the <code>subject</code>) than what it applied</label></p>
      <p><button type="submit" aria-label="Redrive ${eventId} anyway">Redrive anyway</button></p>
    </form></section>`;
}

function deadLettersTable(rows: Json[], s: ConsoleSession): Html {
  if (rows.length === 0) return html`<p>No dead letters.</p>`;
  return html`<table><thead><tr><th scope="col">Event</th><th scope="col">Type</th><th scope="col">Endpoint</th><th scope="col" class="num">Attempts</th><th scope="col">Last error</th><th scope="col">Action</th></tr></thead>
    <tbody>${rows.map((d) => html`<tr><td class="mono">${d.eventId}</td><td>${d.type}</td><td class="mono">${d.endpoint}</td><td class="num">${d.attempts}</td><td>${d.lastError ?? "—"}</td><td><form method="post" action="/console/webhooks/dead-letters/${d.eventId}/redrive" class="inline">${formGuard(s.csrf, newIdempotencyKey())}<button type="submit" aria-label="Redrive ${d.eventId}">Redrive</button></form></td></tr>`)}</tbody></table>`;
}
