/**
 * For the console's inject tests (no browser): sign in through the console's own form (its CSRF
 * cookie and field) and read a page with the session cookie.
 */
import type { FastifyInstance } from "fastify";
import { SESSION_COOKIE } from "../plugin.js";

export const cookieOf = (setCookie: string | string[] | undefined, name: string) => {
  const all = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  const hit = all.find((c) => c.startsWith(`${name}=`));
  return hit ? decodeURIComponent(hit.slice(name.length + 1).split(";")[0]!) : undefined;
};

/**
 * The sign-in form posted with `key` (both requests from `from`: the connection's address and
 * headers such as X-Forwarded-For): the answer, the login CSRF token and the session key.
 */
export async function consoleSignIn(
  app: FastifyInstance,
  key: string,
  from: { remoteAddress?: string; headers?: Record<string, string> } = {},
) {
  const page = await app.inject({ method: "GET", url: "/console/sign-in", ...from });
  const login = cookieOf(page.headers["set-cookie"], "cn_console_login")!;
  const res = await app.inject({
    method: "POST",
    url: "/console/sign-in",
    ...(from.remoteAddress ? { remoteAddress: from.remoteAddress } : {}),
    headers: {
      ...from.headers,
      "content-type": "application/x-www-form-urlencoded",
      cookie: `cn_console_login=${login}`,
    },
    payload: new URLSearchParams({ _csrf: login, apiKey: key }).toString(),
  });
  return { res, login, session: cookieOf(res.headers["set-cookie"], SESSION_COOKIE) };
}

/** GET a console page with the session's cookie. */
export const consoleGet = (app: FastifyInstance, session: string, url: string) =>
  app.inject({
    method: "GET",
    url,
    headers: { cookie: `${SESSION_COOKIE}=${encodeURIComponent(session)}` },
  });
