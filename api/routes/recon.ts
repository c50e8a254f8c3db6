/** Reconciliation runs and their reports (JSON, CSV, HTML), read from the recon module. */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import {
  acknowledgeBreak,
  BREAK_STATES,
  type BreakState,
  type BreakStateName,
  breakStatesOf,
  getRunReport,
  listBreakStates,
  listRuns,
  resolveBreak,
} from "../../ledger/recon/index.js";
import { callerOf } from "../auth.js";
import { Limit, pageLimit, problemResponses, requirePageCursor } from "../schemas.js";
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
          body: Type.Object({ reason: Text }, { additionalProperties: false }),
          response: { 200: BreakStateOut, ...problemResponses },
        },
      },
      async (request): Promise<BreakState> =>
        acknowledgeBreak(deps.pool, {
          ref: request.params.break,
          by: callerOf(request).owner,
          reason: request.body.reason,
        }),
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
        resolveBreak(deps.pool, {
          ref: request.params.break,
          by: callerOf(request).owner,
          reason: request.body.reason,
          fixedBy: request.body.fixedBy,
        }),
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
