/** GET /v1/audit: the append-only audit log (admin), filterable by entity. */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { auditEntryExists, listAudit } from "../../foundation/audit.js";
import { Limit, pageLimit, problemResponses, requirePageCursor } from "../schemas.js";
import type { V1Deps } from "./deps.js";

export const AuditOut = Type.Object({
  id: Type.String(),
  at: Type.String(),
  actor: Type.String(),
  action: Type.String(),
  entityType: Type.String(),
  entityId: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
});

export function auditOut(e: Awaited<ReturnType<typeof listAudit>>[number]) {
  return { ...e, at: e.at.toISOString() };
}

export function auditRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/audit",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["audit"],
          summary:
            "Audit log entries (oldest first, or newest first with order=newest; cursor = last id of the previous page)",
          querystring: Type.Object(
            {
              entity_type: Type.Optional(Type.String({ pattern: "^[a-z_]{1,32}$" })),
              entity_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
              after: Type.Optional(Type.String({ pattern: "^[0-9]{1,18}$" })),
              order: Type.Optional(
                Type.Union([Type.Literal("oldest"), Type.Literal("newest")], {
                  description:
                    "oldest first (default) or newest first; `after` then pages back from that id",
                }),
              ),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ entries: Type.Array(AuditOut) }), ...problemResponses },
        },
      },
      async (request) => {
        const q = request.query;
        await requirePageCursor(q.after, (id) => auditEntryExists(deps.pool, id));
        const entries = await listAudit(deps.pool, {
          ...(q.entity_type ? { entityType: q.entity_type } : {}),
          ...(q.entity_id ? { entityId: q.entity_id } : {}),
          ...(q.after ? { afterId: q.after } : {}),
          ...(q.order === "newest" ? { newestFirst: true } : {}),
          limit: pageLimit(q.limit),
        });
        return { entries: entries.map(auditOut) };
      },
    );
  };
}
