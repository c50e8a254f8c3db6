/** Reconciliation runs and their reports (JSON, CSV, HTML), read from the recon module. */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { getRunReport, listRuns } from "../../ledger/recon/index.js";
import { Limit, pageLimit, problemResponses } from "../schemas.js";
import type { V1Deps } from "../v1.js";

const RunOut = Type.Object({
  id: Type.Integer(),
  chainId: Type.Integer(),
  block: Type.Integer(),
  status: Type.String(),
  breakCount: Type.Integer(),
  startedAt: Type.String(),
});

export function reconRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
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
