/**
 * Authentication and authorisation for /v1: every route declares the scopes that may call it
 * (`config.scopes`, any of them suffices); a route without one refuses to register, so nothing under
 * /v1 can answer without a key.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Pool } from "../ops/db.js";
import { type ApiKey, hasScope, type Scope, verifyApiKey } from "./apiKeys.js";
import { ForbiddenScopeError, UnauthorizedError } from "./errors.js";

declare module "fastify" {
  interface FastifyRequest {
    apiKey: ApiKey | null;
  }
  interface FastifyContextConfig {
    /** The scopes that may call this route (any one suffices; `admin` always does). */
    scopes?: readonly Scope[];
  }
}

export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === "string" && header.startsWith("Bearer ")) return header.slice(7).trim();
  const alt = request.headers["x-api-key"];
  return typeof alt === "string" ? alt.trim() : undefined;
}

/** The authenticated key of a request that passed the auth hook. */
export function callerOf(request: FastifyRequest): ApiKey {
  if (!request.apiKey) throw new UnauthorizedError("no API key on this request");
  return request.apiKey;
}

export async function registerAuth(app: FastifyInstance, pool: Pool): Promise<void> {
  app.decorateRequest("apiKey", null);
  app.addHook("onRoute", (route) => {
    const scopes = (route.config as { scopes?: readonly Scope[] } | undefined)?.scopes;
    if (!scopes || scopes.length === 0)
      throw new Error(`route ${route.method} ${route.url} declares no scopes`);
    // The OpenAPI document shows (and tests read) the scopes each route accepts.
    route.schema = { ...route.schema, security: [{ apiKey: [...scopes] }] };
  });
  app.addHook("onRequest", async (request) => {
    const plaintext = presentedKey(request);
    if (!plaintext)
      throw new UnauthorizedError("send the key as `Authorization: Bearer cn_…` or `X-Api-Key`");
    const result = await verifyApiKey(pool, plaintext);
    if (!result.ok) throw new UnauthorizedError(result.reason);
    request.apiKey = result.key;
    const scopes = request.routeOptions.config.scopes ?? [];
    if (!scopes.some((s) => hasScope(result.key, s)))
      throw new ForbiddenScopeError(scopes.join(" or "));
  });
}
