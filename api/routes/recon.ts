/**
 * Reconciliation runs and their reports (JSON, CSV, HTML), read from the recon module; an
 * operator's acknowledgement or resolution of a break, recorded under its Idempotency-Key.
 */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { type PoolClient, withTransaction } from "../../foundation/db.js";
import {
  acknowledgeBreakIn,
  BREAK_STATES,
  type BreakState,
  type BreakStateName,
  breakStatesOf,
  getRunReport,
  listBreakStates,
  listRuns,
  resolveBreakIn,
} from "../../ledger/recon/index.js";
import { principalOf } from "../apiKeys.js";
import { callerOf } from "../auth.js";
import { IdempotencyConflictError } from "../errors.js";
import {
  CALLERS_KEY,
  callersKeyParams,
  idempotencyKeyOf,
  lockCallersKey,
  requestHash,
} from "../idempotency.js";
import {
  IdempotencyHeaders,
  Limit,
  pageLimit,
  problemResponses,
  requirePageCursor,
} from "../schemas.js";
import type { V1Deps } from "./deps.js";

const RunOut = Type.Object({
  id: Type.Integer(),
  chainId: Type.Integer(),
  block: Type.Integer(),
  status: Type.String(),
  breakCount: Type.Integer(),
  startedAt: Type.String(),
});

const N = Type.Union([Type.String(), Type.Null()]);
const BreakStateOut = Type.Object({
  identity: Type.String(),
  chainId: Type.Integer(),
  type: Type.String(),
  assetId: Type.String(),
  key: Type.String(),
  state: Type.String(),
  firstRunId: Type.Integer(),
  lastRunId: Type.Integer(),
  lastDifference: Type.String(),
  acknowledgedBy: N,
  acknowledgedReason: N,
  acknowledgedAt: N,
  acknowledgedDifference: N,
  resolvedBy: N,
  resolvedReason: N,
  resolvedRef: N,
  resolvedAt: N,
  latestBreakId: N,
  action: N,
});
const Text = Type.String({ minLength: 1, maxLength: 500, pattern: "^[^\\u0000]*$" });
/** `<run id>:<n>` or a break identity (`type|chain|asset|key`). */
const BreakRef = Type.String({ minLength: 3, maxLength: 300, pattern: "^[^\\s\\u0000]+$" });

/**
 * An operator's decision on a break in one transaction with its record under the caller's
 * Idempotency-Key (api migration 0018), the caller's principal's (any of its API keys: 0022), so
 * a retry under a rotated key is the same request. After a 5xx the key stays bound to the request
 * and the same request may run again (api/idempotency.ts): the decision is made from the break's
 * state as it is then, so a later run that reopened the break (or found another difference) would
 * have it applied to what the operator never saw. Recorded, the retry is answered with what the
 * decision answered.
 */
async function decideUnderKey(
  deps: V1Deps,
  request: FastifyRequest,
  ref: string,
  action: "acknowledge" | "resolve",
  decide: (client: PoolClient) => Promise<BreakState>,
): Promise<BreakState> {
  const caller = callerOf(request);
  const key = idempotencyKeyOf(request);
  const hash = requestHash(request);
  return withTransaction(deps.pool, async (client) => {
    // Two takers of one key (a lease lapsed under a slow first attempt, or a retry under a
    // rotated key of the same owner) decide one at a time.
    await lockCallersKey(client, "recon-break-key", caller, key);
    const { rows } = await client.query<{
      request_hash: string;
      action: string;
      break_ref: string;
      result: BreakState;
    }>(
      `SELECT request_hash, action, break_ref, result FROM api.recon_break_decisions
        WHERE ${CALLERS_KEY}`,
      callersKeyParams(caller, key),
    );
    const earlier = rows[0];
    if (earlier) {
      if (earlier.request_hash !== hash)
        throw new IdempotencyConflictError(
          key,
          `POST /v1/recon/breaks/${earlier.break_ref}/${earlier.action}`,
        );
      return earlier.result;
    }
    const state = await decide(client);
    await client.query(
      `INSERT INTO api.recon_break_decisions
         (api_key_id, idempotency_key, request_hash, action, break_ref, result, principal)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [caller.id, key, hash, action, ref, JSON.stringify(state), principalOf(caller)],
    );
    return state;
  });
}

export function reconRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/recon/breaks",
      {
        config: { scopes: ["recon:read"] },
        schema: {
          tags: ["reconciliation"],
          operationId: "listReconBreaks",
          summary:
            "Breaks by state (default open and acknowledged), newest first (by the run that first found them; cursor = last identity)",
          querystring: Type.Object(
            {
              chain_id: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
              state: Type.Optional(Type.Union(BREAK_STATES.map((s) => Type.Literal(s)))),
              after: Type.Optional({
                ...BreakRef,
                description: "the identity of the last break of the previous page",
              }),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ breaks: Type.Array(BreakStateOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const q = request.query;
        await requirePageCursor(
          q.after,
          async (identity) => (await breakStatesOf(deps.pool, [identity])).size > 0,
        );
        const breaks = await listBreakStates(deps.pool, {
          ...(q.chain_id ? { chainId: Number(q.chain_id) } : {}),
          states: q.state ? [q.state as BreakStateName] : ["open", "acknowledged"],
          ...(q.after !== undefined ? { after: q.after } : {}),
          limit: pageLimit(q.limit, 200),
        });
        return { breaks };
      },
    );

    app.post(
      "/recon/breaks/:break/acknowledge",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["reconciliation"],
          operationId: "acknowledgeReconBreak",
          summary:
            "Acknowledge a break (who = the key's owner, why): not re-alerted while its difference stays the same",
          params: Type.Object({ break: BreakRef }),
          headers: IdempotencyHeaders,
          body: Type.Object({ reason: Text }, { additionalProperties: false }),
          response: { 200: BreakStateOut, ...problemResponses },
        },
      },
      async (request): Promise<BreakState> =>
        decideUnderKey(deps, request, request.params.break, "acknowledge", (client) =>
          acknowledgeBreakIn(client, {
            ref: request.params.break,
            by: callerOf(request).owner,
            reason: request.body.reason,
          }),
        ),
    );

    app.post(
      "/recon/breaks/:break/resolve",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["reconciliation"],
          operationId: "resolveReconBreak",
          summary:
            "Resolve a break, linked to the ledger transfer id or chain fact (<tx hash>:<position>) that fixed it",
          params: Type.Object({ break: BreakRef }),
          headers: IdempotencyHeaders,
          body: Type.Object(
            {
              reason: Text,
              fixedBy: Type.String({ minLength: 3, maxLength: 200, pattern: "^[^\\s\\u0000]+$" }),
            },
            { additionalProperties: false },
          ),
          response: { 200: BreakStateOut, ...problemResponses },
        },
      },
      async (request): Promise<BreakState> =>
        decideUnderKey(deps, request, request.params.break, "resolve", (client) =>
          resolveBreakIn(client, {
            ref: request.params.break,
            by: callerOf(request).owner,
            reason: request.body.reason,
            fixedBy: request.body.fixedBy,
          }),
        ),
    );

    app.get(
      "/recon/runs",
      {
        config: { scopes: ["recon:read"] },
        schema: {
          tags: ["reconciliation"],
          summary: "Reconciliation runs, newest first",
          querystring: Type.Object(
            {
              chain_id: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })),
              status: Type.Optional(
                Type.Union([
                  Type.Literal("running"),
                  Type.Literal("completed"),
                  Type.Literal("failed"),
                ]),
              ),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ runs: Type.Array(RunOut) }), ...problemResponses },
        },
      },
      async (request) => {
        const runs = await listRuns(deps.pool, {
          ...(request.query.chain_id ? { chainId: Number(request.query.chain_id) } : {}),
          ...(request.query.status ? { status: request.query.status } : {}),
          limit: pageLimit(request.query.limit, 50),
        });
        return {
          runs: runs.map((r) => ({
            ...r,
            startedAt: new Date(r.startedAt).toISOString(),
          })),
        };
      },
    );

    app.get(
      "/recon/runs/:id",
      {
        config: { scopes: ["recon:read"] },
        schema: {
          tags: ["reconciliation"],
          summary: "One run's report: JSON (default), CSV or a readable HTML page",
          params: Type.Object({ id: Type.String({ pattern: "^[0-9]{1,15}$" }) }),
          querystring: Type.Object(
            {
              format: Type.Optional(
                Type.Union([Type.Literal("json"), Type.Literal("csv"), Type.Literal("html")]),
              ),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Unknown({ description: "the report (see ledger/recon/report.ts)" }),
            ...problemResponses,
          },
        },
      },
      async (request, reply) => {
        const report = await getRunReport(deps.pool, Number(request.params.id));
        switch (request.query.format ?? "json") {
          case "csv":
            return reply.type("text/csv; charset=utf-8").send(report.csv);
          case "html":
            return reply.type("text/html; charset=utf-8").send(report.html);
          default:
            return reply.type("application/json").send(JSON.stringify(report.json));
        }
      },
    );
  };
}
